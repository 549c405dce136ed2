"""A picture of the Grafana dashboard from a real run, without Grafana.

    apt-get install prometheus          # Debian; the run needs the ``prometheus`` binary
    .venv/bin/python -m autellix_ray.bench.dashboard_snapshot            # ~6-8 min here

Grafana cannot be installed here, so this renders the dashboard itself from the same data a
Grafana would show. It starts Prometheus (a subprocess with a generated config in a temp dir:
5 s scrape interval, Ray's metrics endpoint ``127.0.0.1:<metrics port>`` as the target, its own
TSDB, a free local port), then the demo's app (``bench/demo.py``'s ``local_app``: a new local
Ray cluster, the app from ``deployments/local-cpu.yaml`` with 2 vLLM-CPU replicas of the tiny
model, Ray's metrics on a fixed export port), and drives the demo's agents over HTTP in rounds
(``demo._run_agents``: ReAct + tree-search programs, each ended after it finishes; plus the
demo's ReAct agents in Ray actors once) for ``--duration`` seconds. Then it evaluates every
panel's PromQL from ``deployments/grafana/autellix-dashboard.json`` on that Prometheus
(``/api/v1/query_range`` for time series, ``/api/v1/query`` at the range's end for the
instant stat panels) after substituting the dashboard's variables as Grafana would with *All*
selected (``$application``, ``$deployment``, ``$model_name`` -> their ``allValue`` ``.*``;
``$__rate_interval``, ``$__interval`` and ``$__range`` from the run's step and window), and
plots the results in the dashboard's own grid (``gridPos``, 24 columns; row headers, panel
titles, legends from ``legendFormat``, units; stat panels as a big number, time series as
lines, stacked where the panel stacks). Panels whose queries return nothing say "No data".

Writes ``docs/figures/dashboard.png`` (labelled in the figure: rendered by this module from
Prometheus queries of a real run, not a Grafana screenshot) and
``docs/results/dashboard_snapshot.json`` (per panel and query: the substituted expression,
series, points and last values; for a panel without data, which of its metrics Prometheus
never saw). The one change to the demo's app: ``short_prompt_tokens`` (``--short-prompt-tokens``,
64 by default instead of the config's 2048, which is the model's whole context) so that the
router actor decides for the demo's prompts and the routing row has data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deployments" / "grafana" / "autellix-dashboard.json"
OUT_PNG = ROOT / "docs" / "figures" / "dashboard.png"
OUT_JSON = ROOT / "docs" / "results" / "dashboard_snapshot.json"
COLUMNS = 24  # Grafana's grid
LABEL = ("Rendered by autellix_ray/bench/dashboard_snapshot.py from Prometheus queries of a real run; "
         "not a Grafana screenshot")

# -- pure parts: variables, legends, units, layout, Prometheus config ------------------------------
_VAR = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_LEGEND = re.compile(r"\{\{\s*([^}\s]+)\s*\}\}")
_METRIC = re.compile(r"\bray_[A-Za-z0-9_]+")


def prom_duration(seconds: float) -> str:
    """A PromQL duration in whole seconds (at least 1 s): ``30`` -> ``"30s"``."""
    return f"{max(1, round(seconds))}s"


def grafana_rate_interval(step_s: float, scrape_s: float) -> float:
    """Grafana's ``$__rate_interval``: max(``$__interval`` + scrape interval, 4 x scrape interval)."""
    return max(step_s + scrape_s, 4 * scrape_s)


