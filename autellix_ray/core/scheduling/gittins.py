"""Gittins-index order of the attained-service queues, learned from the programs that finished.

Why: least attained service (the paper's PLAS/ATLAS) runs new programs first. That is right when
program sizes are heavy-tailed (a program that has run long will probably run much longer) and
wrong when they are not: with sizes of similar magnitude it keeps overtaking the programs that are
nearly done, so every program finishes late (BFCL at 2x capacity: LAS 43.5 s mean, program-FCFS
31.8 s). The Gittins index is the order that minimises mean response time for unknown sizes drawn
from a known distribution (M/G/1, Gittins 1989; Scully and Harchol-Balter's SOAP analysis): it
becomes LAS for decreasing-hazard sizes and FCFS-like for increasing-hazard ones.

Algorithm (``GittinsRanker``): estimate the distribution of a program's total service S from the
last ``window`` programs seen to finish and, as lower bounds (Kaplan-Meier censoring), the
service so far of up to ``window`` recent programs that have not: without them the estimate
leans to short programs, which finish first. For queue i with lower bound a = lo_i, its index is

    G(a) = max over horizons h in {lo_j : j > i} + {inf} of P(S <= h | S > a) / E[min(S, h) - a | S > a]

(the best completion rate per unit of further service). Queues are served in decreasing G (ties:
the lower queue first). A queue nobody reached has index 0 (served last). Until ``min_programs``
programs have finished, the order is LAS (Q1 first), so a fresh engine behaves as PLAS/ATLAS.
The ranking is recomputed every ``refresh_every`` new programs.

Anti-starvation under this order (``SchedulingPolicy.promote_starved``): W / T >= beta with
T = max(the program's service, the median size learned here). With T alone, a new program
(T near 0) is promoted after any wait at all, which puts every new program first again: LAS
(BFCL at 2x capacity: 36.2 s mean with the floor off, 31.8 s without anti-starvation). With the
floor a program waits at most about beta typical programs' service before it is promoted.

When has a program finished? An engine is not told (the client just stops calling). A program
counts as finished once it has had no call for ``done_after_s`` = max(``min_idle_s``,
``idle_factor`` x the 99th percentile of the gaps observed between one of its calls finishing and
the program's next call arriving). A program that comes back after being counted raises that
percentile; its early sample stays (at most one per program id in the window).

Parameters and defaults: ``window=2000``, ``min_programs=10``, ``refresh_every=10`` (the
censored estimate is usable early: with 50, a 400-program MoA run spent most of its time in LAS
and its mean was 295 s instead of 200 s), ``min_idle_s=1.0`` (service units are the caller's; times are the caller's clock),
``idle_factor=2.0``. The queue boundaries are ``QueueConfig.boundaries_s``.
"""

from __future__ import annotations

import bisect
import math
from collections import OrderedDict, deque
from collections.abc import Sequence

DEFAULT_WINDOW = 2000
DEFAULT_MIN_PROGRAMS = 10
DEFAULT_REFRESH_EVERY = 10
DEFAULT_MIN_IDLE_S = 1.0
DEFAULT_IDLE_FACTOR = 2.0
_GAP_WINDOW = 1000
_GAP_REFRESH = 64  # the sweep runs every few engine steps: no need to sort 1,000 gaps each time


def survival_curve(done: Sequence[float], censored: Sequence[float] = ()) -> tuple[list[float], list[float]]:
    """Kaplan-Meier estimate of P(S > x) from finished sizes and lower bounds of unfinished ones.

    Returns the sizes where it drops and its value just after each; it is 1 before the first and
    taken to be 0 after the largest observation (an unfinished program is assumed to end there).
    """
    observations = sorted([(s, 1) for s in done] + [(s, 0) for s in censored])
    times: list[float] = []
    survival: list[float] = []
    alive, i, n = 1.0, 0, len(observations)
    while i < n:
        t, ended, j = observations[i][0], 0, i
        while j < n and observations[j][0] == t:
            ended += observations[j][1]
            j += 1
        if ended:
            alive *= 1 - ended / (n - i)  # n - i observations are at risk at t
            times.append(t)
            survival.append(alive)
        i = j
    if n and alive > 0:
        times.append(observations[-1][0])
        survival.append(0.0)
    return times, survival


