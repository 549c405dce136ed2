"""Cache-coherence ablation: the shipped default against vLLM-opt, the paper's PLAS, and each
mechanism switched off, at loads where calls queue.

    python -m autellix_ray.bench.replay.ablation                   # writes docs/
    python -m autellix_ray.bench.replay.ablation --quick --out-dir /tmp/abl   # smoke test

Each point is a (workload, preset, programs, rate) run long enough to build a sustained
queue; every policy replays the same programs (same seed). Rows per point:

- ``vllm-opt``: stock vLLM (FCFS by call, prefix caching): the guard "never worse".
- ``plas``: the paper's PLAS (service = step wall time, FCFS by call inside a queue).
- ``autellix``: the plugin's defaults (``autellix_ray/vllm/settings.py``).
- ``-program-order``: the default with FCFS by call inside a queue.
- ``-work-service``: the default with the paper's wall-time service.
- ``-preemption``: the default with proactive preemption off.
- ``program-fcfs``: one queue in program order (Continuum-style), and ``srpt``, the
  clairvoyant heuristic.

Stats per run: over all programs and over the programs arriving in the middle 80% of the
arrival window (warm-up and drain trimmed), mean/P95/P99 program response time in seconds;
prefill tokens, prefix-cache hit rate, preemptions and anti-starvation promotions. Writes
``<out-dir>/results/cache_coherence.json`` and ``<out-dir>/cache_coherence.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

import numpy as np

from autellix_ray.bench.replay.config import EngineConfig, PolicySpec, get_policy

TRIM = 0.1  # the first and last 10% of the arrival window are warm-up and drain


@dataclass(frozen=True)
class Point:
    workload: str
    num_programs: int
    rate: float
    preset: str = "a100-80gb/llama-3.1-8b"

    @property
    def label(self) -> str:
        gpu = self.preset.split("/")[0]
        return f"{self.workload} {self.num_programs} @ {self.rate:g}/s ({gpu})"


def ablation_policies() -> list[PolicySpec]:
    default = get_policy("autellix")
    return [
        get_policy("vllm-opt"),
        get_policy("plas"),
        default,
        default.with_settings("-program-order", order_within_queue="call"),
        default.with_settings("-work-service", service_unit="wall"),
        default.with_settings("-preemption", max_preemptions_per_step=0),
        get_policy("program-fcfs"),
        get_policy("srpt"),
    ]


FULL_POINTS = (
    Point("sharegpt", 1000, 2.5),
    Point("bfcl", 1500, 16.0),
    Point("bfcl", 1500, 8.0),
    Point("moa", 400, 1.5),
    Point("coding", 200, 0.5, "a100-40gb/llama-3.1-8b"),
)
QUICK_POINTS = (Point("sharegpt", 12, 4.0),)
QUICK_POLICIES = ("vllm-opt", "plas", "autellix")


def trimmed(programs: list[Any]) -> list[Any]:
    """Programs arriving in the middle 80% of the arrival window."""
    if not programs:
        return []
    first = min(p.arrival_s for p in programs)
    last = max(p.arrival_s for p in programs)
    lo, hi = first + TRIM * (last - first), last - TRIM * (last - first)
    return [p for p in programs if lo <= p.arrival_s <= hi]


def latency_stats(programs: list[Any]) -> dict[str, float]:
    if not programs:
        return {"num_programs": 0, "mean_s": math.nan, "p95_s": math.nan, "p99_s": math.nan}
    lat = np.array([p.latency_s for p in programs])
    return {
        "num_programs": len(programs),
        "mean_s": float(lat.mean()),
        "p50_s": float(np.percentile(lat, 50)),
        "p95_s": float(np.percentile(lat, 95)),
        "p99_s": float(np.percentile(lat, 99)),
    }


def run_one(point: Point, policy: PolicySpec, seed: int = 0) -> dict[str, Any]:
    from autellix_ray.bench.replay.engine import replay
    from autellix_ray.bench.workloads import make_workload

    workload = make_workload(point.workload, point.num_programs, point.rate, seed)
    result = replay(workload, policy, engine_config=EngineConfig(preset=point.preset), seed=seed)
    engines = result.engines
    admitted = sum(e["admitted_prompt_tokens"] for e in engines)
    counters = result.plugin_counters
    return {
        "point": point.label,
        "policy": policy.name,
        "settings": policy.describe(),
        "all": latency_stats(result.programs),
        "trimmed": latency_stats(trimmed(result.programs)),
        "sim_time_s": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
        "num_calls": result.num_calls,
        "prefill_tokens": sum(e["prefill_tokens"] for e in engines),
        "prefix_hit_rate": sum(e["prefix_hit_tokens"] for e in engines) / admitted if admitted else 0.0,
        "num_preemptions": sum(e["num_preemptions"] for e in engines),
        "max_running": max(e["max_running"] for e in engines),
        "num_promotions": sum(c.get("num_promotions", 0) for c in counters) if counters else None,
    }


def ratio(ours: float, base: float) -> float | None:
    """base / ours (> 1: ours is better); None when either is missing."""
    if not (math.isfinite(ours) and math.isfinite(base)) or ours <= 0:
        return None
    return base / ours


def fmt_ratio(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}x"


def render(doc: dict[str, Any]) -> str:
    lines = [
        "# Cache-coherent scheduling: ablation in the replay",
        "",
        f"Command: `{doc['command']}` ({doc['wall_minutes']:.1f} min wall on this 2-core machine, shared).",
        "",
        "vLLM 0.32's own scheduler (stock, or with the Autellix plugin) on the GPU cost model's simulated",
        "clock (`docs/replay.md` explains the replay). Latency = program response time in seconds over the",
        f"programs arriving in the middle {100 - 200 * TRIM:.0f}% of the arrival window (warm-up and drain",
        "trimmed; counts in the table); `vs vLLM-opt` = vLLM-opt's value / the row's (> 1 is better).",
        "Rows starting with `-` are the default with one mechanism switched off.",
        "",
    ]
    for point, rows in doc["points"].items():
        base = rows.get("vllm-opt")
        lines += [f"## {point}", "",
                  "| policy | programs | mean s | P95 s | P99 s | mean vs vLLM-opt | P95 vs vLLM-opt "
                  "| prefill tokens | prefix hit | preemptions | promotions |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in rows.items():
            t = r["trimmed"]
            mean_ratio = ratio(t["mean_s"], base["trimmed"]["mean_s"]) if base else None
            p95_ratio = ratio(t["p95_s"], base["trimmed"]["p95_s"]) if base else None
            promotions = "-" if r["num_promotions"] is None else str(r["num_promotions"])
            lines.append(
                f"| {name} | {t['num_programs']} | {t['mean_s']:.1f} | {t['p95_s']:.1f} | {t['p99_s']:.1f} "
                f"| {fmt_ratio(mean_ratio)} | {fmt_ratio(p95_ratio)} | {r['prefill_tokens'] / 1e6:.2f} M "
                f"| {r['prefix_hit_rate']:.2f} | {r['num_preemptions']} | {promotions} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny point, three policies (smoke test)")
    parser.add_argument("--out-dir", default="docs", help="where results/ and cache_coherence.md go")
    parser.add_argument("--workers", type=int, default=2, help="replay processes in parallel")
    args = parser.parse_args(argv)
    points = QUICK_POINTS if args.quick else FULL_POINTS
    policies = [get_policy(p) for p in QUICK_POLICIES] if args.quick else ablation_policies()
    jobs = [(pt, pol) for pt in points for pol in policies]
    from tqdm import tqdm

    t0 = time.perf_counter()
    results: dict[tuple[str, str], dict] = {}
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_one, pt, pol): (pt.label, pol.name) for pt, pol in jobs}
        for future in tqdm(as_completed(futures), total=len(futures), desc="replays", file=sys.stderr):
            results[futures[future]] = future.result()
    doc = {
        "command": "python -m autellix_ray.bench.replay.ablation" + (" " + " ".join(argv or sys.argv[1:])).rstrip(),
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "trim_fraction": TRIM,
        "points": {
            pt.label: {pol.name: results[(pt.label, pol.name)] for pol in policies} for pt in points
        },
    }
    out = Path(args.out_dir)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / "cache_coherence.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out / "cache_coherence.md").write_text(render(doc) + "\n")
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
