"""Discretised priority queues Q1..QK shared by MLFQ, PLAS and ATLAS.

Parameters (``QueueConfig``):
- ``boundaries_s``: lower bounds lo_1..lo_K of the K queues in seconds of attained
  service; lo_1 must be 0 and the list strictly increasing; hi_K is infinite.
- ``quanta_s``: optional time quantum per queue. When omitted, a queue's quantum is
  its width (hi_i - lo_i), and a call entering at service s gets hi_i - s: the call
  is demoted exactly when its attained service crosses the next boundary, so its
  queue always matches its attained service (the property tests rely on this).
- ``beta``: anti-starvation ratio. A call whose W / T >= beta (wait over service:
  its program's totals plus the call's own) is promoted to Q1. None disables it.
  Deviation from the paper, on purpose: the paper resets the call's counters on
  promotion. Taken literally that forgets the wait a long call built up before each
  promotion until the call finishes, and in the single-server property test a
  program then waited 2.75x its service at beta = 2. We never reset, so a
  demoted call is promoted again as soon as the program's W / T reaches beta,
  which holds the bound (the same test: 1.9x).
- ``beta_vs_median``: bounds anti-starvation in overload. With it set, a call is promoted
  only when its W / T is also >= ``beta_vs_median`` x the median W / T of the active calls
  (running or waiting, in any queue; those with no service yet have no ratio and are left
  out; with fewer than two ratios the absolute rule decides). Below capacity that median is small and
  the absolute rule (beta) decides alone; in overload every program's wait outgrows beta x
  its service, the absolute rule promotes nearly everyone and the order degrades to arrival
  order (Mixed at 3x capacity: 87k promotions, 1.09x vLLM-opt; with anti-starvation off
  1.60x). Relative to the median, only the programs starved compared to the others are
  promoted. None: the absolute rule alone (the paper, and the MLFQ baseline).
- ``reevaluate_every_steps``: the anti-starvation sweep runs every N engine steps
  (multi-step scheduling); demotion of served calls is checked every step.
- ``order_within_queue``: how calls of one queue are ordered. ``"call"``: by call
  arrival (the paper; FCFS inside a queue). ``"program"``: by their program's first
  arrival, then call arrival, so ties between programs are broken the same way at
  every step: a working set of programs keeps running and keeps its prefix cache hot
  instead of rotating through every program (call-FCFS evicts each program's cached
  context before its next call under a sustained queue). None: the policy's default
  (``program`` for PLAS/ATLAS, ``call`` for the FCFS/MLFQ baselines).
- ``queue_order``: which queue is served first. ``"attained"``: Q1 first (least attained
  service, the paper). ``"gittins"``: in decreasing Gittins index of the queues' lower
  bounds, learned from the total service of the programs that finished (``gittins.py``;
  PLAS/ATLAS only). None: the policy's default (``gittins`` for PLAS/ATLAS, which is LAS
  until 10 programs have finished).

Defaults and why:
- K = 8 queues, boundaries 0, 0.5, 1, 2, 4, 8, 16, 32 s. Doubling keeps demotions
  per call logarithmic (classic MLFQ). 0.5 s is about one short call at GPU scale
  (20 decode steps of 25 ms), so a new program's first call completes in Q1; 32 s
  is a long multi-call program (a ShareGPT session is about 6.7 calls of ~280
  decode tokens). Third-party Autellix ports use K of about 7 with doubling.
- beta = 8: the value those ports use. It bounds a program's wait to about 8x its
  execution time while leaving room for least-attained-service ordering.
- beta_vs_median = 4: a program is promoted once it has waited, per unit of service,
  4x what the median active call has (and beta x its service). Measured in the replay
  regime map against the absolute rule (docs/replay.md, the ablation rows).
- reevaluate every 4 steps: promotions lag by at most 4 steps (~0.1 s on a GPU) and
  the O(queued calls) sweep is amortised.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

DEFAULT_BOUNDARIES_S: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
DEFAULT_BETA = 8.0
DEFAULT_BETA_VS_MEDIAN = 4.0
DEFAULT_REEVALUATE_EVERY_STEPS = 4
ORDERS_WITHIN_QUEUE = ("call", "program")
QUEUE_ORDERS = ("attained", "gittins")


@dataclass(frozen=True)
class QueueConfig:
    boundaries_s: tuple[float, ...] = DEFAULT_BOUNDARIES_S
    quanta_s: tuple[float, ...] | None = None
    beta: float | None = DEFAULT_BETA
    beta_vs_median: float | None = DEFAULT_BETA_VS_MEDIAN
    reevaluate_every_steps: int = DEFAULT_REEVALUATE_EVERY_STEPS
    order_within_queue: str | None = None
    queue_order: str | None = None

    def __post_init__(self) -> None:
        b = tuple(float(x) for x in self.boundaries_s)
        object.__setattr__(self, "boundaries_s", b)
        if not b:
            raise ValueError("boundaries_s must list at least one queue (e.g. (0.0,))")
        if b[0] != 0.0:
            raise ValueError(f"boundaries_s must start at 0.0 (lo_1 = 0), got {b[0]!r}")
        if any(not math.isfinite(x) for x in b):
            raise ValueError(f"boundaries_s must be finite, got {b!r}")
        if any(later <= earlier for earlier, later in zip(b, b[1:])):
            raise ValueError(f"boundaries_s must be strictly increasing, got {b!r}")
        if self.quanta_s is not None:
            q = tuple(float(x) for x in self.quanta_s)
            object.__setattr__(self, "quanta_s", q)
            if len(q) != len(b):
                raise ValueError(
                    f"quanta_s needs one quantum per queue ({len(b)}), got {len(q)}"
                )
            if any(not (x > 0) for x in q):
                raise ValueError(f"quanta_s must all be > 0, got {q!r}")
        if self.beta is not None and not (self.beta > 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be a finite number > 0 (or None to disable), got {self.beta!r}")
        if self.beta_vs_median is not None and not (self.beta_vs_median > 0 and math.isfinite(self.beta_vs_median)):
            raise ValueError(
                f"beta_vs_median must be a finite number > 0 (or None to disable), got {self.beta_vs_median!r}"
            )
        if not isinstance(self.reevaluate_every_steps, int) or self.reevaluate_every_steps < 1:
            raise ValueError(
                f"reevaluate_every_steps must be an integer >= 1, got {self.reevaluate_every_steps!r}"
            )
        if self.order_within_queue is not None and self.order_within_queue not in ORDERS_WITHIN_QUEUE:
            raise ValueError(
                f"order_within_queue must be one of {list(ORDERS_WITHIN_QUEUE)} (or None for the "
                f"policy's default), got {self.order_within_queue!r}"
            )

        if self.queue_order is not None and self.queue_order not in QUEUE_ORDERS:
            raise ValueError(
                f"queue_order must be one of {list(QUEUE_ORDERS)} (or None for the policy's default), "
                f"got {self.queue_order!r}"
            )

    @property
    def num_levels(self) -> int:
        return len(self.boundaries_s)

    def level_for(self, service_s: float) -> int:
        """Index of the queue whose range [lo, hi) contains ``service_s``."""
        return max(0, bisect.bisect_right(self.boundaries_s, service_s) - 1)

    def upper_s(self, level: int) -> float:
        b = self.boundaries_s
        return b[level + 1] if level + 1 < len(b) else math.inf

    def quantum_s(self, level: int) -> float:
        """Full quantum of a queue (given on demotion or promotion into it)."""
        if self.quanta_s is not None:
            return self.quanta_s[level]
        return self.upper_s(level) - self.boundaries_s[level]

    def entry_quantum_s(self, level: int, attained_s: float) -> float:
        """Quantum of a call entering ``level`` on arrival with ``attained_s`` already."""
        if self.quanta_s is not None:
            return self.quanta_s[level]
        return self.upper_s(level) - attained_s
