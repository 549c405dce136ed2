"""Statistics of the live benchmark (``bench/live.py``): pure functions, no cluster.

One run = one system at one arrival rate with one seed's trace (30 programs by default).
Each (system, rate) is repeated over several seeds; seeds are the independent replicates:

- a system's mean (or P95) program latency at a rate is the mean over seeds of each
  run's mean (P95), with a 95% confidence interval from Student's t (n = seeds, n - 1
  degrees of freedom; programs inside one run share a queue, so they are not
  independent samples);
- the ratio stock / autellix-ray is taken per seed (both systems ran the same trace,
  back to back) and summarised by its geometric mean over seeds, with the t interval of
  the log-ratios mapped back (``ratio_ci``). With 3 seeds the t quantile is 4.30, so the
  intervals are wide: they say how far the point estimates can be trusted.

The interval arithmetic is ``bench.ci``'s (shared with the other benchmarks).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from autellix_ray.bench import ci
from autellix_ray.bench.ci import t95  # noqa: F401 - re-exported for the report and tests


def mean_ci(values: list[float | None]) -> dict[str, Any]:
    """``bench.ci.mean_ci`` over the values that exist (a run with no finished program has
    None), keeping them under ``values``."""
    vals = [float(v) for v in values if v is not None]
    return {**ci.mean_ci(vals), "values": vals}


def ratio_ci(numerators: list[float | None], denominators: list[float | None]) -> dict[str, Any]:
    """``bench.ci.ratio_ci`` over the pairs where both sides exist."""
    pairs = [(n, d) for n, d in zip(numerators, denominators, strict=True) if n is not None and d is not None]
    return ci.ratio_ci([n for n, _ in pairs], [d for _, d in pairs])


def latency_stats(records: list[dict]) -> dict[str, Any]:
    """Program-latency statistics of one run (``latency_s`` excludes program start-up)."""
    ok = [r for r in records if r["error"] is None]
    lat = np.array([r["latency_s"] for r in ok], dtype=float)
    per_tok = np.array([r["latency_s"] / max(1, r["decode_tokens"]) for r in ok], dtype=float)
    out: dict[str, Any] = {"programs": len(records), "errors": len(records) - len(ok)}
    if len(ok) == 0:
        return {**out, "mean_s": None, "p50_s": None, "p95_s": None, "p99_s": None, "per_token_mean_s": None}
    out.update(
        mean_s=float(lat.mean()), p50_s=float(np.percentile(lat, 50)), p95_s=float(np.percentile(lat, 95)),
        p99_s=float(np.percentile(lat, 99)), per_token_mean_s=float(per_tok.mean()),
        per_token_p95_s=float(np.percentile(per_tok, 95)),
    )
    by_kind: dict[str, Any] = {}
    for kind in sorted({r["workload"] for r in ok}):
        k = np.array([r["latency_s"] for r in ok if r["workload"] == kind])
        by_kind[kind] = {"programs": len(k), "mean_s": float(k.mean()), "p95_s": float(np.percentile(k, 95))}
    out["by_workload"] = by_kind
    startup = [r["startup_s"] for r in ok if r.get("startup_s") is not None]
    if startup:  # POST /v1/programs, timed apart from the program (autellix-ray only)
        out["startup"] = {"mean_s": float(np.mean(startup)), "p95_s": float(np.percentile(startup, 95)),
                          "max_s": float(np.max(startup))}
    return out


AGGREGATED = ("mean_s", "p50_s", "p95_s", "p99_s", "per_token_mean_s")


def aggregate(per_seed: dict[str, dict]) -> dict[str, Any]:
    """Across seeds: each latency statistic's mean and 95% CI, plus summed errors and (for
    rates) throughput, engine preemptions and prefix-cache hit rate, by workload kind."""
    runs = [per_seed[s] for s in sorted(per_seed, key=int)]
    out: dict[str, Any] = {k: mean_ci([r["latency"][k] for r in runs]) for k in AGGREGATED}
    out["programs"] = sum(r["latency"]["programs"] for r in runs)
    out["errors"] = sum(r["latency"]["errors"] for r in runs)
    kinds = sorted({k for r in runs for k in r["latency"].get("by_workload", {})})
    out["by_workload_mean_s"] = {k: mean_ci([r["latency"].get("by_workload", {}).get(k, {}).get("mean_s")
                                             for r in runs]) for k in kinds}
    out["throughput_programs_per_s"] = mean_ci([r.get("throughput_programs_per_s") for r in runs])
    em = [r.get("engine_metrics", {}) for r in runs]
    pre = [e.get("preemptions") for e in em]
    out["preemptions_per_run"] = mean_ci(pre)
    out["prefix_cache_hit_rate"] = mean_ci([e.get("prefix_cache_hit_rate") for e in em])
    starts = [r["latency"]["startup"]["mean_s"] for r in runs if "startup" in r["latency"]]
    if starts:
        out["startup_mean_s"] = mean_ci(starts)
    return out


def throughput_at(points: list[tuple[float, float | None]], target_s: float) -> dict[str, Any]:
    """Highest arrival rate whose mean latency stays <= ``target_s`` (linear interpolation
    between swept rates; ``bound="lower"`` when even the highest swept rate holds it)."""
    pts = sorted((r, m) for r, m in points if m is not None)
    if not pts or pts[0][1] > target_s:
        return {"rate": 0.0 if pts else None, "bound": "upper" if pts else None}
    for (r0, m0), (r1, m1) in itertools.pairwise(pts):
        if m1 > target_s:
            rate = r0 + (r1 - r0) * (target_s - m0) / (m1 - m0) if m1 != m0 else r0
            return {"rate": float(rate), "bound": "interpolated"}
    return {"rate": float(pts[-1][0]), "bound": "lower"}


def _seed_values(system: dict, rate: str, key: str) -> dict[str, float | None]:
    return {s: run["latency"][key] for s, run in system["rates"][rate]["per_seed"].items()}


def ratios_at(stock: dict, ours: dict, rate: str) -> dict[str, Any]:
    """stock / autellix-ray per seed (paired: same trace) for the mean and the P95."""
    out = {}
    for key in ("mean_s", "p95_s"):
        s, a = _seed_values(stock, rate, key), _seed_values(ours, rate, key)
        seeds = sorted(set(s) & set(a), key=int)
        out[key] = ratio_ci([s[k] for k in seeds], [a[k] for k in seeds])
    return out


def summarise(results: dict[str, Any], latency_factor: float) -> dict[str, Any]:
    """Knee, per-rate ratios and the three targets, from the across-seed means.

    Knee: the lowest swept rate where stock's mean program latency (mean over seeds) is
    >= ``latency_factor`` x its unloaded mean; target latency = that multiple. A target is
    ``met`` on the point estimate; ``ci95`` says whether the interval agrees."""
    systems = results["systems"]
    if "stock" not in systems or "autellix" not in systems:
        return {}
    stock, ours = systems["stock"], systems["autellix"]
    unloaded = stock["unloaded"]["across_seeds"]["mean_s"]["mean"]
    if unloaded is None:
        return {}
    target = latency_factor * unloaded
    rates = sorted(stock["rates"], key=float)
    smean = {r: stock["rates"][r]["across_seeds"]["mean_s"]["mean"] for r in rates}
    amean = {r: ours["rates"][r]["across_seeds"]["mean_s"]["mean"] for r in rates}
    ratios = {r: ratios_at(stock, ours, r) for r in rates}
    knee = next((r for r in rates if smean[r] is not None and smean[r] >= target), None)
    knee_reached = knee is not None
    knee = knee if knee is not None else rates[-1]
    ratio = ratios[knee]["mean_s"]
    s95, a95 = stock["rates"][knee]["across_seeds"]["p95_s"], ours["rates"][knee]["across_seeds"]["p95_s"]
    p95_ratio = ratios[knee]["p95_s"]
    tp_stock = throughput_at([(float(r), smean[r]) for r in rates], target)
    tp_ours = throughput_at([(float(r), amean[r]) for r in rates], target)
    tp_ratio = (tp_ours["rate"] / tp_stock["rate"]) if tp_stock["rate"] else (math.inf if tp_ours["rate"] else None)
    seeds = sorted(stock["rates"][rates[0]]["per_seed"], key=int)
    tp_seeds = {seed: {name: throughput_at([(float(r), sys_["rates"][r]["per_seed"].get(seed, {}).get("latency", {})
                                              .get("mean_s")) for r in rates], target)["rate"]
                       for name, sys_ in (("stock", stock), ("autellix", ours))} for seed in seeds}
    p95_met = knee_reached and s95["mean"] is not None and a95["mean"] is not None and a95["mean"] <= s95["mean"]
    return {
        "knee": {
            "rate": float(knee), "reached": knee_reached, "stock_unloaded_mean_s": unloaded,
            "latency_target_s": target, "stock_mean_over_unloaded": smean[knee] / unloaded if smean[knee] else None,
        },
        "ratios": {r: ratios[r] for r in rates},
        "summary": {
            "mean_latency_reduction_at_knee": {
                "measured": ratio["geomean"], "ci95": [ratio["lo"], ratio["hi"]], "target": ">= 2.0",
                "met": bool(knee_reached and ratio["geomean"] is not None and ratio["geomean"] >= 2.0)},
            "p95_no_worse_at_knee": {
                "measured": {"autellix_p95_s": a95["mean"], "stock_p95_s": s95["mean"],
                             "stock_over_autellix": p95_ratio["geomean"]},
                "ci95": [p95_ratio["lo"], p95_ratio["hi"]], "target": "autellix P95 <= stock P95",
                "met": bool(p95_met)},
            "throughput_at_latency_target": {
                "measured": {"ratio": tp_ratio if tp_ratio is None or math.isfinite(tp_ratio) else "inf",
                             "autellix_rate": tp_ours["rate"], "autellix_bound": tp_ours["bound"],
                             "stock_rate": tp_stock["rate"], "stock_bound": tp_stock["bound"]},
                "per_seed_rates": tp_seeds, "ci95": None, "target": ">= 2.0",
                "met": bool(knee_reached and tp_ratio is not None and tp_ratio >= 2.0)},
        },
    }
