"""Figures of the replay results (matplotlib, Agg backend; written as PNG).

- ``replay_latency.png``: mean latency per token vs arrival rate, one panel per workload
  (like the paper's Figure 8), one line per policy, dashed lines at the latency targets.
- ``replay_p99.png``: the same for P99.
- ``replay_multi_engine.png``: throughput at the summary target vs number of engines,
  one line per router (left), and mean latency per token vs rate at 4 engines (right).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STYLE = {
    "vllm": ("tab:gray", "x", "vLLM"),
    "vllm-opt": ("tab:blue", "o", "vLLM-opt"),
    "mlfq": ("tab:orange", "s", "MLFQ"),
    "plas": ("tab:green", "^", "PLAS (ours)"),
    "atlas": ("tab:red", "v", "ATLAS (ours)"),
    "srpt": ("black", "*", "SRPT oracle"),
    "plas-swap": ("tab:olive", "^", "PLAS + swap (ours)"),
    "atlas-swap": ("tab:pink", "v", "ATLAS + swap (ours)"),
}
ROUTER_STYLE = {
    "round_robin": ("tab:gray", "x"),
    "least_used": ("tab:blue", "o"),
    "autellix": ("tab:red", "^"),
    "autellix_pin_all": ("tab:purple", "v"),
}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_latency(doc: dict[str, Any], path: Path, metric: str = "mean_ms_per_token") -> Path:
    plt = _plt()
    workloads = doc["workloads"]
    fig, axes = plt.subplots(1, len(workloads), figsize=(4.2 * len(workloads), 3.6), squeeze=False)
    for ax, (name, sec) in zip(axes[0], workloads.items()):
        for policy, data in sec["policies"].items():
            color, marker, label = STYLE.get(policy, (None, ".", policy))
            pts = [(0.0, data["unloaded_ms_per_token"])] if metric == "mean_ms_per_token" else []
            pts += [(r["rate"], r[metric]) for r in data["runs"]]
            if not pts:
                continue
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, color=color, marker=marker, markersize=4, label=label, linewidth=1.3)
        if metric == "mean_ms_per_token":
            for key, value in sec["targets_ms_per_token"].items():
                ax.axhline(value, color="0.6", linestyle="--", linewidth=0.8)
                ax.text(0, value, f" {key}", va="bottom", ha="left", fontsize=7, color="0.4")
        ax.set_yscale("log")
        rates = [r for r in sec["rates"] if r > 0]
        if rates:  # the burst is 10-60x the other rates: linear up to the lowest, log beyond
            ax.set_xscale("symlog", linthresh=min(rates))
            ax.set_xlim(left=0)
        ax.set_title(f"{name} ({sec['num_programs']} programs)")
        ax.set_xlabel("arrival rate (programs/s; 0 = unloaded)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set_ylabel(("mean" if metric.startswith("mean") else "P99") + " latency per token (ms)")
    cm = doc["cost_model"]
    fig.suptitle(f"Replay through vLLM 0.32's scheduler, {cm['gpu']} / {cm['model']} cost model", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_multi(doc: dict[str, Any], path: Path) -> Path | None:
    multi = doc.get("multi_engine")
    if not multi:
        return None
    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    configs = multi["configs"]
    one = configs.get("1x-")
    routers = sorted({c["router"] for c in configs.values() if c["router"] != "-"})
    for router in routers:
        color, marker = ROUTER_STYLE.get(router, (None, "."))
        key = multi["target"]["key"]
        pts = [(1, one["throughput"][key]["rate"])] if one else []
        pts += [(c["engines"], c["throughput"][key]["rate"]) for c in configs.values() if c["router"] == router]
        xs, ys = zip(*sorted(pts))
        left.plot(xs, ys, color=color, marker=marker, label=router)
    engines = sorted({c["engines"] for c in configs.values()})
    if one:
        left.plot(engines, [one["throughput"][multi["target"]["key"]]["rate"] * n for n in engines], color="0.7",
                  linestyle=":",
                  label="linear scaling")
    left.set_xlabel("engines")
    left.set_ylabel(f"throughput at {multi['target']['factor']:g}x unloaded (programs/s)")
    left.set_xscale("log", base=2)
    left.grid(alpha=0.3)
    left.legend(fontsize=7)
    for router in routers:
        c = configs.get(f"4x{router}")
        if not c or not c["runs"]:
            continue
        color, marker = ROUTER_STYLE.get(router, (None, "."))
        xs, ys = zip(*sorted((r["rate"], r["mean_ms_per_token"]) for r in c["runs"]))
        right.plot(xs, ys, color=color, marker=marker, label=router)
    for value in multi["targets_ms_per_token"].values():
        right.axhline(value, color="0.6", linestyle="--", linewidth=0.8)
    right.set_yscale("log")
    right.set_xlabel("arrival rate (programs/s)")
    right.set_ylabel("mean latency per token (ms)")
    right.set_title("4 engines", fontsize=9)
    right.grid(alpha=0.3, which="both")
    if right.get_lines():
        right.legend(fontsize=7)
    fig.suptitle(f"Multi-engine replay: {multi['workload']}, {multi['policy']} on every engine", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(doc: dict[str, Any], figures_dir: Path) -> list[Path]:
    paths = [
        plot_latency(doc, figures_dir / "replay_latency.png"),
        plot_latency(doc, figures_dir / "replay_p99.png", metric="p99_ms_per_token"),
    ]
    multi = plot_multi(doc, figures_dir / "replay_multi_engine.png")
    if multi is not None:
        paths.append(multi)
    return paths
