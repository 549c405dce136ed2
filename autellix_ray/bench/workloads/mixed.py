"""Mixed workload: each program drawn with equal probability from ShareGPT, BFCL and LATS.

Algorithm: one Poisson process of ``rate`` programs/s gives the arrivals; each arriving
program's kind is drawn uniformly from ``KINDS`` (so the three share the rate equally in
expectation, as in the paper's "equal mix"); the ``k_j`` programs of kind ``j`` come from
that kind's generator with a seed derived from ``seed``, then are interleaved in draw
order. Program ids keep their kind's prefix (``sharegpt-3``, ``lats-0``). Options for one
kind go in ``sharegpt=dict(...)``, ``bfcl=dict(...)``, ``lats=dict(...)``. The result is
``synthetic=True`` if any part is.
"""

from __future__ import annotations

from collections.abc import Mapping

from autellix_ray.bench.workloads.bfcl import make_bfcl_workload
from autellix_ray.bench.workloads.lats import make_lats_workload
from autellix_ray.bench.workloads.model import (
    Workload,
    assign_arrivals,
    check_num_programs,
    make_rngs,
    poisson_arrival_times,
)
from autellix_ray.bench.workloads.sharegpt import make_sharegpt_workload

NAME = "mixed"
KINDS = ("sharegpt", "bfcl", "lats")
_MAKERS = {"sharegpt": make_sharegpt_workload, "bfcl": make_bfcl_workload, "lats": make_lats_workload}


def make_mixed_workload(
    num_programs: int,
    rate: float,
    seed: int,
    *,
    sharegpt: Mapping | None = None,
    bfcl: Mapping | None = None,
    lats: Mapping | None = None,
) -> Workload:
    check_num_programs(num_programs)
    options = {"sharegpt": dict(sharegpt or {}), "bfcl": dict(bfcl or {}), "lats": dict(lats or {})}
    arrival_rng, kind_rng, seed_rng = make_rngs(seed, 3)
    arrivals = poisson_arrival_times(num_programs, rate, arrival_rng)
    kinds = [KINDS[int(k)] for k in kind_rng.integers(0, len(KINDS), size=num_programs)]
    parts: dict[str, list] = {}
    descriptions = []
    synthetic = False
    for kind in KINDS:
        count = kinds.count(kind)
        sub_seed = int(seed_rng.integers(0, 2**63 - 1))
        if count == 0:
            continue
        part = _MAKERS[kind](count, 1.0, sub_seed, **options[kind])
        parts[kind] = list(part.programs)
        synthetic = synthetic or part.synthetic
        descriptions.append(f"{kind}: {count} ({part.description})")
    cursor = dict.fromkeys(parts, 0)
    programs = []
    for kind in kinds:
        programs.append(parts[kind][cursor[kind]])
        cursor[kind] += 1
    description = "equal mix of " + ", ".join(KINDS) + "; " + "; ".join(descriptions)
    return Workload(NAME, assign_arrivals(programs, arrivals), rate, seed, synthetic, description)
