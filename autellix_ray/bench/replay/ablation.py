"""Cache-coherence ablation: the shipped default against vLLM-opt, the paper's PLAS, and each
mechanism switched off, at loads where calls queue.

    python -m autellix_ray.bench.replay.ablation                   # writes docs/
    python -m autellix_ray.bench.replay.ablation --point "bfcl 1500 @ 16" --policy vllm-opt
    python -m autellix_ray.bench.replay.ablation --quick --out-dir /tmp/abl   # smoke test

Rows are merged into the existing results file (a rerun of a (point, policy) replaces its
row), so a long ablation can be run in parts; every row records the commit it ran on.

Each point is a (workload, preset, programs, rate) run long enough to build a sustained
queue; every policy replays the same programs (same seed). Rows per point:

- ``vllm-opt``: stock vLLM (FCFS by call, prefix caching): the guard "never worse".
- ``plas``: the paper's PLAS (service = step wall time, FCFS by call inside a queue).
- ``autellix``: the plugin's defaults (``autellix_ray/vllm/settings.py``).
- ``-program-order``: the default with FCFS by call inside a queue.
- ``-work-service``: the default with the paper's wall-time service.
- ``-preemption``: the default with proactive preemption off.
- ``-gittins``: queues served Q1 first (least attained service) instead of the Gittins order.
- ``-starvation``: anti-starvation off; ``-relative-starvation``: the absolute rule alone
  (W / T >= beta promotes, whatever the other programs waited).
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
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


from autellix_ray.bench.replay.config import EngineConfig, PolicySpec, get_policy
from autellix_ray.bench.replay.metrics import TRIM, run_row


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


# The default with one mechanism switched off: row name -> the plugin settings that switch it off.
MECHANISMS_OFF: dict[str, dict[str, Any]] = {
    "-program-order": {"order_within_queue": "call"},
    "-work-service": {"service_unit": "wall"},
    "-preemption": {"max_preemptions_per_step": 0},
    "-gittins": {"queue_order": "attained"},
    "-starvation": {"beta": None},
    "-relative-starvation": {"beta_vs_median": None},  # the absolute rule alone (the paper's)
}


def mechanism_off(name: str, base: str = "autellix") -> PolicySpec:
    """``base`` (the default, PLAS or ATLAS) with the mechanism ``name`` ("-preemption", ...) off."""
    if name not in MECHANISMS_OFF:
        raise ValueError(f"unknown ablation row {name!r}; choose one of {sorted(MECHANISMS_OFF)}")
    return get_policy(base).with_settings(name, **MECHANISMS_OFF[name])


def variant(name: str, base: str = "autellix") -> PolicySpec:
    """``base`` with plugin settings changed, named by them: "+beta_vs_median=2,beta=4".

    Values are read as JSON (numbers, null, true/false, lists), else kept as strings; unknown
    settings fail when the engine starts, so they are checked here against the plugin's keys.
    """
    from autellix_ray.vllm.settings import PluginSettings

    if not name.startswith("+") or "=" not in name:
        raise ValueError(f"a variant row is +KEY=VALUE[,KEY=VALUE...], got {name!r}")
    settings: dict[str, Any] = {}
    for item in name[1:].split(","):
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"a variant row is +KEY=VALUE[,KEY=VALUE...], got {name!r}")
        try:
            settings[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            settings[key.strip()] = raw
    spec = get_policy(base).with_settings(name, **settings)
    PluginSettings.from_mapping({"policy": spec.autellix_policy, **spec.settings})  # raises on bad keys/values
    return spec


def row_policy(name: str, base: str = "autellix") -> PolicySpec:
    """A results row's policy by name: "-mechanism" (``mechanism_off``), "+KEY=VALUE" (``variant``),
    or a named policy (``config.POLICIES``). Bad names raise ValueError."""
    if name.startswith("-"):
        return mechanism_off(name, base)
    if name.startswith("+"):
        return variant(name, base)
    return get_policy(name)


def ablation_policies() -> list[PolicySpec]:
    return [
        get_policy("vllm-opt"),
        get_policy("plas"),
        get_policy("autellix"),
        *[mechanism_off(name) for name in MECHANISMS_OFF],
        get_policy("program-fcfs"),
        get_policy("srpt"),
    ]


FULL_POINTS = (
    Point("bfcl", 1500, 16.0),  # the paper's tool-calling workload, above capacity
    Point("bfcl", 1500, 8.0),  # below capacity: no call waits, every order should tie
    Point("sharegpt", 1000, 2.5),
    Point("moa", 400, 1.5),
    Point("coding", 100, 0.05, "a100-40gb/llama-3.1-8b"),
)
QUICK_POINTS = (Point("sharegpt", 12, 4.0),)
CORE_POLICIES = ("vllm-opt", "plas", "autellix", "program-fcfs", "srpt")  # every point; ablation rows at the first
QUICK_POLICIES = ("vllm-opt", "plas", "autellix")


def run_one(point: Point, policy: PolicySpec, seed: int = 0) -> dict[str, Any]:
    from autellix_ray.bench.replay.engine import replay
    from autellix_ray.bench.workloads import make_workload

    workload = make_workload(point.workload, point.num_programs, point.rate, seed)
    result = replay(workload, policy, engine_config=EngineConfig(preset=point.preset), seed=seed)
    return {"point": point.label, "policy": policy.name, "commit": git_commit(), **run_row(result, policy)}


def git_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return out.stdout.strip()[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def default_jobs(points: tuple[Point, ...]) -> list[tuple[Point, PolicySpec]]:
    """The core policies at every point; every ablation row at the first point."""
    everything = ablation_policies()
    jobs = [(points[0], pol) for pol in everything]
    jobs += [(pt, get_policy(name)) for pt in points[1:] for name in CORE_POLICIES]
    return jobs


def ratio(ours: float, base: float) -> float | None:
    """base / ours (> 1: ours is better); None when either is missing."""
    if not (math.isfinite(ours) and math.isfinite(base)) or ours <= 0:
        return None
    return base / ours


def fmt_ratio(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.2f}x"


NEVER_WORSE = 1.05  # the default's mean and P95 may be at most this much worse than vLLM-opt's
OVERLOAD_WHEN = 1.5  # the overload target applies where program-FCFS or the oracle gain at least this
OVERLOAD_GAIN = 2.0  # ... and there the default should gain this
NEAR_BEST = 1.2  # ... and be within this factor of the better of the two


def summarize(doc: dict[str, Any]) -> dict[str, Any]:
    """The targets of the cache-coherent scheduling issue, per point, from the trimmed stats."""
    out: dict[str, Any] = {}
    for label, rows in doc["points"].items():
        base, ours = rows.get("vllm-opt"), rows.get("autellix")
        if base is None or ours is None:
            continue
        b, o = base["trimmed"], ours["trimmed"]
        entry: dict[str, Any] = {
            "mean_vs_vllm_opt": ratio(o["mean_s"], b["mean_s"]),
            "p95_vs_vllm_opt": ratio(o["p95_s"], b["p95_s"]),
        }
        worst = [r for r in (entry["mean_vs_vllm_opt"], entry["p95_vs_vllm_opt"]) if r is not None]
        entry["never_worse"] = {"target": f"mean and P95 <= {NEVER_WORSE}x vLLM-opt's",
                                "met": len(worst) == 2 and min(worst) >= 1 / NEVER_WORSE}
        refs = [rows[n]["trimmed"]["mean_s"] for n in ("program-fcfs", "srpt") if n in rows]
        if refs:
            best = min(refs)
            best_gain = ratio(best, b["mean_s"])
            entry["best_reference_gain"] = best_gain
            if best_gain is not None and best_gain >= OVERLOAD_WHEN:
                gain = entry["mean_vs_vllm_opt"]
                entry["overload"] = {
                    "target": f">= {OVERLOAD_GAIN}x vLLM-opt and within {NEAR_BEST}x of the best reference",
                    "within_best": ratio(best, o["mean_s"]),
                    "met": gain is not None and gain >= OVERLOAD_GAIN and o["mean_s"] <= NEAR_BEST * best,
                }
        out[label] = entry
    return out


def _vs_best(entry: dict[str, Any]) -> str:
    """The default's mean over the best reference's (1.00x = as good; > 1: slower), or undefined."""
    ours, best = entry.get("mean_vs_vllm_opt"), entry.get("best_reference_gain")
    return fmt_ratio(best / ours) if ours and best else "undefined"


def _overload_verdict(entry: dict[str, Any]) -> str:
    overload = entry.get("overload")
    if overload is None:
        return f"n/a (best reference < {OVERLOAD_WHEN}x)"
    return "met" if overload["met"] else "NOT met"


def render(doc: dict[str, Any]) -> str:
    summary = summarize(doc)
    lines = [
        "# Cache-coherent scheduling: ablation in the replay",
        "",
        "The shipped default (`autellix`: PLAS with load-invariant work as service, queues served in the",
        "Gittins order learned from finished programs, programs in a stable order inside a queue,",
        "cost-aware proactive preemption) against stock vLLM-opt, the paper's PLAS, program-level FCFS,",
        "the clairvoyant SRPT oracle, and each mechanism switched off. Guard: the default's mean and P95",
        f"program latency at most {NEVER_WORSE}x vLLM-opt's at every point. Overload target: where",
        f"program-FCFS or the oracle is >= {OVERLOAD_WHEN}x better than vLLM-opt, the default >= {OVERLOAD_GAIN}x",
        f"vLLM-opt and within {NEAR_BEST}x of the best of them.",
        "",
        ("| point | mean vs vLLM-opt | P95 vs vLLM-opt | never worse | best of program-FCFS / oracle "
         "vs vLLM-opt | mean vs that best | overload target |"),
        "|---|---|---|---|---|---|---|",
        *[f"| {label} | {fmt_ratio(e['mean_vs_vllm_opt'])} | {fmt_ratio(e['p95_vs_vllm_opt'])} "
          f"| {'met' if e['never_worse']['met'] else 'NOT met'} | {fmt_ratio(e.get('best_reference_gain'))} "
          f"| {_vs_best(e)} | {_overload_verdict(e)} |"
          for label, e in summary.items()],
        "",
        "Commands (rows are merged across runs; each row records its commit in the JSON):",
        "",
        *[f"- `{c}`" for c in doc["commands"]],
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
                  ("| policy | programs | mean s | P95 s | P99 s | mean vs vLLM-opt | P95 vs vLLM-opt "
                   "| prefill tokens | prefix hit | preemptions | promotions |"),
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
    parser.add_argument("--point", action="append", default=[],
                        help="only points whose label starts with this, e.g. 'bfcl 1500 @ 16' (repeatable)")
    parser.add_argument("--policy", action="append", default=[],
                        help="these policies at every point (repeatable; rows starting with '-': --policy=-preemption; "
                             "variants of the default: --policy=+beta_vs_median=4)")
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite the summary and cache_coherence.md from the results file, run nothing")
    args = parser.parse_args(argv)
    out = Path(args.out_dir)
    path = out / "results" / "cache_coherence.json"
    if args.render_only:
        return write(json.loads(path.read_text()), path, out)
    if args.quick:
        jobs = [(pt, get_policy(p)) for pt in QUICK_POINTS for p in QUICK_POLICIES]
    elif args.policy:  # the named policies at every (selected) point
        try:
            chosen = [row_policy(n) for n in args.policy]
        except ValueError as exc:
            parser.error(str(exc))
        jobs = [(pt, pol) for pt in FULL_POINTS for pol in chosen]
    else:
        jobs = default_jobs(FULL_POINTS)
    jobs = [(pt, pol) for pt, pol in jobs if not args.point or any(pt.label.startswith(p) for p in args.point)]
    if not jobs:
        parser.error("no (point, policy) left after --point/--policy filters")
    from tqdm import tqdm

    t0 = time.perf_counter()
    results: list[dict] = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(run_one, pt, pol) for pt, pol in jobs]
        for future in tqdm(as_completed(futures), total=len(futures), desc="replays", file=sys.stderr):
            results.append(future.result())
    doc = json.loads(path.read_text()) if path.exists() else {"trim_fraction": TRIM, "commands": [], "points": {}}
    command = "python -m autellix_ray.bench.replay.ablation " + shlex.join(argv if argv is not None else sys.argv[1:])
    doc.setdefault("commands", []).append(f"{command.strip()}  # {(time.perf_counter() - t0) / 60:.1f} min")
    order = [pt.label for pt in (QUICK_POINTS if args.quick else FULL_POINTS)]
    for row in results:
        doc["points"].setdefault(row["point"], {})[row["policy"]] = row
    policy_order = [p.name for p in ablation_policies()]
    doc["points"] = {
        label: dict(sorted(doc["points"][label].items(),
                           key=lambda kv: policy_order.index(kv[0]) if kv[0] in policy_order else 99))
        for label in sorted(doc["points"], key=lambda lb: order.index(lb) if lb in order else 99)
    }
    return write(doc, path, out)


def write(doc: dict[str, Any], path: Path, out: Path) -> int:
    doc["summary"] = summarize(doc)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    (out / "cache_coherence.md").write_text(render(doc) + "\n")
    print(render(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
