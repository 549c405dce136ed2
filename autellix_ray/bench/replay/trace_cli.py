"""Your own traffic: replay a JSONL trace through any policies and GPU presets.

    python -m autellix_ray.bench.replay --trace my.jsonl
    python -m autellix_ray.bench.replay --trace my.jsonl --policy vllm-opt --policy autellix \\
        --preset h100/llama-3.1-8b --rate 2 --out-dir /tmp/mine

The trace is the documented JSONL format (``autellix_ray/bench/workloads/trace.py``; write
one from a generator with ``python -m autellix_ray.bench.workloads --workload bfcl
--write-trace FILE``). Every (preset, policy) replays the same programs on one engine
(``engine.replay``), and the report has the ablation's stats (``metrics.latency_stats``
over all programs and over the middle 80% of the arrival window): program response time
mean/P50/P95/P99 in seconds, prefill tokens, prefix-cache hit rate, preemptions.

``--rate R`` scales every arrival time by one factor so the trace's observed rate
((programs - 1) / arrival span) becomes R programs/s: the arrival pattern (bursts, gaps)
is kept, no new Poisson draw; think times and call sizes are unchanged.

Writes ``<out-dir>/results/trace_replay.json`` and ``<out-dir>/trace_replay.md`` (default
out-dir: ``trace-replay/`` in the current directory) and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from autellix_ray.bench.replay.ablation import ablation_policies, fmt_ratio, ratio
from autellix_ray.bench.replay.config import DEFAULT_PRESET, POLICIES, EngineConfig, PolicySpec
from autellix_ray.bench.replay.metrics import TRIM, run_row
from autellix_ray.bench.workloads.model import Workload, assign_arrivals

# srpt is the clairvoyant reference: its oracle needs each call's prompt and decode tokens,
# which every valid trace line has, so it always runs by default.
DEFAULT_POLICIES = ("vllm-opt", "autellix", "program-fcfs", "srpt")
BASELINE = "vllm-opt"
PROG = "python -m autellix_ray.bench.replay"


def known_policies() -> dict[str, PolicySpec]:
    """Every replay policy by name, plus the ablation's rows ("-preemption", ...)."""
    return {**POLICIES, **{p.name: p for p in ablation_policies()}}


def observed_rate(workload: Workload) -> float | None:
    """(programs - 1) / arrival span, programs/s; None when the arrivals span no time."""
    times = [p.arrival_s for p in workload.programs]
    span = times[-1] - times[0] if times else 0.0
    return (len(times) - 1) / span if span > 0 else None


def rescale(workload: Workload, rate: float) -> tuple[Workload, float]:
    """The workload with every arrival time multiplied by one factor so its observed rate is
    ``rate``; returns it and the factor. ValueError when the arrivals span no time."""
    current = observed_rate(workload)
    if current is None:
        raise ValueError("--rate needs a trace whose arrivals span some time (at least two distinct arrival times)")
    factor = current / rate
    programs = assign_arrivals(workload.programs, [p.arrival_s * factor for p in workload.programs])
    return dataclasses.replace(workload, programs=programs, rate=rate), factor


def run_job(workload: Workload, preset: str, policy: PolicySpec, seed: int = 0, on_progress=None) -> dict[str, Any]:
    """One replay of the trace: the ablation's row (stats over all and trimmed programs)."""
    from autellix_ray.bench.replay.engine import replay

    result = replay(workload, policy, engine_config=EngineConfig(preset=preset), seed=seed, on_progress=on_progress)
    return {"preset": preset, "policy": policy.name, **run_row(result, policy)}