def template_values(dashboard: dict, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """Each query/custom variable's value with *All* selected (its ``allValue``, else ``.*``),
    unless ``overrides`` names it; datasource variables are left out (only panels' datasource
    fields use them)."""
    values = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") in ("datasource", "constant", "textbox", "interval"):
            continue
        values[var["name"]] = var.get("allValue") or ".*"
    for name, value in (overrides or {}).items():
        if name not in values:
            raise KeyError(f"the dashboard has no variable {name!r} (it has {sorted(values)})")
        values[name] = value
    return values


def substitute(expr: str, variables: dict[str, str], *, rate_interval: str, interval: str, range_: str) -> str:
    """``expr`` with Grafana's variables replaced: ``$x``, ``${x}``, ``${x:fmt}`` and ``[[x]]`` from
    ``variables``, and the built-ins ``$__rate_interval``, ``$__interval`` and ``$__range``.
    An unknown variable raises ``KeyError`` (Prometheus would reject the query anyway)."""
    builtins = {"__rate_interval": rate_interval, "__interval": interval, "__range": range_}

    def one(m: re.Match) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name in builtins:
            return builtins[name]
        if name in variables:
            return variables[name]
        raise KeyError(f"unknown dashboard variable ${name} in {expr!r}")

    return _VAR.sub(one, expr)


def legend_name(legend_format: str | None, labels: dict[str, str], expr: str) -> str:
    """A series' name as Grafana's legend shows it: ``{{label}}`` filled from the series' labels
    (a missing label gives ""), or for ``__auto``/empty the label set ``{a="x", b="y"}``, or the
    expression when the series has no labels."""
    labels = {k: v for k, v in labels.items() if k != "__name__"}
    if legend_format and legend_format != "__auto":
        return _LEGEND.sub(lambda m: labels.get(m.group(1), ""), legend_format).strip()
    if labels:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return expr


def visible_panels(dashboard: dict) -> list[dict]:
    """The panels Grafana draws, top to bottom, left to right: the top-level panels (rows and the
    panels of expanded rows; a collapsed row keeps its panels in ``row.panels`` and shows only
    its header)."""
    return sorted(dashboard["panels"], key=lambda p: (p["gridPos"]["y"], p["gridPos"]["x"]))


def grid_layout(panels: list[dict], *, width_px: float, unit_px: float = 30.0, margin_px: float = 8.0,
                top_px: float = 0.0) -> tuple[list[tuple[dict, tuple[float, float, float, float]]], float]:
    """Pixel boxes ``(left, top, width, height)`` (top-down) for panels placed by their
    ``gridPos`` on Grafana's grid: ``COLUMNS`` columns across ``width_px``, rows of ``unit_px``
    with ``margin_px`` between cells (Grafana: 30 px cells, 8 px margins). Returns the boxes and
    the bottom edge of the lowest panel."""
    col = (width_px + margin_px) / COLUMNS
    boxes, bottom = [], top_px
    for p in panels:
        g = p["gridPos"]
        if g["x"] < 0 or g["w"] <= 0 or g["x"] + g["w"] > COLUMNS or g["h"] <= 0:
            raise ValueError(f"panel {p.get('title')!r} has gridPos {g} outside a {COLUMNS}-column grid")
        left = g["x"] * col
        top = top_px + g["y"] * (unit_px + margin_px)
        width = g["w"] * col - margin_px
        height = g["h"] * unit_px + (g["h"] - 1) * margin_px
        boxes.append((p, (left, top, width, height)))
        bottom = max(bottom, top + height)
    return boxes, bottom


def prometheus_config(target: str, scrape_interval_s: float = 5.0) -> str:
    """Prometheus' YAML config: one job ``ray`` scraping Ray's metrics endpoint ``target``
    (``host:port``) every ``scrape_interval_s``."""
    interval = prom_duration(scrape_interval_s)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": "ray", "scrape_interval": interval,
            "scrape_timeout": prom_duration(max(1.0, scrape_interval_s * 0.8)),
            "static_configs": [{"targets": [target]}],
        }],
    }
    return yaml.safe_dump(config, sort_keys=False)


_SI = ((1e12, "T"), (1e9, "B"), (1e6, "Mil"), (1e3, "K"))


def _num(v: float, decimals: int | None) -> str:
    if decimals is not None:
        return f"{v:.{decimals}f}"
    if v == 0:
        return "0"
    text = f"{v:.3g}"
    if "e" in text:
        text = f"{v:.6f}".rstrip("0").rstrip(".")
    return text


