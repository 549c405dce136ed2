"""The pure parts of ``autellix_ray.bench.dashboard_snapshot``: Grafana variable substitution,
legends, units, the gridPos layout and the Prometheus config. No Ray, no Prometheus."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import yaml

from autellix_ray.bench.dashboard_snapshot import (
    DASHBOARD,
    format_value,
    grafana_rate_interval,
    grid_layout,
    has_data,
    legend_name,
    metric_names,
    prom_duration,
    prometheus_config,
    substitute,
    template_values,
    threshold_color,
    visible_panels,
    why_no_data,
)

DASH = json.loads(DASHBOARD.read_text())
BUILTINS = {"rate_interval": "30s", "interval": "5s", "range_": "300s"}


def test_template_values_are_the_all_values_and_skip_the_datasource():
    values = template_values(DASH)
    assert values == {"application": ".*", "deployment": ".*", "model_name": ".*"}
    assert template_values(DASH, {"application": "autellix"})["application"] == "autellix"
    with pytest.raises(KeyError, match="no variable 'model'"):
        template_values(DASH, {"model": "tiny"})


def test_substitute_every_syntax_and_the_builtins():
    v = {"application": "app1", "model_name": "tiny"}
    expr = ('sum(rate(x{application=~"$application",m=~"${model_name}",n=~"[[model_name]]",'
            'o=~"${application:regex}"}[$__rate_interval])) + increase(y[$__range]) + z[$__interval]')
    assert substitute(expr, v, **BUILTINS) == (
        'sum(rate(x{application=~"app1",m=~"tiny",n=~"tiny",o=~"app1"}[30s])) + increase(y[300s]) + z[5s]')
    with pytest.raises(KeyError, match=r"\$deployment"):
        substitute('x{deployment=~"$deployment"}', v, **BUILTINS)


def test_every_dashboard_expression_substitutes_to_plain_promql():
    values = template_values(DASH)
    exprs = [t["expr"] for p in DASH["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 28
    for expr in exprs:
        out = substitute(expr, values, **BUILTINS)
        assert "$" not in out and "[[" not in out, out
        assert "[$" not in out
    joined = " ".join(substitute(e, values, **BUILTINS) for e in exprs)
    assert "[30s]" in joined and "[300s]" in joined and 'application=~".*"' in joined


def test_durations_and_grafanas_rate_interval():
    assert prom_duration(30) == "30s" and prom_duration(0.2) == "1s" and prom_duration(312.6) == "313s"
    assert grafana_rate_interval(5, 5) == 20  # 4 scrapes
    assert grafana_rate_interval(60, 5) == 65  # step + scrape


def test_legend_names_follow_legend_format():
    labels = {"__name__": "m", "level": "2", "ReplicaId": "r1"}
    assert legend_name("level {{level}}", labels, "e") == "level 2"
    assert legend_name("running {{ ReplicaId }}", labels, "e") == "running r1"
    assert legend_name("{{application}} {{status_code}}", {"application": "autellix"}, "e") == "autellix"
    assert legend_name("__auto", {"reason": "pinned"}, "sum(x)") == '{reason="pinned"}'
    assert legend_name("__auto", {}, "sum(x)") == "sum(x)"
    assert legend_name(None, {"__name__": "only"}, "up") == "up"


def test_format_value_by_unit():
    assert format_value(0.25, "s") == "250 ms"
    assert format_value(2.5, "s") == "2.5 s"
    assert format_value(90, "s") == "1.5 min"
    assert format_value(1500, "ms") == "1.5 s"
    assert format_value(0.5, "percentunit") == "50%"
    assert format_value(0.123, "percentunit", 1) == "12.3%"
    assert format_value(3.14159, "reqps", 2) == "3.14 req/s"
    assert format_value(1200, "short") == "1.2 K"
    assert format_value(0, "ops") == "0 ops/s"
    assert format_value(None, "s") == "No data"
    assert format_value(math.nan, "s") == "NaN"


def test_threshold_color_takes_the_highest_step_reached():
    fallbacks = next(p for p in DASH["panels"] if p["title"] == "Router fallbacks (range)")
    thresholds = fallbacks["fieldConfig"]["defaults"]["thresholds"]
    assert threshold_color(0, thresholds) == "green"
    assert threshold_color(1, thresholds) == "red"
    assert threshold_color(None, thresholds) == "green"


def test_grid_layout_places_panels_by_gridpos():
    panels = visible_panels(DASH)
    assert [p["gridPos"]["y"] for p in panels] == sorted(p["gridPos"]["y"] for p in panels)
    boxes, bottom = grid_layout(panels, width_px=2408, unit_px=30, margin_px=8, top_px=100)
    col = (2408 + 8) / 24  # 100.67 px per column
    by_title = {(p["type"], p["title"]): box for p, box in boxes}
    left, top, w, h = by_title[("row", "Overview")]
    assert (left, top, h) == (0, 100, 30) and w == pytest.approx(2408)
    # the stat at x=4, y=1, w=4, h=4
    left, top, w, h = by_title[("stat", "HTTP requests / s")]
    assert left == pytest.approx(4 * col) and top == 100 + 38
    assert w == pytest.approx(4 * col - 8) and h == 4 * 30 + 3 * 8
    # panels in a row do not overlap, and the last panel (y=67, h=8) sets the bottom
    overview = sorted((b for (kind, _), b in by_title.items() if kind == "stat"), key=lambda b: b[0])
    for a, b in itertools.pairwise(overview):
        assert a[0] + a[2] < b[0]
    assert bottom == pytest.approx(100 + 67 * 38 + 8 * 30 + 7 * 8)
    assert max(box[0] + box[2] for _, box in boxes) == pytest.approx(2408)
    with pytest.raises(ValueError, match="outside"):
        grid_layout([{"title": "x", "gridPos": {"x": 20, "y": 0, "w": 8, "h": 2}}], width_px=100)


def test_prometheus_config_scrapes_the_ray_endpoint():
    cfg = yaml.safe_load(prometheus_config("127.0.0.1:8390", 5))
    assert cfg["global"]["scrape_interval"] == "5s"
    (job,) = cfg["scrape_configs"]
    assert job["job_name"] == "ray" and job["scrape_interval"] == "5s"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8390"]}]
    assert job["scrape_timeout"] == "4s"  # under the interval, or Prometheus refuses the config


def test_metric_names_and_no_data_reasons():
    expr = ('sum(rate(ray_autellix_preemptions_total[30s]) and on(WorkerId) '
            'ray_serve_deployment_request_counter_total{application=~".*"}) / ray_autellix_preemptions_total')
    assert metric_names(expr) == ["ray_autellix_preemptions_total", "ray_serve_deployment_request_counter_total"]
    empty = {"targets": [{"expr": expr, "series": []}]}
    nan = {"targets": [{"expr": expr, "series": [{"v": [math.nan, math.nan]}]}]}
    some = {"targets": [{"expr": expr, "series": [{"v": [math.nan, 0.5]}]}]}
    assert not has_data(empty) and not has_data(nan) and has_data(some)
    seen = {"ray_autellix_preemptions_total": False, "ray_serve_deployment_request_counter_total": True}
    assert why_no_data(empty, seen) == ("never exported in this run (Prometheus has no series): "
                                        "ray_autellix_preemptions_total")
    both = dict.fromkeys(seen, True)
    assert "empty result" in why_no_data(empty, both)
    assert "NaN" in why_no_data(nan, both)