def gittins_indices(
    boundaries_s: Sequence[float], sizes: Sequence[float], unfinished: Sequence[float] = ()
) -> list[float]:
    """The Gittins index of each queue's lower bound, for sizes estimated from finished ``sizes``
    and the attained service of ``unfinished`` programs (censored: their size is at least that)."""
    times, survival = survival_curve(sizes, unfinished)
    cumulative = []  # integral of the survival from 0 to times[k]
    area, prev_t, prev_s = 0.0, 0.0, 1.0
    for t, s in zip(times, survival):
        area += prev_s * (t - prev_t)
        cumulative.append(area)
        prev_t, prev_s = t, s

    def surv(x: float) -> float:
        k = bisect.bisect_right(times, x) - 1
        return 1.0 if k < 0 else survival[k]

    def integral(x: float) -> float:
        if x == math.inf:
            return cumulative[-1] if cumulative else 0.0
        k = bisect.bisect_right(times, x) - 1
        return x if k < 0 else cumulative[k] + survival[k] * (x - times[k])

    indices = []
    for i, a in enumerate(boundaries_s):
        alive_a = surv(a) if times else 0.0
        best = 0.0
        if alive_a > 0:
            for h in [*boundaries_s[i + 1 :], math.inf]:
                done = 1.0 - (surv(h) if h != math.inf else 0.0) / alive_a  # P(S <= h | S > a)
                effort = (integral(h) - integral(a)) / alive_a  # E[min(S, h) - a | S > a]
                if done > 0 and effort > 0:
                    best = max(best, done / effort)
        indices.append(best)
    return indices


def rank_levels(indices: Sequence[float]) -> tuple[int, ...]:
    """Slot of each queue in the service order: 0 runs first (highest index; ties: lower queue)."""
    order = sorted(range(len(indices)), key=lambda level: (-indices[level], level))
    slots = [0] * len(indices)
    for slot, level in enumerate(order):
        slots[level] = slot
    return tuple(slots)


class GittinsRanker:
    """Learns which programs have finished and ranks the queues by their Gittins index."""

    def __init__(
        self,
        boundaries_s: Sequence[float],
        *,
        window: int = DEFAULT_WINDOW,
        min_programs: int = DEFAULT_MIN_PROGRAMS,
        refresh_every: int = DEFAULT_REFRESH_EVERY,
        min_idle_s: float = DEFAULT_MIN_IDLE_S,
        idle_factor: float = DEFAULT_IDLE_FACTOR,
    ) -> None:
        self.boundaries_s = tuple(boundaries_s)
        self.window, self.min_programs, self.refresh_every = window, min_programs, refresh_every
        self.min_idle_s, self.idle_factor = min_idle_s, idle_factor
        self.slots: tuple[int, ...] = tuple(range(len(self.boundaries_s)))  # LAS until learned
        self.version = 0  # bumped whenever ``slots`` changes
        self._sizes: OrderedDict[str, float] = OrderedDict()  # program id -> total service
        self._new_since_refresh = 0
        self._typical_s = 0.0
        self._gaps: deque[float] = deque(maxlen=_GAP_WINDOW)
        self._new_gaps = 0  # gaps since done_after_s was last computed
        self._done_after_s = min_idle_s
        self._went_idle: deque[tuple[float, str]] = deque()  # (when, program id), in time order

    # -- what the policy tells it -------------------------------------------
    def program_went_idle(self, program_id: str, now_s: float) -> None:
        """The program's last call in flight finished."""
        self._went_idle.append((now_s, program_id))

    def program_called_again(self, idle_since_s: float, now_s: float) -> None:
        """An idle program sent a new call: one observed gap."""
        self._gaps.append(max(0.0, now_s - idle_since_s))
        self._new_gaps += 1

    def done_after_s(self) -> float:
        """max(min_idle_s, idle_factor x p99 of the gaps), recomputed every ``_GAP_REFRESH`` new gaps."""
        if self._new_gaps >= _GAP_REFRESH or (self._new_gaps and len(self._gaps) <= _GAP_REFRESH):
            ordered = sorted(self._gaps)
            p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
            self._done_after_s = max(self.min_idle_s, self.idle_factor * p99)
            self._new_gaps = 0
        return self._done_after_s

    def collect(self, now_s: float, idle_since, unfinished=lambda: ()) -> bool:
        """Count programs idle for longer than ``done_after_s``; True when the ranking changed.

        ``idle_since(program_id)`` returns (when the program went idle, its total service), or
        None if it is active again or gone. ``unfinished()`` yields (program id, service so far)
        of recent programs; those not counted as finished enter the estimate as censored sizes.
        """
        cutoff = now_s - self.done_after_s()
        while self._went_idle and self._went_idle[0][0] <= cutoff:
            when, program_id = self._went_idle.popleft()
            state = idle_since(program_id)
            if state is None or state[0] != when:
                continue  # called again since (a later entry covers it) or gone
            self._sizes.pop(program_id, None)
            self._sizes[program_id] = state[1]
            if len(self._sizes) > self.window:
                self._sizes.popitem(last=False)
            self._new_since_refresh += 1
        if len(self._sizes) < self.min_programs or self._new_since_refresh < self.refresh_every:
            return False
        self._new_since_refresh = 0
        sizes = sorted(self._sizes.values())
        self._typical_s = sizes[len(sizes) // 2]
        censored = [service for program_id, service in unfinished() if program_id not in self._sizes]
        slots = rank_levels(gittins_indices(self.boundaries_s, sizes, censored))
        if slots == self.slots:
            return False
        self.slots = slots
        self.version += 1
        return True

    @property
    def num_programs(self) -> int:
        return len(self._sizes)

    def typical_size_s(self) -> float:
        """Median total service of the finished programs at the last refresh (0 until then)."""
        return self._typical_s