def format_value(v: float | None, unit: str | None, decimals: int | None = None) -> str:
    """A value as Grafana shows it for the panel's unit (``s``, ``ms``, ``percentunit``,
    ``reqps``, ``ops``, ``short``): ``0.25, "s"`` -> ``"250 ms"``, ``0.5, "percentunit"`` ->
    ``"50%"``. ``None``/NaN give ``"No data"``/``"NaN"``."""
    if v is None:
        return "No data"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    if unit == "percentunit":
        return _num(v * 100, decimals) + "%"
    if unit in ("s", "ms"):
        seconds = v if unit == "s" else v / 1000
        a = abs(seconds)
        if a == 0:
            return "0 s" if unit == "s" else "0 ms"
        if a < 1e-3:
            return _num(seconds * 1e6, decimals) + " µs"
        if a < 1:
            return _num(seconds * 1e3, decimals) + " ms"
        if a < 60:
            return _num(seconds, decimals) + " s"
        if a < 3600:
            return _num(seconds / 60, decimals) + " min"
        return _num(seconds / 3600, decimals) + " hour"
    suffix = {"reqps": " req/s", "ops": " ops/s"}.get(unit or "", "")
    for factor, si in _SI:
        if abs(v) >= factor:
            return _num(v / factor, decimals) + " " + si + suffix.strip()
    return _num(v, decimals) + suffix


def threshold_color(value: float | None, thresholds: dict | None) -> str:
    """The color of the highest threshold step at or below ``value`` (the base step has value null)."""
    steps = (thresholds or {}).get("steps") or [{"color": "green", "value": None}]
    color = steps[0]["color"]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return color
    for step in steps[1:]:
        if step.get("value") is not None and value >= step["value"]:
            color = step["color"]
    return color


def metric_names(expr: str) -> list[str]:
    """The ``ray_*`` metric names an expression reads, in order, without repeats."""
    return list(dict.fromkeys(_METRIC.findall(expr)))


# -- Prometheus ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class Prometheus:
    """A Prometheus subprocess (its own process group) scraping ``target`` into ``workdir``."""

    def __init__(self, binary: str, workdir: Path, target: str, scrape_interval_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(prometheus_config(target, scrape_interval_s))
        self.log_path = workdir / "prometheus.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1d"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 60) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"prometheus not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # our own process group only
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()

    def api(self, path: str, **params: Any) -> Any:
        import httpx

        r = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=60)
        body = r.json()
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]


def _float(v: str) -> float:
    return float(v)  # Prometheus writes NaN/+Inf as strings float() reads


def run_queries(prom: Prometheus, dashboard: dict, variables: dict[str, str], *, start: float, end: float,
                step_s: float, rate_interval_s: float) -> list[dict]:
    """Every panel's targets evaluated on ``prom``: per panel ``{"panel", "targets": [{"refId",
    "expr", "legend", "instant", "series": [{"name", "labels", "t", "v"}]}]}``."""
    out = []
    for panel in visible_panels(dashboard):
        if panel["type"] == "row":
            continue
        targets = []
        for t in panel.get("targets", []):
            expr = substitute(t["expr"], variables, rate_interval=prom_duration(rate_interval_s),
                              interval=prom_duration(step_s), range_=prom_duration(end - start))
            instant = bool(t.get("instant")) and not t.get("range", False)
            if instant:
                data = prom.api("query", query=expr, time=end)
                series = [{"labels": r["metric"], "t": [float(r["value"][0])], "v": [_float(r["value"][1])]}
                          for r in (data["result"] if data["resultType"] == "vector" else [])]
            else:
                data = prom.api("query_range", query=expr, start=start, end=end, step=step_s)
                series = [{"labels": r["metric"], "t": [float(p[0]) for p in r["values"]],
                           "v": [_float(p[1]) for p in r["values"]]} for r in data["result"]]
            for s in series:
                s["name"] = legend_name(t.get("legendFormat"), s["labels"], expr)
            targets.append({"refId": t.get("refId"), "expr": expr, "legend": t.get("legendFormat"),
                            "instant": instant, "series": series})
        out.append({"panel": panel, "targets": targets})
    return out


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if not (math.isnan(v) or math.isinf(v))]


def has_data(result: dict) -> bool:
    return any(_finite(s["v"]) for t in result["targets"] for s in t["series"])


