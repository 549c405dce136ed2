"""Test helper: a one-call-at-a-time server driven only by a scheduling policy (pure Python).

The smallest loop that exercises a policy end to end: programs arrive, issue
sequential calls of known service, the server runs the head of ``policy.order()``
for one tick, and program rows collect wait and service. Used by the property
tests (anti-starvation bound). It is not the GPU-scale replay benchmark: no
batching, no KV, no engine.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from autellix_ray.core import Call, SchedulingPolicy


def run_single_server(
    policy: SchedulingPolicy,
    programs: Mapping[str, tuple[float, Sequence[float]]],
    tick_s: float,
) -> dict[str, Any]:
    """Serve ``programs`` ({id: (arrival time, [service of each sequential call])}) to the
    end; return each program's row of ``policy.table`` (``wait_s``, ``service_s``)."""
    if not tick_s > 0:
        raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
    pending = {p: list(calls) for p, (_, calls) in programs.items()}
    active: dict[str, tuple[str, float]] = {}  # program -> (call id, work left)
    now = 0.0
    seq = itertools.count()
    while pending or active:
        for p in list(pending):
            if p not in active and programs[p][0] <= now:
                if not pending[p]:
                    del pending[p]
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
    return {p: policy.table.get(p) for p in programs}
