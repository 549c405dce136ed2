"""The regime map's targets, table and figure, computed from the rows ``regime.py`` wrote.

Targets (the cache-coherent scheduling issue), per cell and point, from the trimmed stats:

- never worse: our default's mean and P95 program latency <= ``NEVER_WORSE`` x vLLM-opt's;
- overload: where program-FCFS or the oracle is >= ``OVERLOAD_WHEN`` x better than vLLM-opt, ours
  >= ``OVERLOAD_GAIN`` x vLLM-opt and within ``NEAR_BEST`` x of the better of the two;
- tail: below capacity (load < 1), P99 <= ``TAIL`` x vLLM-opt's;
- the paper's metric: throughput at equal mean latency per token, the highest rate at which the
  policy's mean stays under k x vLLM-opt's unloaded latency per token (k = 2, 3, 5; the curve
  starts at (0, unloaded), log-linear between points). A ratio whose either side never crossed
  the target in the swept loads is censored and printed "undefined" (the JSON keeps the bound).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from autellix_ray.bench.replay.ablation import (
    NEAR_BEST,
    NEVER_WORSE,
    OVERLOAD_GAIN,
    OVERLOAD_WHEN,
    fmt_ratio,
    ratio,
)
from autellix_ray.bench.replay.metrics import Throughput, throughput_at_target

TAIL = 1.1
PAPER_TARGETS = (2.0, 3.0, 5.0)  # x vLLM-opt's unloaded mean latency per token
PAPER_GOALS = {  # cell label -> gain at 3x unloaded the issue asks for
    "sharegpt a100-80gb": 2.0, "bfcl a100-80gb": 2.0, "mixed a100-80gb": 2.0, "coding a100-40gb": 2.5,
}
REFERENCES = ("program-fcfs", "srpt")


def _points(cell: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(cell["points"].values(), key=lambda p: p["load"])


def point_targets(point: dict[str, Any], ours: str) -> dict[str, Any] | None:
    """The targets at one point; None until vLLM-opt and our default both ran there."""
    rows = point["policies"]
    base, mine = rows.get("vllm-opt"), rows.get(ours)
    if base is None or mine is None:
        return None
    b, o = base["trimmed"], mine["trimmed"]
    out: dict[str, Any] = {
        "load": point["load"], "rate": point["rate"],
        "mean_vs_vllm_opt": ratio(o["mean_s"], b["mean_s"]),
        "p95_vs_vllm_opt": ratio(o["p95_s"], b["p95_s"]),
        "p99_vs_vllm_opt": ratio(o["p99_s"], b["p99_s"]),
    }
    both = [out["mean_vs_vllm_opt"], out["p95_vs_vllm_opt"]]
    out["never_worse"] = None not in both and min(both) >= 1 / NEVER_WORSE
    if point["load"] < 1.0:
        out["tail_ok"] = out["p99_vs_vllm_opt"] is not None and out["p99_vs_vllm_opt"] >= 1 / TAIL
    refs = [rows[n]["trimmed"]["mean_s"] for n in REFERENCES if n in rows]
    if refs:
        best = min(refs)
        out["best_reference_gain"] = ratio(best, b["mean_s"])
        if out["best_reference_gain"] is not None and out["best_reference_gain"] >= OVERLOAD_WHEN:
            gain = out["mean_vs_vllm_opt"]
            out["overload_ok"] = gain is not None and gain >= OVERLOAD_GAIN and o["mean_s"] <= NEAR_BEST * best
    return out


def curve(cell: dict[str, Any], policy: str) -> list[tuple[float, float]]:
    return [(p["rate"], p["policies"][policy]["trimmed"]["mean_ms_per_token"])
            for p in _points(cell) if policy in p["policies"]]


def throughput_ratio(cell: dict[str, Any], policy: str, k: float) -> dict[str, Any]:
    """policy / vLLM-opt throughput at k x unloaded; value None when censored or unmeasured."""
    unloaded = cell.get("unloaded", {}).get("mean_ms_per_token")
    ours, base = curve(cell, policy), curve(cell, "vllm-opt")
    common = {r for r, _ in ours} & {r for r, _ in base}  # the same loads on both curves, or the ratio lies
    ours, base = [pt for pt in ours if pt[0] in common], [pt for pt in base if pt[0] in common]
    if unloaded is None or not ours or not base:
        return {"value": None, "why": "not measured"}
    target = k * unloaded
    t_ours, t_base = throughput_at_target(ours, target, unloaded), throughput_at_target(base, target, unloaded)
    entry: dict[str, Any] = {"ours": t_ours.as_dict(), "vllm_opt": t_base.as_dict()}
    if t_ours.censored or t_base.censored or t_base.rate <= 0:
        bound = _bound(t_ours, t_base)
        return {**entry, "value": None, "why": f"censored ({bound})"}
    return {**entry, "value": t_ours.rate / t_base.rate}


def _bound(ours: Throughput, base: Throughput) -> str:
    if ours.censored and not base.censored and base.rate > 0:
        return f">= {ours.rate / base.rate:.2f}x"
    if base.censored and not ours.censored and base.rate > 0:
        return f"<= {ours.rate / base.rate:.2f}x"
    return "both never crossed" if ours.censored and base.censored else "vLLM-opt crossed before the first point"


def summarize(regime: dict[str, Any]) -> dict[str, Any]:
    cells: dict[str, Any] = {}
    totals = {"points": 0, "never_worse_met": 0, "overload_points": 0, "overload_met": 0,
              "tail_points": 0, "tail_met": 0}
    for label, cell in regime.get("cells", {}).items():
        points = [t for p in _points(cell) if (t := point_targets(p, cell["ours"])) is not None]
        paper = {f"{k:g}x": throughput_ratio(cell, cell["ours"], k) for k in PAPER_TARGETS}
        entry: dict[str, Any] = {"points": points, "throughput_at_equal_latency": paper}
        cap = cell.get("capacity")
        if cap is not None:
            entry["capacity"] = {"programs_per_s": cap["capacity"], "overloaded": cap["overloaded"]}
        if label in PAPER_GOALS:
            got = paper["3x"]["value"]
            entry["paper_metric"] = {"target": f">= {PAPER_GOALS[label]}x vLLM-opt at 3x unloaded",
                                     "measured": got, "met": got is not None and got >= PAPER_GOALS[label]}
        cells[label] = entry
        totals["points"] += len(points)
        totals["never_worse_met"] += sum(t["never_worse"] for t in points)
        over = [t["overload_ok"] for t in points if "overload_ok" in t]
        totals["overload_points"] += len(over)
        totals["overload_met"] += sum(over)
        tail = [t["tail_ok"] for t in points if "tail_ok" in t]
        totals["tail_points"] += len(tail)
        totals["tail_met"] += sum(tail)
    return {"cells": cells, "totals": totals, "targets": {
        "never_worse": f"mean and P95 <= {NEVER_WORSE}x vLLM-opt's at every point",
        "overload": f"where program-FCFS or the oracle gain >= {OVERLOAD_WHEN}x: >= {OVERLOAD_GAIN}x and within "
                    f"{NEAR_BEST}x of the best",
        "tail": f"P99 <= {TAIL}x vLLM-opt's at every point below capacity",
        "paper_metric": "throughput at equal mean latency per token (3x unloaded): >= 2x vLLM-opt on ShareGPT, "
                        "BFCL, Mixed (A100-80GB), >= 2.5x on the coding agent (A100-40GB)",
    }}


# ---------------------------------------------------------------------------- figure

def plot_regime(regime: dict[str, Any], path: Path) -> Path | None:
    """Grid: presets x workloads; each panel every policy's trimmed mean latency / vLLM-opt's vs load."""
    cells = regime.get("cells", {})
    if not cells:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    presets = sorted({c["preset"] for c in cells.values()}, reverse=True)
    workloads = list(dict.fromkeys(c["workload"] for c in cells.values()))
    fig, axes = plt.subplots(len(presets), len(workloads), figsize=(3.2 * len(workloads), 3.0 * len(presets)),
                             squeeze=False, sharex=True)
    styles = {"autellix": "C3", "autellix-atlas": "C3", "program-fcfs": "C2", "srpt": "C0", "plas": "C1",
              "atlas": "C1", "vllm": "C7", "mlfq": "C4"}
    variants = sorted({n for c in cells.values() for p in c["points"].values() for n in p.get("policies", {})
                       if n not in styles and n != "vllm-opt"})
    spare = ("C5", "C6", "C8", "C9", "C1", "C4", "C7")  # ablation and variant rows: dashed, their own colour
    styles.update({n: spare[k % len(spare)] for k, n in enumerate(variants)})
    for i, preset in enumerate(presets):
        for j, workload in enumerate(workloads):
            ax = axes[i][j]
            cell = next((c for c in cells.values() if c["preset"] == preset and c["workload"] == workload), None)
            ax.axhline(1.0, color="k", lw=1, label="vLLM-opt")
            ax.set_title(f"{workload}, {preset.split('/')[0]}", fontsize=9)
            if cell is None or not cell["points"]:
                ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
                continue
            pts = _points(cell)
            names = list(dict.fromkeys(n for p in pts for n in p["policies"] if n != "vllm-opt"))
            shown = [1.0]
            for name in names:
                xs, ys = [], []
                for p in pts:
                    base, row = p["policies"].get("vllm-opt"), p["policies"].get(name)
                    if base and row and row["trimmed"]["mean_s"] > 0:
                        xs.append(p["load"])
                        ys.append(row["trimmed"]["mean_s"] / base["trimmed"]["mean_s"])
                label = "ours (default)" if name == cell["ours"] else name
                shown += ys
                ax.plot(xs, ys, "o--" if name in variants else "o-", ms=3, color=styles.get(name), label=label,
                        lw=2.2 if name == cell["ours"] else 1.0)
            ax.set_yscale("log")
            ax.set_xscale("log")
            ax.set_xticks([p["load"] for p in pts])
            low, high = min(min(shown), 0.8) / 1.1, max(max(shown), 1.25) * 1.1
            ax.set_ylim(low, high)
            ax.set_yticks([y for y in (0.1, 0.2, 0.33, 0.5, 0.8, 1, 1.25, 2, 3, 5) if low <= y <= high] or [1])
            for axis in (ax.xaxis, ax.yaxis):
                axis.set_major_formatter(FormatStrFormatter("%g"))
                axis.set_minor_formatter(NullFormatter())
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(True, which="major", alpha=0.3)
            if i == len(presets) - 1:
                ax.set_xlabel("load (x measured capacity)")
            if j == 0:
                ax.set_ylabel("mean latency / vLLM-opt's")
    handles, labels = [], []
    for ax in axes.flat:
        for h, lb in zip(*ax.get_legend_handles_labels()):
            if lb not in labels:
                handles.append(h)
                labels.append(lb)
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------- markdown

def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def render(regime: dict[str, Any], figure: Path | None, out_dir: Path) -> list[str]:
    summary = regime["summary"]
    tot = summary["totals"]
    lines = [
        "## The regime map (steady state)",
        "",
        "Every policy's mean program latency relative to vLLM-opt's, across the load axis (multiples of each",
        "workload's measured capacity), per workload and GPU preset. `python -m autellix_ray.bench.replay.regime`",
        "(module header: what runs, how capacity is measured, how many programs). Latency = program response",
        f"time over the programs arriving in the middle {100 - 200 * regime['trim_fraction']:.0f}% of the arrival "
        "window; `x` = vLLM-opt's / the policy's (> 1: better than vLLM-opt). Rows starting with `-` are our",
        "default with one mechanism off (`-relative-starvation`: the absolute anti-starvation rule alone, the",
        "default until the relative one); rows `+KEY=VALUE` are our default with that plugin setting.",
        "",
        f"Targets so far: never worse at **{tot['never_worse_met']} of {tot['points']}** points; overload target "
        f"at {tot['overload_met']} of {tot['overload_points']} points where it applies; tail (P99 below capacity) "
        f"at {tot['tail_met']} of {tot['tail_points']}.",
        "",
    ]
    if figure is not None:
        lines += [f"![regime map]({os.path.relpath(figure, out_dir)})", ""]
    lines += ["| cell | capacity (vLLM-opt, programs/s) | unloaded mean | programs per point | ours at 3x unloaded "
              "(paper's metric) |", "|---|---|---|---|---|"]
    for label, cell in regime.get("cells", {}).items():
        cap = cell.get("capacity")
        cap_s = "-" if cap is None else (f"{cap['capacity']:.3g}" + ("" if cap["overloaded"] else " (lower bound)"))
        counts = sorted({p["num_programs"] for p in cell["points"].values()})
        thr = summary["cells"][label]["throughput_at_equal_latency"]["3x"]
        thr_s = fmt_ratio(thr["value"]) if thr["value"] is not None else f"undefined: {thr['why']}"
        unl = cell.get("unloaded")
        lines.append(f"| {label} | {cap_s} | {_fmt(unl['mean_s'], 1) + ' s' if unl else '-'} "
                     f"| {counts[0] if counts else '-'}-{counts[-1] if counts else '-'} | {thr_s} |")
    lines.append("")
    for label, cell in regime.get("cells", {}).items():
        pts = _points(cell)
        if not pts:
            continue
        order = ["vllm-opt", cell["ours"], "program-fcfs", "srpt", cell["paper"], "vllm", "mlfq"]
        names = sorted({n for p in pts for n in p["policies"]}, key=lambda n: order.index(n) if n in order else 99)
        lines += [f"### {label}", "",
                  "| policy | " + " | ".join(f"{p['load']:g}x ({p['rate']:.3g}/s)" for p in pts) + " |",
                  "|---|" + "---|" * len(pts)]
        for name in names:
            cells_ = []
            for p in pts:
                base, row = p["policies"].get("vllm-opt"), p["policies"].get(name)
                if row is None:
                    cells_.append("-")
                elif name == "vllm-opt":
                    cells_.append(f"{row['trimmed']['mean_s']:.3g} s")
                else:
                    cells_.append(fmt_ratio(ratio(row["trimmed"]["mean_s"], base["trimmed"]["mean_s"]))
                                  if base else "-")
            shown = f"**{name}** (ours)" if name == cell["ours"] else name
            lines.append(f"| {shown} | " + " | ".join(cells_) + " |")
        lines.append("| programs (trimmed) | " + " | ".join(
            f"{p['num_programs']} ({next(iter(p['policies'].values()))['trimmed']['num_programs']})"
            if p["policies"] else str(p["num_programs"]) for p in pts) + " |")
        lines.append("")
    lines += ["### Where order matters, and why (read from the rows above)", "",
              *[f"- **{label}**: {reading(cell)}" for label, cell in regime.get("cells", {}).items()
                if _points(cell)], ""]
    lines += ["Commands (rows merge across runs; each row records its commit):", "",
              *[f"- `{c}`" for c in regime.get("commands", [])], ""]
    return lines


ORDER_MATTERS = 0.05  # a policy more than 5% from vLLM-opt's mean: the order made a difference


def reading(cell: dict[str, Any]) -> str:
    """One measured sentence per cell: from which load order matters, and what the cache did at the top."""
    pts = [p for p in _points(cell) if "vllm-opt" in p["policies"] and len(p["policies"]) > 1]
    if not pts:
        return "no vLLM-opt rows yet."

    def spread(p: dict[str, Any]) -> float:
        base = p["policies"]["vllm-opt"]["trimmed"]["mean_s"]
        return max(abs(r["trimmed"]["mean_s"] / base - 1) for r in p["policies"].values())

    onset = next((p for p in pts if spread(p) > ORDER_MATTERS), None)
    if onset is None:
        return (f"no policy's mean is more than {100 * ORDER_MATTERS:.0f}% from vLLM-opt's at any swept load "
                f"(up to {pts[-1]['load']:g}x capacity): calls hardly wait, or every order keeps the same cache.")
    top = pts[-1]
    base, ours = top["policies"]["vllm-opt"], top["policies"].get(cell["ours"])
    text = (f"every order ties up to {pts[pts.index(onset) - 1]['load']:g}x capacity, " if pts.index(onset) else "") + \
        f"order matters from {onset['load']:g}x (most calls waiting at once there: {base_waiting(onset)})."
    if ours is not None:
        gain = ratio(ours["trimmed"]["mean_s"], base["trimmed"]["mean_s"])
        text += (f" At {top['load']:g}x, vLLM-opt's prefix-cache hit rate is {base['prefix_hit_rate']:.2f} "
                 f"({base['prefill_tokens'] / 1e6:.1f} M prefill tokens, {base['recomputed_tokens'] / 1e6:.2f} M "
                 f"recomputed after preemptions), ours {ours['prefix_hit_rate']:.2f} "
                 f"({ours['prefill_tokens'] / 1e6:.1f} M, {ours['recomputed_tokens'] / 1e6:.2f} M): "
                 f"mean {fmt_ratio(gain)} vLLM-opt's.")
        bounds = [r.get("wait_per_service", {}).get("max") for r in (base, ours)]
        if all(isinstance(b, (int, float)) and math.isfinite(b) for b in bounds):
            text += (f" Max program wait / service (what anti-starvation bounds): vLLM-opt {bounds[0]:.3g}, "
                     f"ours {bounds[1]:.3g}.")
    return text


def base_waiting(point: dict[str, Any]) -> str:
    row = point["policies"]["vllm-opt"]
    return f"{row.get('max_waiting', '?')} with vLLM-opt, {row['max_running']} running"


def write_regime(path: Path, out_dir: Path) -> str:
    """Recompute the summary from the rows, save it, draw the figure, rewrite the report; returns its text."""
    from autellix_ray.bench.replay.regime import save_doc

    doc = json.loads(path.read_text())
    regime = doc["regime_map"]
    regime["summary"] = summarize(regime)
    doc.setdefault("summary", {})["regime_map"] = regime["summary"]["totals"]
    save_doc(path, doc)
    figure = plot_regime(regime, out_dir / "figures" / "replay_regime_map.png")
    text = "\n".join(render(regime, figure, out_dir))
    if "workloads" in doc:  # the full results file: the report has the earlier sweep after the map
        from autellix_ray.bench.replay.__main__ import write_outputs

        write_outputs(doc, out_dir)
    else:
        (out_dir / "replay.md").write_text("# GPU-scale replay through vLLM's real scheduler\n\n" + text + "\n")
    return text