def why_no_data(result: dict, seen: dict[str, bool]) -> str:
    """Why a panel came out empty, from which of its metrics Prometheus stored any series."""
    names = [n for t in result["targets"] for n in metric_names(t["expr"])]
    names = list(dict.fromkeys(names))
    missing = [n for n in names if not seen.get(n)]
    if missing:
        return "never exported in this run (Prometheus has no series): " + ", ".join(missing)
    if not any(t["series"] for t in result["targets"]):
        return "its metrics exist, but every query returned an empty result"
    return "its metrics exist, but every point is NaN (no observations or a zero denominator in every window)"


def summary(results: list[dict], seen: dict[str, bool]) -> list[dict]:
    """Per panel: title, type, and per query the series count, finite points and last values."""
    out = []
    for r in results:
        p = r["panel"]
        targets = []
        for t in r["targets"]:
            last = {}
            for s in t["series"]:
                finite = _finite(s["v"])
                last[s["name"]] = finite[-1] if finite else None
            targets.append({"refId": t["refId"], "expr": t["expr"], "instant": t["instant"],
                            "series": len(t["series"]), "points": sum(len(_finite(s["v"])) for s in t["series"]),
                            "last": last})
        row = {"title": p["title"], "type": p["type"], "gridPos": p["gridPos"],
               "unit": p.get("fieldConfig", {}).get("defaults", {}).get("unit"), "has_data": has_data(r),
               "targets": targets}
        if not row["has_data"]:
            row["no_data_reason"] = why_no_data(r, seen)
        out.append(row)
    return out


# -- rendering -----------------------------------------------------------------------------------
BG, PANEL_BG, BORDER = "#111217", "#181b1f", "#2c3036"
TEXT, TEXT_DIM, GRID = "#ccccdc", "#8e8e9e", "#2a2d33"
CLASSIC = ["#7EB26D", "#EAB839", "#6ED0E0", "#EF843C", "#E24D42", "#1F78C1", "#BA43A9", "#705DA0",
           "#508642", "#CCA300", "#447EBC", "#C15C17", "#890F02", "#0A437C", "#6D1F62", "#584477"]
NAMED = {"green": "#73BF69", "red": "#F2495C", "yellow": "#FADE2A", "orange": "#FF9830", "blue": "#5794F2"}


def _legend_rows(names: list[str], width_px: float, char_px: float) -> list[list[str]]:
    """Grafana's bottom list legend: entries flow left to right and wrap."""
    rows: list[list[str]] = [[]]
    used = 0.0
    for name in names:
        w = 22 + len(name) * char_px + 16
        if rows[-1] and used + w > width_px:
            rows.append([])
            used = 0.0
        rows[-1].append(name)
        used += w
    return rows if rows[0] else []


