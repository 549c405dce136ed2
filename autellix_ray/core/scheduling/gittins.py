"""Gittins-index order of the attained-service queues, learned from the programs that finished.

Why: least attained service (the paper's PLAS/ATLAS) runs new programs first. That is right when
program sizes are heavy-tailed (a program that has run long will probably run much longer) and
wrong when they are not: with sizes of similar magnitude it keeps overtaking the programs that are
nearly done, so every program finishes late (BFCL at 2x capacity: LAS 43.5 s mean, program-FCFS
31.8 s). The Gittins index is the order that minimises mean response time for unknown sizes drawn
from a known distribution (M/G/1, Gittins 1989; Scully and Harchol-Balter's SOAP analysis): it
becomes LAS for decreasing-hazard sizes and FCFS-like for increasing-hazard ones.

Algorithm (``GittinsRanker``): keep the total service S of the last ``window`` programs seen to
finish. For queue i with lower bound a = lo_i, its index is

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

Parameters and defaults: ``window=2000``, ``min_programs=50``, ``refresh_every=50``,
``min_idle_s=1.0`` (service units are the caller's; times are the caller's clock),
``idle_factor=2.0``. The queue boundaries are ``QueueConfig.boundaries_s``.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import OrderedDict, deque
from collections.abc import Sequence

DEFAULT_WINDOW = 2000
DEFAULT_MIN_PROGRAMS = 50
DEFAULT_REFRESH_EVERY = 50
DEFAULT_MIN_IDLE_S = 1.0
DEFAULT_IDLE_FACTOR = 2.0
_GAP_WINDOW = 1000


def gittins_indices(boundaries_s: Sequence[float], sizes: Sequence[float]) -> list[float]:
    """The Gittins index of each queue's lower bound, for the empirical size distribution ``sizes``."""
    ordered = sorted(sizes)
    prefix = [0.0, *itertools.accumulate(ordered)]
    n = len(ordered)

    def count_and_sum(lo: float, hi: float) -> tuple[int, float]:
        """Number and sum of sizes in (lo, hi]."""
        i, j = bisect.bisect_right(ordered, lo), bisect.bisect_right(ordered, hi)
        return j - i, prefix[j] - prefix[i]

    indices = []
    for i, a in enumerate(boundaries_s):
        alive = n - bisect.bisect_right(ordered, a)  # sizes > a
        best = 0.0
        if alive:
            for h in [*boundaries_s[i + 1 :], math.inf]:
                done, done_sum = count_and_sum(a, h)
                # E[min(S, h) - a | S > a]: finished ones contribute S - a, the others h - a
                effort = (done_sum - done * a + (alive - done) * (h - a if h != math.inf else 0.0)) / alive
                if done and effort > 0:
                    best = max(best, (done / alive) / effort)
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
        self._went_idle: deque[tuple[float, str]] = deque()  # (when, program id), in time order

    # -- what the policy tells it -------------------------------------------
    def program_went_idle(self, program_id: str, now_s: float) -> None:
        """The program's last call in flight finished."""
        self._went_idle.append((now_s, program_id))

    def program_called_again(self, idle_since_s: float, now_s: float) -> None:
        """An idle program sent a new call: one observed gap."""
        self._gaps.append(max(0.0, now_s - idle_since_s))

    def done_after_s(self) -> float:
        if not self._gaps:
            return self.min_idle_s
        ordered = sorted(self._gaps)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return max(self.min_idle_s, self.idle_factor * p99)

    def collect(self, now_s: float, idle_since) -> bool:
        """Count programs idle for longer than ``done_after_s``; True when the ranking changed.

        ``idle_since(program_id)`` returns (when the program went idle, its total service), or
        None if it is active again or gone.
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
        slots = rank_levels(gittins_indices(self.boundaries_s, sizes))
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
