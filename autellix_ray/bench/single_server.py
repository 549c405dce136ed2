"""A one-call-at-a-time server driven only by a scheduling policy (pure Python).

The smallest loop that exercises a policy end to end: programs arrive, issue
sequential calls of known service, the server runs the head of ``policy.order()``
for one tick, and program rows collect wait and service. Used by the property
tests (anti-starvation bound) and by the interim demo. It is not the GPU-scale
replay benchmark: no batching, no KV, no engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autellix_ray.core import Call, SchedulingPolicy


@dataclass(frozen=True)
class ProgramResult:
    program_id: str
    arrival_s: float
    finish_s: float
    wait_s: float
    service_s: float

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s


def run_single_server(
    policy: SchedulingPolicy,
    programs: Mapping[str, tuple[float, Sequence[float]]],
    tick_s: float,
) -> dict[str, ProgramResult]:
    """Serve ``programs`` ({id: (arrival time, [service of each sequential call])})."""
    if not tick_s > 0:
        raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
    pending = {p: list(calls) for p, (_, calls) in programs.items()}
    active: dict[str, tuple[str, float]] = {}  # program -> (call id, work left)
    finish: dict[str, float] = {}
    now = 0.0
    seq = itertools.count()
    while pending or active:
        for p in list(pending):
            if p not in active and programs[p][0] <= now:
                if not pending[p]:
                    del pending[p]
                    finish[p] = now
                    continue
                cid = f"{p}.{next(seq)}"
                active[p] = (cid, pending[p].pop(0))
                policy.add(Call(cid, p), now)
        head = next(iter(policy.order()), None)
        now += tick_s
        if head is None:
            continue
        program = policy.state(head).call.program_id
        cid, left = active[program]
        policy.on_step({cid: tick_s}, now, tick_s)
        if left - tick_s <= 1e-9:
            policy.finish(cid, now)
            del active[program]
        else:
            active[program] = (cid, left - tick_s)
    results = {}
    for p, (arrival, _) in programs.items():
        row = policy.table.get(p)
        results[p] = ProgramResult(p, arrival, finish[p], row.wait_s, row.service_s)
    return results