def render(results: list[dict], dashboard: dict, out: Path, *, start: float, end: float, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    dpi, width_px, header_px, pad = 100, 2000.0, 118.0, 16.0
    footer_px = 20.0 + 20.0 * len(meta["footer"])
    pt = 72.0 / dpi  # points per pixel
    panels = visible_panels(dashboard)
    boxes, bottom = grid_layout(panels, width_px=width_px - 2 * pad, top_px=header_px)
    height_px = bottom + footer_px
    fig = plt.figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, facecolor=BG)
    by_id = {id(r["panel"]): r for r in results}

    def fx(x: float) -> float:
        return (pad + x) / width_px

    def fy(y: float) -> float:
        return 1 - y / height_px

    # header: title, time range, variables, and what this picture is
    tz = datetime.now().astimezone().tzinfo
    t0, t1 = (datetime.fromtimestamp(t, tz) for t in (start, end))
    fig.text(fx(0), fy(14), dashboard["title"], color=TEXT, fontsize=22 * pt, fontweight="bold", va="top")
    variables = "   ".join(f"{v.get('label', v['name'])}: All" for v in dashboard["templating"]["list"]
                           if v.get("type") == "query")
    fig.text(fx(0), fy(48), f"{t0:%Y-%m-%d %H:%M:%S} to {t1:%H:%M:%S} {t0:%Z}   ·   step {meta['step']}, "
             f"$__rate_interval = {meta['rate_interval']}   ·   {variables}", color=TEXT_DIM, fontsize=14 * pt,
             va="top")
    fig.text(fx(0), fy(70), LABEL + ".", color="#FADE2A", fontsize=15 * pt, va="top", fontweight="bold")
    fig.text(fx(0), fy(92), meta["run"][:1].upper() + meta["run"][1:] + ".", color="#FADE2A", fontsize=14 * pt,
             va="top")
    fig.text(fx(width_px - 2 * pad), fy(14), f"commit {meta['commit'][:12]}", color=TEXT_DIM, fontsize=13 * pt,
             va="top", ha="right")

    for panel, (left, top, w, h) in boxes:
        if panel["type"] == "row":
            fig.text(fx(left), fy(top + h / 2), "\u25be " + panel["title"], color=TEXT, fontsize=17 * pt,
                     fontweight="bold", va="center")
            continue
        fig.patches.append(FancyBboxPatch((fx(left), fy(top + h)), w / width_px, h / height_px,
                                          boxstyle="round,pad=0,rounding_size=0.002", transform=fig.transFigure,
                                          facecolor=PANEL_BG, edgecolor=BORDER, linewidth=1, zorder=-1))
        fig.text(fx(left + 10), fy(top + 8), panel["title"], color=TEXT, fontsize=14 * pt, fontweight="bold",
                 va="top")
        result = by_id.get(id(panel))
        defaults = panel.get("fieldConfig", {}).get("defaults", {})
        unit, decimals = defaults.get("unit"), defaults.get("decimals")
        if result is None or not has_data(result):
            fig.text(fx(left + w / 2), fy(top + h / 2 + 8), "No data", color=TEXT_DIM, fontsize=17 * pt,
                     ha="center", va="center")
            continue
        if panel["type"] == "stat":
            values = [_finite(s["v"]) for t in result["targets"] for s in t["series"]]
            value = next((v[-1] for v in values if v), None)  # reduce: lastNotNull
            color = threshold_color(value, defaults.get("thresholds"))
            fig.text(fx(left + w / 2), fy(top + h / 2 + 12), format_value(value, unit, decimals),
                     color=NAMED.get(color, color), fontsize=44 * pt, fontweight="bold", ha="center", va="center")
            continue
        _timeseries(fig, result, defaults, (left, top, w, h), fx, fy, width_px, height_px, pt, start, end, unit)

    fig.text(fx(0), fy(height_px - 12), "\n".join(meta["footer"]), color=TEXT_DIM, fontsize=12 * pt, va="bottom",
             linespacing=1.5)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=dpi, facecolor=BG)
    plt.close(fig)


