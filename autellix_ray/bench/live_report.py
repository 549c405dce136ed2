"""Figures (matplotlib, PNG) and the Markdown report of the live benchmark (``bench/live.py``).

- ``live_latency.png``: mean and P95 program latency vs arrival rate, both systems (mean over
  seeds, 95% CI bars), with stock's unloaded mean and the latency target (3x it);
- ``live_ratio.png``: stock / autellix-ray ratio of the mean and of the P95 per rate (geometric
  mean over seeds, 95% CI bars);
- ``live_per_token.png``: mean per-token program latency vs arrival rate;
- ``live_cdf.png``: program-latency CDF of both systems at the knee rate, all seeds pooled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autellix_ray.bench.live_stats import ratio_ci

STYLE = {"stock": ("tab:gray", "o", "stock Ray Serve LLM (vLLM FCFS)"),
         "autellix": ("tab:red", "^", "autellix-ray")}
KINDS = ("react", "mapreduce", "lats")


def _rates(results: dict, system: str) -> list[str]:
    return sorted(results["systems"][system]["rates"], key=float)


def _ci_series(results, system, key, scale=1.0):
    """x, y and asymmetric error bars of an across-seed statistic (CI None -> no bar)."""
    xs, ys, err = [], [], [[], []]
    for r in _rates(results, system):
        c = results["systems"][system]["rates"][r]["across_seeds"][key]
        if c["mean"] is None:
            continue
        xs.append(float(r))
        ys.append(c["mean"] * scale)
        err[0].append((c["mean"] - c["lo"]) * scale if c["lo"] is not None else 0.0)
        err[1].append((c["hi"] - c["mean"]) * scale if c["hi"] is not None else 0.0)
    return xs, ys, err


def _finish(ax, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if legend:
        ax.legend(fontsize=8)


def _save(plt, fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_figures(results: dict[str, Any], fig_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig_dir.mkdir(parents=True, exist_ok=True)
    written = []
    systems = [s for s in STYLE if s in results["systems"]]
    knee = results.get("knee") or {}
    rate_label = "arrival rate (programs/s)"

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "mean_s", "mean program latency"), (axes[1], "p95_s", "P95 program latency")):
        for s in systems:
            color, marker, label = STYLE[s]
            x, y, err = _ci_series(results, s, key)
            ax.errorbar(x, y, yerr=err, marker=marker, color=color, label=label, capsize=4)
        if knee:
            ax.axhline(knee["stock_unloaded_mean_s"], color="gray", ls=":", lw=1, label="stock unloaded mean")
            ax.axhline(knee["latency_target_s"], color="black", ls="--", lw=1, label="target (3x unloaded)")
            ax.axvline(knee["rate"], color="tab:blue", ls=":", lw=1, label="knee rate")
        _finish(ax, rate_label, "seconds (mean over seeds, 95% CI)", title, legend=ax is axes[0])
    written.append(_save(plt, fig, fig_dir / "live_latency.png"))

    if results.get("ratios"):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for key, color, marker, label in (("mean_s", "tab:red", "^", "mean"), ("p95_s", "tab:purple", "s", "P95")):
            pts = [(float(r), v[key]) for r, v in sorted(results["ratios"].items(), key=lambda kv: float(kv[0]))
                   if v[key]["geomean"] is not None]
            ys = [c["geomean"] for _, c in pts]
            err = [[c["geomean"] - c["lo"] if c["lo"] is not None else 0.0 for _, c in pts],
                   [c["hi"] - c["geomean"] if c["hi"] is not None else 0.0 for _, c in pts]]
            ax.errorbar([r for r, _ in pts], ys, yerr=err, marker=marker, color=color, label=label, capsize=4)
        ax.axhline(1.0, color="gray", ls=":", lw=1, label="no difference")
        ax.axhline(2.0, color="black", ls="--", lw=1, label="target 2x")
        _finish(ax, rate_label, "stock / autellix-ray", "latency ratio (geo. mean over seeds, 95% CI)")
        written.append(_save(plt, fig, fig_dir / "live_ratio.png"))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in systems:
        color, marker, label = STYLE[s]
        x, y, err = _ci_series(results, s, "per_token_mean_s", scale=1000)
        ax.errorbar(x, y, yerr=err, marker=marker, color=color, label=label, capsize=4)
    _finish(ax, rate_label, "ms per generated token", "mean per-token program latency")
    written.append(_save(plt, fig, fig_dir / "live_per_token.png"))

    if knee:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for s in systems:
            color, _, label = STYLE[s]
            lat = sorted(r["latency_s"] for run in _knee_runs(results, s, knee) for r in run["records"]
                         if r["error"] is None)
            if lat:
                ax.step(lat, [(i + 1) / len(lat) for i in range(len(lat))], where="post", color=color, label=label)
        _finish(ax, "program latency (s)", "fraction of programs",
                f"latency CDF at the knee ({knee['rate']:g} programs/s, seeds pooled)")
        written.append(_save(plt, fig, fig_dir / "live_cdf.png"))
    return written


def _knee_runs(results, system, knee) -> list[dict]:
    return list(results["systems"][system]["rates"][str(float(knee["rate"]))]["per_seed"].values())


# -- Markdown ------------------------------------------------------------------------------
def _f(v, digits=2):
    if v is None:
        return "undefined"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _ci(c: dict | None, digits=2, scale=1.0, center="mean") -> str:
    """``m [lo, hi]``; a CI that could not be computed (fewer than 2 seeds) prints as undefined."""
    if not c or c.get(center) is None:
        return "undefined"
    m = _f(c[center] * scale, digits)
    if c.get("lo") is None:
        return f"{m} [CI undefined]"
    return f"{m} [{_f(c['lo'] * scale, digits)}, {_f(c['hi'] * scale, digits)}]"


def _settings_line(results: dict) -> str:
    ran = results.get("settings_ran", {}).get("autellix")
    if not ran:
        return ""
    plugin = ran["engine_kwargs"].get("additional_config", {}).get("autellix", {})
    return (f"autellix-ray ran policy `{ran['policy']}` (the tree's default unless `--policy` was given) with plugin "
            f"settings `{plugin}` and `scheduler_cls={ran['engine_kwargs'].get('scheduler_cls')}` "
            "(recorded under `settings_ran` in `results/live.json`).")


def _setup(results: dict) -> list[str]:
    cfg, wl = results["config"], results["workload"]
    seeds = cfg["seeds"]
    kinds = "; ".join(f"seed {s}: {wl['calls'][str(s)]} calls, {wl['decode_tokens'][str(s)]} decode tokens, "
                      f"{wl['by_kind'][str(s)]}" for s in seeds)
    return [
        "## Setup",
        "",
        f"- Workload: {len(seeds)} seeds x {wl['programs_per_seed']} programs per rate ({kinds}). The example "
        "agents of `autellix_ray/bench/agents/` in scripted mode (decode lengths via `max_tokens` + `ignore_eos`, tool "
        "delays from the trace). Each seed is its own trace (program contents and Poisson arrivals; the traces are "
        f"{', '.join(f'`{t}`' for t in wl['traces'].values())}); within a seed both systems run the same trace at "
        "each rate. Each program is a closed loop.",
        f"- Engine limits (identical for both): `{cfg['engine_limits']}`. `max_num_seqs` and the KV cache are "
        "small on purpose: with the defaults the tiny CPU model batches dozens of calls per step and no queue forms, "
        "so no scheduler can matter.",
        "- Both systems are deployed at once on one local Ray cluster (their own Serve apps, `/stock` and "
        f"`/autellix`, {cfg['num_replicas']} replicas each); only one is driven at a time, the other idles. stock: "
        "`build_app(system='stock')` = Ray Serve LLM with vLLM's FCFS scheduler and Ray Serve's default router. "
        "autellix-ray: `system='autellix'`: Autellix scheduler, program table and router. " + _settings_line(results),
        "- Order: at every step (unloaded, then each rate) of every seed the two systems run back to back, and "
        "which runs first alternates by seed and by rate (`order` in the JSON), so neither system always runs "
        "first.",
        "- Program latency: from a program's arrival to its last call's end. Program start-up (autellix-ray's "
        "`POST /v1/programs`) is timed apart, excluded from the latency and reported below; stock has no program "
        "API.",
        f"- Unloaded latency: the first {cfg['unloaded_programs']} programs of each seed's trace run one at a time. "
        f"Knee: the lowest swept rate where stock's mean program latency is >= {cfg['latency_factor']:g}x its "
        f"unloaded mean; latency target = {cfg['latency_factor']:g}x stock's unloaded mean. Throughput at the "
        "target: the highest arrival rate whose mean latency stays under it (linear interpolation between swept "
        "rates; `lower` = held at the highest rate swept, so a lower bound).",
        f"- Statistics: seeds are the replicates (n = {len(seeds)}). A system's mean (P95) at a rate is the mean "
        "over seeds of each run's mean (P95), with a 95% Student-t confidence interval `[lo, hi]`. Ratios are "
        "stock / autellix-ray per seed (paired: same trace, back to back), summarised by their geometric mean "
        "and the t interval of the log-ratios. A ratio > 1 means autellix-ray is faster.",
        "",
    ]


def _targets(results: dict) -> list[str]:
    if not results.get("summary"):
        return []
    k = results["knee"]
    lines = [
        "## Targets",
        "",
        f"Stock unloaded mean {_f(k['stock_unloaded_mean_s'])} s; target {_f(k['latency_target_s'])} s; knee "
        f"{k['rate']:g} programs/s (stock at {_f(k['stock_mean_over_unloaded'])}x unloaded"
        f"{'' if k['reached'] else ', 3x NOT reached in the sweep'}). `met` is judged on the point estimate; the "
        "CI column says how far it can be trusted.",
        "",
        "| target | measured | 95% CI | goal | met |",
        "|---|---|---|---|---|",
    ]
    for name, t in results["summary"].items():
        m = t["measured"]
        ms = ", ".join(f"{a}={_f(b)}" for a, b in m.items()) if isinstance(m, dict) else _f(m)
        ci = t.get("ci95")
        cs = "undefined" if not ci or ci[0] is None else f"[{_f(ci[0])}, {_f(ci[1])}]"
        lines.append(f"| {name} | {ms} | {cs} | {t['target']} | {'yes' if t['met'] else 'no'} |")
    tp = results["summary"]["throughput_at_latency_target"].get("per_seed_rates")
    if tp:
        lines += ["", "Throughput at the target per seed (programs/s, each seed's own curve): " + "; ".join(
            f"seed {s}: stock {_f(v['stock'])}, autellix-ray {_f(v['autellix'])}" for s, v in tp.items()) + "."]
    return lines + [""]


def _ratio_table(results: dict) -> list[str]:
    if not results.get("ratios"):
        return []
    lines = ["## Ratios per rate (stock / autellix-ray; > 1: autellix-ray faster)", "",
             "| rate/s | mean ratio [95% CI] | P95 ratio [95% CI] | mean ratio per seed |", "|---|---|---|---|"]
    for rate, v in sorted(results["ratios"].items(), key=lambda kv: float(kv[0])):
        per_seed = ", ".join(_f(x) for x in v["mean_s"]["values"]) or "undefined"
        lines.append(f"| {float(rate):g} | {_ci(v['mean_s'], center='geomean')} | "
                     f"{_ci(v['p95_s'], center='geomean')} | {per_seed} |")
    order = _order_check(results)
    if order:
        lines += ["", "Order check (mean ratio, geometric mean over the pairs of all rates): " + order]
    return lines + [""]


def _order_check(results: dict) -> str:
    """Mean ratio over the pairs where stock ran first vs those where autellix-ray did."""
    if not {"stock", "autellix"} <= set(results["systems"]):
        return ""
    groups: dict[str, tuple[list, list]] = {"stock first": ([], []), "autellix-ray first": ([], [])}
    stock, ours = results["systems"]["stock"]["rates"], results["systems"]["autellix"]["rates"]
    for rate in stock:
        for seed, run in stock[rate]["per_seed"].items():
            other = ours[rate]["per_seed"].get(seed)
            if other is None:
                continue
            g = groups["stock first" if run.get("ran_first") else "autellix-ray first"]
            g[0].append(run["latency"]["mean_s"])
            g[1].append(other["latency"]["mean_s"])
    parts = [f"{name}: {_ci(ratio_ci(*vals), center='geomean')} over {len(vals[0])} pairs"
             for name, vals in groups.items() if vals[0]]
    return "; ".join(parts) + "."


def _results_table(results: dict) -> list[str]:
    lines = [
        "## Results per rate (mean over seeds [95% CI])",
        "",
        "| system | rate/s | mean s | P95 s | P50 s | P99 s | ms/token | programs/s | errors | preemptions/run | "
        "prefix-cache hit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for system, res in results["systems"].items():
        rows = [("unloaded", res["unloaded"])] + sorted(res["rates"].items(), key=lambda kv: float(kv[0]))
        for rate, r in rows:
            a = r["across_seeds"]
            lines.append(
                f"| {system} | {rate} | {_ci(a['mean_s'])} | {_ci(a['p95_s'])} | {_f(a['p50_s']['mean'])} | "
                f"{_f(a['p99_s']['mean'])} | {_f(_scaled(a['per_token_mean_s']['mean'], 1000), 1)} | "
                f"{_f(a['throughput_programs_per_s']['mean'])} | {a['errors']} | "
                f"{_f(a['preemptions_per_run']['mean'], 1)} | {_f(a['prefix_cache_hit_rate']['mean'])} |")
    lines += ["", "Preemptions and prefix-cache hit rate come from vLLM's own engine counters (`vllm:num_preemptions`, "
              "`vllm:prefix_cache_hits/queries`, scraped from Ray's Prometheus endpoint before and after each run), "
              "the same source for both systems; autellix-ray's per-call reports (`kv_transfer_params['autellix']`) "
              "are in `results/live.json` under each run's `calls.autellix_reports`.", ""]
    return lines


def _scaled(v, k):
    return None if v is None else v * k


def _startup_table(results: dict) -> list[str]:
    res = results["systems"].get("autellix")
    if not res:
        return []
    lines = ["## Program start-up (autellix-ray `POST /v1/programs`, not in the latencies above)", "",
             "| rate/s | mean ms per seed | P95 ms per seed | max ms |", "|---|---|---|---|"]
    rows = [("unloaded", res["unloaded"])] + sorted(res["rates"].items(), key=lambda kv: float(kv[0]))
    for rate, r in rows:
        st = [run["latency"].get("startup") for run in r["per_seed"].values()]
        st = [s for s in st if s]
        if not st:
            lines.append(f"| {rate} | undefined | undefined | undefined |")
            continue
        lines.append(f"| {rate} | {', '.join(_f(s['mean_s'] * 1000, 1) for s in st)} | "
                     f"{', '.join(_f(s['p95_s'] * 1000, 1) for s in st)} | {_f(max(s['max_s'] for s in st) * 1000, 1)} |")
    return lines + [""]


def _per_seed_table(results: dict) -> list[str]:
    lines = ["## Every run", "", "| system | rate/s | seed | ran first | mean s | P95 s | errors | wall s |",
             "|---|---|---|---|---|---|---|---|"]
    for system, res in results["systems"].items():
        rows = [("unloaded", res["unloaded"])] + sorted(res["rates"].items(), key=lambda kv: float(kv[0]))
        for rate, r in rows:
            for seed, run in sorted(r["per_seed"].items(), key=lambda kv: int(kv[0])):
                lat = run["latency"]
                lines.append(f"| {system} | {rate} | {seed} | {'yes' if run.get('ran_first') else 'no'} | "
                             f"{_f(lat['mean_s'])} | {_f(lat['p95_s'])} | {lat['errors']} | {_f(run['wall_s'], 0)} |")
    lines += ["", "Mean latency by agent kind at each rate (s, mean over seeds [95% CI]):", "",
              "| system | rate/s | " + " | ".join(KINDS) + " |", "|---|---|---|---|---|"]
    for system, res in results["systems"].items():
        for rate, r in sorted(res["rates"].items(), key=lambda kv: float(kv[0])):
            bk = r["across_seeds"].get("by_workload_mean_s", {})
            lines.append(f"| {system} | {rate} | " + " | ".join(_ci(bk.get(k)) for k in KINDS) + " |")
    return lines + [""]


def write_markdown(results: dict[str, Any], path: Path, figures: list[str]) -> None:
    cfg = results["config"]
    lines = [
        "# Live benchmark: autellix-ray vs stock Ray Serve LLM (real engines, same run)",
        "",
        "Produced by (this file, `results/live.json` and `figures/live_*.png` are its outputs):",
        "",
        "```bash",
        f".venv/bin/{results['command']}",
        "```",
        "",
        f"Run time {results['duration_s'] / 60:.1f} min on {results['machine']['cpus']} CPU cores, no GPU; "
        f"{results['machine']['engine']}. {cfg['num_replicas']} replicas per system, {len(cfg['seeds'])} seeds x "
        f"{len(cfg['rates'])} rates; code at commit `{results.get('source_commit', 'unknown')}`. Nothing in this "
        "report is hard-coded: every number comes from the run.",
        "",
    ]
    loads = [run["load_avg_1m"] for res in results["systems"].values()
             for entry in [res["unloaded"], *res["rates"].values()] for run in entry["per_seed"].values()
             if run.get("load_avg_1m") is not None]
    if loads:
        lines += [f"Machine load (1-min load average at the start of each run, all processes on the 2 cores): "
                  f"{min(loads):.1f} to {max(loads):.1f}, median {sorted(loads)[len(loads) // 2]:.1f}.", ""]
    if results.get("notes"):
        lines += [*results["notes"], ""]
    lines += _setup(results) + _targets(results) + _ratio_table(results) + _results_table(results)
    lines += _startup_table(results) + _per_seed_table(results)
    for fig in figures:
        lines += [f"![{fig}](figures/{fig})", ""]
    lines += ["## Reading the numbers", "", *_notes(results), ""]
    path.write_text("\n".join(lines))


def _notes(results: dict[str, Any]) -> list[str]:
    """Derived from the run (nothing typed in): where the time goes on this machine."""
    cfg, notes = results["config"], []
    slots = cfg["num_replicas"] * cfg["engine_limits"]["max_num_seqs"]
    for system, res in results["systems"].items():
        top = max(res["rates"], key=float)
        tps = [run["throughput_tokens_per_s"] for run in res["rates"][top]["per_seed"].values()
               if run.get("throughput_tokens_per_s")]
        unl = res["unloaded"]["across_seeds"]["per_token_mean_s"]["mean"]
        if tps and unl:
            tp = sum(tps) / len(tps)
            notes.append(
                f"- {system}: at {float(top):g} programs/s the engines decoded {tp:.0f} tokens/s (mean over seeds) "
                f"with {slots} sequence slots, i.e. >= {1000 * slots / tp:.0f} ms per engine step when every slot "
                f"is busy; unloaded, a program took {1000 * unl:.0f} ms per generated token.")
    notes.append(
        "- The tiny model's forward pass is a few ms; the rest of each step is Python work (vLLM's scheduler and "
        "output processing, Ray Serve's proxy, ingress and replicas, the benchmark driver) competing for the 2 "
        "cores. The engines therefore saturate on CPU, not only on their sequence slots: a scheduler can only "
        "reorder the calls queued inside the engines, and each preemption is a recompute that costs CPU. That is "
        "why the limits are small (`max_num_seqs`, KV cache), why the plugin runs with one proactive preemption "
        "per step and beta 32 here, and it bounds the gain this machine can show; on GPUs the step is the model's, "
        "and the queue is where the time goes.")
    return notes