def run_jobs(workload: Workload, jobs: list[tuple[str, PolicySpec]], workers: int, seed: int) -> list[dict]:
    """Every (preset, policy); in this process with one worker, else in a process pool.
    A progress bar counts finished programs over all jobs."""
    from tqdm import tqdm

    rows: list[dict] = []
    with tqdm(total=len(jobs) * workload.num_programs, desc="programs replayed", unit="prog",
              file=sys.stderr, smoothing=0.1) as bar:
        if workers <= 1:
            for preset, policy in jobs:
                rows.append(run_job(workload, preset, policy, seed, on_progress=bar.update))
            return rows
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_job, workload, preset, policy, seed) for preset, policy in jobs]
            for future in as_completed(futures):
                rows.append(future.result())
                bar.update(workload.num_programs)
    return rows


# -- report ---------------------------------------------------------------------------
def _seconds(value: float) -> str:
    if math.isnan(value):  # no programs in the window
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def _tokens(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} K" if n >= 1e3 else str(n)


def table(doc: dict[str, Any], preset: str) -> list[str]:
    rows = doc["presets"][preset]["policies"]
    base = rows.get(BASELINE)

    def vs(r: dict, window: str, stat: str) -> str:
        return fmt_ratio(ratio(r[window][stat], base[window][stat]) if base else None)

    lines = [
        ("| policy | programs (trimmed / all) | mean s | P50 s | P95 s | P99 s | mean vs vLLM-opt | P95 vs vLLM-opt "
         "| P99 vs vLLM-opt | mean s, all | mean vs vLLM-opt, all | prefill tokens | prefix hit | preemptions |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        t, a = r["trimmed"], r["all"]
        lines.append(
            f"| {name} | {t['num_programs']} / {a['num_programs']} | {_seconds(t['mean_s'])} "
            f"| {_seconds(t.get('p50_s', float('nan')))} | {_seconds(t['p95_s'])} | {_seconds(t['p99_s'])} "
            f"| {vs(r, 'trimmed', 'mean_s')} | {vs(r, 'trimmed', 'p95_s')} | {vs(r, 'trimmed', 'p99_s')} "
            f"| {_seconds(a['mean_s'])} | {vs(r, 'all', 'mean_s')} | {_tokens(r['prefill_tokens'])} "
            f"| {r['prefix_hit_rate']:.2f} | {r['num_preemptions']} |"
        )
    return lines


def render(doc: dict[str, Any]) -> str:
    tr = doc["trace"]
    arrivals = (f"rescaled to {tr['rescaled_to_rate']:g}/s (arrival times x {tr['time_scale']:.4g})"
                if tr["rescaled_to_rate"] is not None else "as recorded")
    observed = tr["observed_rate"]
    lines = [
        f"# Trace replay: {tr['name']}",
        "",
        (f"`{tr['path']}`: {tr['num_programs']} programs, {tr['num_calls']} calls, observed rate "
         f"{'-' if observed is None else f'{observed:.3g}/s'}; arrivals {arrivals}."),
        "",
        f"Command: `{doc['command']}` (commit {doc['commit']}, {doc['runtime']['wall_s'] / 60:.1f} min).",
        "",
        "vLLM's own scheduler (stock, or with the Autellix plugin) on the GPU cost model's simulated clock",
        "(`docs/replay.md` explains the replay). Latency = program response time in seconds (arrival to its",
        f"last call's finish) over the programs arriving in the middle {100 - 200 * TRIM:.0f}% of the arrival",
        "window (warm-up and drain trimmed), and the mean over all programs; `vs vLLM-opt` = vLLM-opt's",
        "value / the row's (> 1 is better; `undefined` without a vLLM-opt row or a value). `srpt` is the",
        "clairvoyant oracle (it knows every call's size), a reference, not a deployable policy.",
        "",
    ]
    for preset in doc["presets"]:
        lines += [f"## {preset}", "", *table(doc, preset), ""]
    return "\n".join(lines)


# -- CLI --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--trace", required=True, metavar="FILE", help="JSONL trace (see workloads/trace.py)")
    parser.add_argument("--policy", action="append", metavar="NAME",
                        help=f"repeatable; default: {', '.join(DEFAULT_POLICIES)}. Any replay policy, or an "
                        "ablation row (--policy=-preemption)")
    parser.add_argument("--preset", action="append", metavar="NAME",
                        help=f"cost-model preset (GPU/model), repeatable; default: {DEFAULT_PRESET}")
    parser.add_argument("--rate", type=float, metavar="R",
                        help="scale arrival times so the trace's observed rate is R programs/s (no Poisson redraw)")
    parser.add_argument("--out-dir", default="trace-replay", help="writes results/trace_replay.json and "
                        "trace_replay.md here (default: ./trace-replay)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="replay processes in parallel (1: in this process)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the prompts' token ids")
    args = parser.parse_args(argv)

    policies = known_policies()
    names = list(dict.fromkeys(args.policy or DEFAULT_POLICIES))
    unknown = [n for n in names if n not in policies]
    if unknown:
        parser.error(f"unknown policy {unknown[0]!r}; choose from {sorted(policies)}")
    from autellix_ray.bench.cost_model import PRESETS

    presets = list(dict.fromkeys(args.preset or [DEFAULT_PRESET]))
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        parser.error(f"unknown preset {unknown[0]!r}; choose one of {sorted(PRESETS)}")
    if args.rate is not None and not 0 < args.rate < math.inf:
        parser.error(f"--rate must be a finite number > 0, got {args.rate}")
    if args.workers < 1:
        parser.error("--workers must be >= 1")

    from autellix_ray.bench.workloads.trace import read_trace

    try:
        workload = read_trace(args.trace)
    except OSError as err:
        parser.error(f"cannot read trace {args.trace}: {err.strerror or err}")
    except ValueError as err:  # the parser names the line
        parser.error(f"{args.trace}: {err}")
    if not workload.programs:
        parser.error(f"{args.trace}: the trace has no programs")
    observed, header_rate = observed_rate(workload), workload.rate
    factor = 1.0
    if args.rate is not None:
        try:
            workload, factor = rescale(workload, args.rate)
        except ValueError as err:
            parser.error(str(err))

    jobs = [(preset, policies[name]) for preset in presets for name in names]
    workers = min(args.workers, len(jobs))
    t0 = time.perf_counter()
    rows = run_jobs(workload, jobs, workers, args.seed)
    wall = time.perf_counter() - t0

    from autellix_ray.bench.ci import source_commit

    by_key = {(r["preset"], r["policy"]): r for r in rows}
    doc = {
        "command": f"{PROG} {shlex.join(argv)}",
        "commit": source_commit(),
        "seed": args.seed,
        "trace": {
            "path": args.trace,
            "name": workload.name,
            "num_programs": workload.num_programs,
            "num_calls": workload.num_calls,
            "header_rate": header_rate,
            "observed_rate": observed,
            "rescaled_to_rate": args.rate,
            "time_scale": factor,
        },
        "trim_fraction": TRIM,
        "definitions": {
            "latency": "program response time, s: its last call's finish - its arrival",
            "trimmed": f"programs arriving in the middle {100 - 200 * TRIM:.0f}% of the arrival window",
            "observed_rate": "(programs - 1) / (last arrival - first arrival), before any --rate scaling",
            "time_scale": "factor every arrival time was multiplied by (--rate); 1 = as recorded",
        },
        "runtime": {"wall_s": wall, "workers": workers, "num_runs": len(rows)},
        "presets": {
            preset: {
                "engine": EngineConfig(preset=preset).describe(),
                "policies": {name: by_key[(preset, name)] for name in names},
            }
            for preset in presets
        },
    }
    from autellix_ray.bench.replay.__main__ import _clean

    out = Path(args.out_dir)
    path = out / "results" / "trace_replay.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n")
    report = out / "trace_replay.md"
    text = render(doc)
    report.write_text(text + "\n")
    print(text)
    print(f"wrote {path} and {report} in {wall / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