def _timeseries(fig, result, defaults, box, fx, fy, width_px, height_px, pt, start, end, unit) -> None:
    """One time-series panel's plot and legend inside its pixel box ``(left, top, w, h)``."""
    import matplotlib.dates as mdates
    from matplotlib.patches import Rectangle
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    left, top, w, h = box
    custom = defaults.get("custom", {})
    stacked = (custom.get("stacking") or {}).get("mode", "none") == "normal"
    fill = float(custom.get("fillOpacity", 0)) / 100
    series = [s for t in result["targets"] for s in t["series"]]
    names = [s["name"] for s in series]
    char_px, legend_line = 7.0, 19.0
    rows = _legend_rows(names, w - 20, char_px)
    legend_h = len(rows) * legend_line + 6
    title_h, tick_h, tick_char_px = 32.0, 22.0, 7.0
    plot_top, plot_h = top + title_h, h - title_h - tick_h - legend_h
    ax = fig.add_axes((fx(left), fy(plot_top + plot_h), w / width_px, plot_h / height_px))  # x: set below
    ax.set_facecolor(PANEL_BG)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.tick_params(colors=TEXT_DIM, labelsize=11.5 * pt, length=0, pad=4)
    tz = datetime.now().astimezone().tzinfo
    colors = {}
    base: dict[float, float] = {}
    for i, s in enumerate(series):
        color = CLASSIC[i % len(CLASSIC)]
        colors[s["name"]] = color
        t = [datetime.fromtimestamp(x, tz) for x in s["t"]]
        v = [x if not math.isinf(x) else math.nan for x in s["v"]]
        if stacked:  # each series on top of the ones before it, at the same timestamps
            lower = [base.get(x, 0.0) for x in s["t"]]
            upper = [lo + (0.0 if math.isnan(y) else y) for lo, y in zip(lower, v, strict=True)]
            base.update(zip(s["t"], upper, strict=True))
            ax.plot(t, upper, color=color, linewidth=1.2)
            ax.fill_between(t, lower, upper, color=color, alpha=fill, linewidth=0)
        else:
            ax.plot(t, v, color=color, linewidth=1.2)
            if fill:
                ax.fill_between(t, [0 if math.isnan(y) else y for y in v], 0, where=[not math.isnan(y) for y in v],
                                color=color, alpha=fill, linewidth=0)
    ax.set_xlim(datetime.fromtimestamp(start, tz), datetime.fromtimestamp(end, tz))
    lo, hi = defaults.get("min"), defaults.get("max")
    ymin, ymax = ax.get_ylim()
    ax.set_ylim(lo if lo is not None else ymin, hi if hi is not None else max(ymax, (lo or 0) + 1e-9))
    ax.xaxis.set_major_locator(mdates.MinuteLocator(tz=tz))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: format_value(y, unit, None)))
    # as Grafana does, the y axis is as wide as its longest tick label
    ymin, ymax = ax.get_ylim()
    ticks = [y for y in ax.yaxis.get_major_locator().tick_values(ymin, ymax) if ymin <= y <= ymax]
    tick_w = 18 + max((len(format_value(y, unit, None)) for y in ticks), default=1) * tick_char_px
    ax.set_position((fx(left + tick_w), fy(plot_top + plot_h), (w - tick_w - 14) / width_px, plot_h / height_px))
    # legend: colored dash + name, flowing in rows under the plot
    y = top + h - legend_h + 4
    for row in rows:
        x = left + 12
        for name in row:
            fig.patches.append(Rectangle((fx(x), fy(y + legend_line / 2 + 1.5)), 14 / width_px, 3 / height_px,
                                         transform=fig.transFigure, facecolor=colors[name], edgecolor="none"))
            fig.text(fx(x + 20), fy(y + legend_line / 2), name, color=TEXT, fontsize=12 * pt, va="center")
            x += 22 + len(name) * char_px + 16
        y += legend_line


