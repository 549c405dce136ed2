"""Per-workload statistics printed next to the paper's workload table (spec section 7).

Columns: programs; calls/program mean, p99 and max; prompt tokens/call mean (the full
prompt sent, history included); new tokens/call mean (prompt minus the longer of the
reused in-program context and the cross-program shared prefix: what a warm prefix
cache still computes); decode tokens/call mean; think s/call: mean ``think_time_s``
over calls that have one (> 0; user think or tool time before a call; 0 when none
does). Paper values sit under each measured
row. The paper calls its column "prefill tok/call" without saying whether history is
included; for ShareGPT it cannot be (255.65 prefill < 276.81 decode per call over 6.66
turns), so compare ShareGPT's paper prefill with "new", BFCL's and LATS's with "prompt".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autellix_ray.bench.workloads.model import Workload


@dataclass(frozen=True)
class PaperRow:
    calls_mean: float
    calls_max: float
    prefill_mean: float
    decode_mean: float


PAPER_TABLE: dict[str, PaperRow] = {  # Autellix (arXiv 2502.13965), workload table
    "sharegpt": PaperRow(6.66, 80, 255.65, 276.81),
    "bfcl": PaperRow(10.75, 70, 735.06, 34.14),
    "lats": PaperRow(159.7, 400, 467.2, 72.6),  # tail "~400"
}


@dataclass(frozen=True)
class WorkloadStats:
    name: str
    synthetic: bool
    num_programs: int
    num_calls: int
    calls_mean: float
    calls_p99: float
    calls_max: int
    prompt_mean: float
    new_tokens_mean: float
    decode_mean: float
    think_mean_s: float


def compute_stats(workload: Workload) -> WorkloadStats:
    if not workload.programs:
        raise ValueError(f"workload {workload.name!r} has no programs")
    per_program = np.array([p.num_calls for p in workload.programs])
    calls = [c for p in workload.programs for c in p.calls]
    thinks = [c.think_time_s for c in calls if c.think_time_s > 0]
    return WorkloadStats(
        name=workload.name,
        synthetic=workload.synthetic,
        num_programs=len(workload.programs),
        num_calls=len(calls),
        calls_mean=float(per_program.mean()),
        calls_p99=float(np.percentile(per_program, 99)),
        calls_max=int(per_program.max()),
        prompt_mean=float(np.mean([c.prompt_tokens for c in calls])),
        new_tokens_mean=float(np.mean([c.new_tokens for c in calls])),
        decode_mean=float(np.mean([c.decode_tokens for c in calls])),
        think_mean_s=float(np.mean(thinks)) if thinks else 0.0,
    )


def format_table(rows: list[WorkloadStats]) -> str:
    head = (
        f"{'workload':<22}{'programs':>9}{'calls mean':>11}{'p99':>7}{'max':>6}"
        f"{'prompt/call':>13}{'new/call':>10}{'decode/call':>13}{'think s/call':>14}"
    )
    lines = [head, "-" * len(head)]
    for s in rows:
        label = s.name + (" (synthetic)" if s.synthetic else "")
        lines.append(
            f"{label:<22}{s.num_programs:>9}{s.calls_mean:>11.2f}{s.calls_p99:>7.0f}{s.calls_max:>6}"
            f"{s.prompt_mean:>13.1f}{s.new_tokens_mean:>10.1f}{s.decode_mean:>13.1f}{s.think_mean_s:>14.2f}"
        )
        paper = PAPER_TABLE.get(s.name)
        if paper is not None:
            lines.append(
                f"{'  paper':<22}{'':>9}{paper.calls_mean:>11.2f}{'':>7}{paper.calls_max:>6.0f}"
                f"{'prefill ' + format(paper.prefill_mean, '.2f'):>23}{paper.decode_mean:>13.2f}"
            )
    return "\n".join(lines)