# -- the run -------------------------------------------------------------------------------------
def drive_load(base_url: str, react: int, trees: int, actors: int, stop: threading.Event,
               stats: dict[str, Any]) -> None:
    """The demo's agents in rounds until ``stop`` is set: each round ``react`` ReAct and ``trees``
    tree-search programs at once over HTTP (``demo._run_agents``, programs ended when done);
    ``actors`` ReAct agents in Ray actors over handles once, first. Counts go into ``stats``."""
    from autellix_ray.bench import demo

    started = time.monotonic()
    stats.update(rounds=0, programs=0, calls=0, actor_programs=0)
    if actors:
        rows = demo._run_actor_agents(actors)
        stats["actor_programs"] = len(rows)
        stats["programs"] += len(rows)
        stats["calls"] += sum(r["calls"] for r in rows)
    ns = argparse.Namespace(react=react, trees=trees)
    while not stop.is_set():
        rows = asyncio.run(demo._run_agents(ns, base_url, end_programs=True))
        stats["rounds"] += 1
        stats["programs"] += len(rows)
        stats["calls"] += sum(r["calls"] for r in rows)
        print(f"      load {time.monotonic() - started:4.0f} s  round {stats['rounds']:3d}  "
              f"programs {stats['programs']:4d}  calls {stats['calls']:5d}", flush=True)
    stats["seconds"] = time.monotonic() - started


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    from autellix_ray.bench.demo import CONFIG

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(CONFIG), help="the Serve config whose app runs (demo's default)")
    p.add_argument("--duration", type=float, default=240, help="seconds of load (default 240)")
    p.add_argument("--react", type=int, default=6, help="ReAct programs per round over HTTP")
    p.add_argument("--trees", type=int, default=4, help="tree-search programs per round over HTTP")
    p.add_argument("--actors", type=int, default=2, help="ReAct agents in Ray actors, once")
    p.add_argument("--short-prompt-tokens", type=int, default=64,
                   help="the app's short_prompt_tokens: longer prompts go through the router actor")
    p.add_argument("--http-port", type=int, default=8300)
    p.add_argument("--metrics-port", type=int, default=8390, help="Ray's metrics export port (Prometheus target)")
    p.add_argument("--scrape-interval", type=float, default=5.0, help="seconds")
    p.add_argument("--step", type=float, default=5.0, help="query_range step, seconds ($__interval)")
    p.add_argument("--rate-interval", type=float, default=30.0,
                   help="seconds for $__rate_interval (Grafana's rule gives max(step + scrape, 4 x scrape))")
    p.add_argument("--var", action="append", default=[], type=_key_value, metavar="NAME=REGEX",
                   help="a dashboard variable's value instead of All (repeatable)")
    p.add_argument("--dashboard", default=str(DASHBOARD))
    p.add_argument("--out", default=str(OUT_PNG))
    p.add_argument("--results", default=str(OUT_JSON))
    p.add_argument("--render", metavar="RAW_JSON", help="only redraw the figure and summary from a run's raw.json")
    a = p.parse_args(argv)
    if a.render:
        return write_outputs(json.loads(Path(a.render).read_text()), json.loads(Path(a.dashboard).read_text()),
                             Path(a.out), Path(a.results))

    binary = shutil.which("prometheus")
    if binary is None:
        sys.exit("dashboard_snapshot: the `prometheus` binary is not on PATH; install it first "
                 "(Debian/Ubuntu: `apt-get install prometheus`; the service it enables is not needed)")
    if a.rate_interval < 4 * a.scrape_interval:
        sys.exit(f"--rate-interval {a.rate_interval:g} s is under 4 scrapes ({4 * a.scrape_interval:g} s)")
    for port in (a.http_port, a.metrics_port):
        if not port_free(port):
            sys.exit(f"dashboard_snapshot: port {port} is in use; pick another with --http-port/--metrics-port")
    dashboard = json.loads(Path(a.dashboard).read_text())
    variables = template_values(dashboard, dict(a.var))

    from autellix_ray.bench.ci import source_commit
    from autellix_ray.bench.demo import local_app

    commit = source_commit()
    workdir = Path(tempfile.mkdtemp(prefix="autellix-dashboard-"))
    fd, log_path = tempfile.mkstemp(prefix="autellix-dashboard-", suffix=".log", dir="/tmp")
    os.close(fd)
    print(f"library logs (Ray, vLLM, HTTP client): {log_path}\nprometheus data and log: {workdir}", flush=True)
    prom = Prometheus(binary, workdir, f"127.0.0.1:{a.metrics_port}", a.scrape_interval)
    try:
        prom.wait_ready()
        print(f"[1/5] prometheus {prom.url} scraping 127.0.0.1:{a.metrics_port} every {a.scrape_interval:g} s",
              flush=True)
        starting = (f"[2/5] starting Ray (metrics on :{a.metrics_port}) and the app from {{config}} "
                    f"(short_prompt_tokens={a.short_prompt_tokens}; ~1-2 min here)")
        steps = (starting, "      app up in {seconds:.0f} s: {base_url}/v1", "      shutting down Ray")
        with local_app(a.config, log_path, http_port=a.http_port, metrics_port=a.metrics_port,
                       app_args={"short_prompt_tokens": a.short_prompt_tokens}, steps=steps) as base_url:
            up = prom.api("query", query='up{job="ray"}')["result"]
            print(f"      prometheus target up: {[r['value'][1] for r in up] or 'not scraped yet'}", flush=True)
            print(f"[3/5] load: the demo's agents, {a.duration:.0f} s before the snapshot ({a.react} ReAct + "
                  f"{a.trees} tree-search programs per round over HTTP, {a.actors} ReAct agents in Ray actors "
                  f"once)", flush=True)
            # the load runs in a thread; the dashboard is read while it runs, like a live Grafana
            load: dict[str, Any] = {}
            stop, failed = threading.Event(), []

            def loader() -> None:
                try:
                    drive_load(base_url, a.react, a.trees, a.actors, stop, load)
                except BaseException as e:  # noqa: BLE001 - reported by the main thread
                    failed.append(e)
                    stop.set()

            thread = threading.Thread(target=loader, name="load", daemon=True)
            load_start = time.time()
            thread.start()
            try:
                stop.wait(a.duration)
                if failed:
                    raise RuntimeError("the load failed") from failed[0]
                end, start = time.time(), load_start - 30
                at_end = {k: load.get(k, 0) for k in ("rounds", "programs", "calls")}
                print(f"[4/5] querying prometheus while the load runs ({end - start:.0f} s window ending now, "
                      f"step {a.step:g} s)", flush=True)
                results = run_queries(prom, dashboard, variables, start=start, end=end, step_s=a.step,
                                      rate_interval_s=a.rate_interval)
                names = {n for r in results for t in r["targets"] for n in metric_names(t["expr"])}
                seen = {n: bool(prom.api("series", **{"match[]": n, "start": start, "end": end}))
                        for n in sorted(names)}
            finally:
                stop.set()  # the current round finishes, then the thread ends
                print("      stopping the load after its current round", flush=True)
                thread.join(timeout=600)
    finally:
        prom.stop()

    cmd = "python -m autellix_ray.bench.dashboard_snapshot" + "".join(" " + shlex.quote(x) for x in argv)
    when = datetime.fromtimestamp(load_start, UTC)
    meta = {
        "commit": commit, "step": prom_duration(a.step), "rate_interval": prom_duration(a.rate_interval),
        "run": f"{when:%Y-%m-%d}; read while the demo's agents ran on 2 vLLM-CPU replicas: {at_end['programs']} "
               f"programs, {at_end['calls']} calls in the first {a.duration:.0f} s",
        "footer": [f"{cmd}   ·   app: {Path(a.config).name} with short_prompt_tokens={a.short_prompt_tokens}",
                   (f"Prometheus {prom_duration(a.scrape_interval)} scrapes of Ray's metrics endpoint; each panel: "
                    f"the dashboard's PromQL with application / deployment / model = .* (All); stat panels: "
                    f"instant queries at the range's end, $__range = {prom_duration(end - start)}; the load kept "
                    f"running while it was read")],
    }
    out = {
        "command": cmd, "source_commit": commit, "label": LABEL,
        "prometheus": subprocess.run([binary, "--version"], capture_output=True, text=True,
                                     check=False).stdout.splitlines()[0],
        "dashboard": a.dashboard,
        "window": {"start": start, "end": end, "seconds": end - start, "step_s": a.step,
                   "rate_interval": prom_duration(a.rate_interval), "range": prom_duration(end - start),
                   "scrape_interval_s": a.scrape_interval},
        "variables": variables, "app_overrides": {"short_prompt_tokens": a.short_prompt_tokens},
        "load": {"at_snapshot": at_end, "total": load, "react_per_round": a.react, "trees_per_round": a.trees,
                 "actors": a.actors},
        "metrics_seen": seen,
    }
    raw = {"out": out, "meta": meta, "results": [{"panel_index": dashboard["panels"].index(r["panel"]),
                                                  "targets": r["targets"]} for r in results]}
    raw_path = workdir / "raw.json"
    raw_path.write_text(json.dumps(raw))
    print(f"      raw query results (for --render): {raw_path}", flush=True)
    return write_outputs(raw, dashboard, Path(a.out), Path(a.results))


def write_outputs(raw: dict, dashboard: dict, png: Path, results_json: Path) -> dict[str, Any]:
    """The figure and the summary from a run's raw query results (``main`` saves them as
    ``raw.json`` in its temp dir; ``--render`` redraws from that file)."""
    results = [{"panel": dashboard["panels"][r["panel_index"]], "targets": r["targets"]} for r in raw["results"]]
    out, window = dict(raw["out"]), raw["out"]["window"]
    print(f"[5/5] rendering {png}", flush=True)
    render(results, dashboard, png, start=window["start"], end=window["end"], meta=raw["meta"])
    panels = summary(results, out["metrics_seen"])
    out["panels_without_data"] = [x["title"] for x in panels if not x["has_data"]]
    out["panels"] = panels
    results_json.parent.mkdir(parents=True, exist_ok=True)
    results_json.write_text(json.dumps(out, indent=1, allow_nan=False, default=str) + "\n")
    print(f"wrote {png} and {results_json}", flush=True)
    for x in panels:
        if not x["has_data"]:
            print(f"  no data: {x['title']}: {x['no_data_reason']}", flush=True)
    return out


if __name__ == "__main__":
    main()
