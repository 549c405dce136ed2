"""The Grafana dashboard (deployments/grafana/autellix-dashboard.json) against the metrics it charts.

Reads metrics.py with ``ast`` and the installed Ray / vLLM / prometheus_client sources as text
(found with ``importlib.util.find_spec``, never imported), so it runs in well under a second.

How Ray exports a ``ray.util.metrics`` name (verified in Ray 2.60.0's source; the docs of
``ray.util.metrics.Counter`` and ray-project/ray#43795 say the same):

- every name gets the ``ray_`` prefix: ``ray/_private/telemetry/open_telemetry_metric_recorder.py``
  (the default exporter since ``RAY_enable_open_telemetry`` defaults to on) creates each instrument
  as ``f"{NAMESPACE}_{name}"`` with ``NAMESPACE = "ray"``;
- a Counter is exported as a Prometheus counter whose sample name ends in ``_total``, exactly once:
  both exporters (OpenTelemetry's ``PrometheusMetricReader`` and the legacy OpenCensus path in
  ``ray/_private/metrics_agent.py``) build a ``prometheus_client`` ``CounterMetricFamily``, which
  strips a trailing ``_total`` from the name and appends ``_total`` to the sample. So Ray appends
  ``_total`` unless the name already ends with it: ``autellix_preemptions_total`` ->
  ``ray_autellix_preemptions_total`` (not ``..._total_total``), vLLM's ``vllm:prompt_tokens`` ->
  ``ray_vllm_prompt_tokens_total``. (The legacy path's deprecated gauge twin without the suffix,
  ``RAY_EXPORT_COUNTER_AS_GAUGE``, is not emitted for names ending in ``_total``; the dashboard
  never uses it.) All of autellix's counter names end in ``_total``, so their exported names do
  not depend on this rule;
- a Histogram gives ``_bucket{le=...}``, ``_sum`` and ``_count``; a Gauge keeps its name.

vLLM's engine metrics reach Ray's endpoint through Ray Serve LLM: with ``log_engine_metrics``
(default on) ``ray/llm/_internal/serve/engines/vllm/vllm_engine.py`` installs vLLM's
``RayPrometheusStatLogger`` (``vllm/v1/metrics/ray_wrappers.py``), which re-creates each
``vllm:*`` metric as a ``ray.util.metrics`` object with every character outside
``[a-zA-Z0-9_]`` replaced by ``_``: ``vllm:kv_cache_usage_perc`` -> ``ray_vllm_kv_cache_usage_perc``.
Those series also carry ``model_name``, ``engine`` and ``ReplicaId``; like all Ray worker metrics
they carry ``WorkerId``, which the dashboard joins with ``ray_serve_deployment_request_counter_total``
to filter by Serve application / deployment (Ray's own Serve LLM dashboard joins the same way).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deployments" / "grafana" / "autellix-dashboard.json"
METRICS_PY = ROOT / "autellix_ray" / "serve" / "metrics.py"
DS_UID = "${DS_PROMETHEUS}"

# Metrics the dashboard charts that autellix does not define: (name in its source, kind, package,
# file in the package, text that defines it there). Each was read in the installed packages
# (vLLM 0.32.0, Ray 2.60.0) and is checked again below when the package is installed.
_VLLM_LOGGERS = "v1/metrics/loggers.py"  # vLLM 0.32: PrometheusStatLogger.__init__
EXTERNAL_METRICS: list[tuple[str, str, str, str, str]] = [
    # vLLM engine metrics, re-exported by Ray Serve LLM as ray_vllm_* (see the module docstring)
    ("vllm:num_requests_running", "gauge", "vllm", _VLLM_LOGGERS, '"vllm:num_requests_running"'),
    ("vllm:num_requests_waiting", "gauge", "vllm", _VLLM_LOGGERS, '"vllm:num_requests_waiting"'),
    ("vllm:kv_cache_usage_perc", "gauge", "vllm", _VLLM_LOGGERS, '"vllm:kv_cache_usage_perc"'),
    ("vllm:prefix_cache_queries", "counter", "vllm", _VLLM_LOGGERS, '"vllm:prefix_cache_queries"'),
    ("vllm:prefix_cache_hits", "counter", "vllm", _VLLM_LOGGERS, '"vllm:prefix_cache_hits"'),
    ("vllm:num_preemptions", "counter", "vllm", _VLLM_LOGGERS, '"vllm:num_preemptions"'),
    ("vllm:prompt_tokens", "counter", "vllm", _VLLM_LOGGERS, '"vllm:prompt_tokens"'),
    ("vllm:generation_tokens", "counter", "vllm", _VLLM_LOGGERS, '"vllm:generation_tokens"'),
    ("vllm:request_queue_time_seconds", "histogram", "vllm", _VLLM_LOGGERS, '"vllm:request_queue_time_seconds"'),
    # Ray Serve's own metrics (ray.util.metrics in Ray 2.60.0). The proxy's HTTP family is built
    # from RequestProtocol.HTTP ("HTTP") lower-cased, hence the f-strings.
    ("serve_num_http_requests", "counter", "ray", "serve/_private/request_ingress_metrics.py",
     'f"serve_num_{protocol_name}_requests"'),
    ("serve_num_http_error_requests", "counter", "ray", "serve/_private/request_ingress_metrics.py",
     'f"serve_num_{protocol_name}_error_requests"'),
    ("serve_http_request_latency_ms", "histogram", "ray", "serve/_private/request_ingress_metrics.py",
     'f"serve_{protocol_name}_request_latency_ms"'),
    # replica-side counter (tags deployment, replica, application, route + WorkerId): the join table
    ("serve_deployment_request_counter", "counter", "ray", "serve/_private/replica.py",
     '"serve_deployment_request_counter"'),
    # controller gauge with deployment + application tags: the template variables' values
    ("serve_deployment_replica_healthy", "gauge", "ray", "serve/_private/deployment_state.py",
     '"serve_deployment_replica_healthy"'),
]

# How the names above become Prometheus names (package, file, text, what it shows).
EXPORT_RULES: list[tuple[str, str, str, str]] = [
    ("ray", "_private/telemetry/open_telemetry_metric_recorder.py", 'NAMESPACE = "ray"', "the ray_ prefix"),
    ("ray", "_private/telemetry/open_telemetry_metric_recorder.py", 'name=f"{NAMESPACE}_{name}"', "the ray_ prefix"),
    ("prometheus_client", "metrics_core.py", "if name.endswith('_total'):", "counters end in _total once"),
    ("ray", "llm/_internal/serve/engines/vllm/vllm_engine.py", "RayPrometheusStatLogger",
     "Ray Serve LLM exports vLLM's metrics through Ray"),
    ("vllm", "v1/metrics/ray_wrappers.py", 're.sub(r"[^a-zA-Z0-9_]", "_", name)', "vllm:x -> vllm_x"),
    ("ray", "serve/_private/common.py", 'HTTP = "HTTP"', "the http in serve_num_http_requests"),
    ("ray", "serve/_private/request_ingress_metrics.py", "protocol_name = protocol.lower()",
     "the http in serve_num_http_requests"),
    ("ray", "dashboard/modules/metrics/dashboards/serve_llm_dashboard_panels.py", "on(WorkerId)",
     "vLLM series join Serve's by WorkerId"),
]

_PROMQL_FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile",
                     "clamp_min", "clamp_max", "vector", "abs", "topk", "bottomk"}
_PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def exported_names(name: str, kind: str) -> set[str]:
    """The Prometheus sample names Ray exports for a ray.util.metrics ``name`` of ``kind``."""
    base = "ray_" + re.sub(r"[^a-zA-Z0-9_]", "_", name)
    if kind == "counter":
        return {base.removesuffix("_total") + "_total"}
    if kind == "histogram":
        return {base + "_bucket", base + "_sum", base + "_count"}
    assert kind == "gauge", kind
    return {base}


def defined_metrics() -> dict[str, str]:
    """metrics.py's metric names -> kind, from every Counter/Gauge/Histogram("name", ...) call."""
    kinds = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram"}
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse(METRICS_PY.read_text())):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if func in kinds:
            first = node.args[0] if node.args else next(k.value for k in node.keywords if k.arg == "name")
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), ast.dump(node)
            found[first.value] = kinds[func]
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (the dashboard's subset of PromQL)."""
    e = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # range selectors
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        token = m.group()
        if re.match(r"\s*\(", e[m.end():]):
            assert token in _PROMQL_FUNCTIONS, f"unexpected PromQL function {token!r} in {expr!r}"
        elif token not in _PROMQL_KEYWORDS:
            names.add(token)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # collapsed rows keep their panels inside
    return out


def expressions(dashboard: dict) -> list[str]:
    exprs = [t["expr"] for p in all_panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            selector = re.fullmatch(r"\s*label_values\((.*),\s*\w+\)\s*", query)
            assert selector, f"variable {var['name']}: expected label_values(<selector>, <label>)"
            exprs.append(selector.group(1))
    return exprs


def referenced(dashboard: dict) -> set[str]:
    return set().union(*(metric_names(e) for e in expressions(dashboard)))


def test_dashboard_loads_with_unique_ids_and_layout(dashboard):
    assert 36 <= dashboard["schemaVersion"] <= 41
    panels = all_panels(dashboard)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        pos = p["gridPos"]
        assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, p["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]
    for p in panels:
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"].strip() for t in p["targets"]), p["title"]
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs)), p["title"]


def test_prometheus_datasource_and_serve_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    for name in ("application", "deployment", "model_name"):
        assert variables[name]["datasource"]["uid"] == DS_UID
    for p in all_panels(dashboard):
        if p["type"] != "row":
            assert p["datasource"]["uid"] == DS_UID, p["title"]
            assert all(t["datasource"]["uid"] == DS_UID for t in p["targets"]), p["title"]
    exprs = expressions(dashboard)
    assert any("$deployment" in e for e in exprs) and any("$application" in e for e in exprs)


def test_every_charted_metric_exists():
    """Every ray_autellix_* name is exported by a metrics.py metric; every other name is verified."""
    autellix = set().union(*(exported_names(n, k) for n, k in defined_metrics().items()))
    external = set().union(*(exported_names(n, k) for n, k, *_ in EXTERNAL_METRICS))
    unknown = referenced(json.loads(DASHBOARD.read_text())) - autellix - external
    assert not unknown, f"metrics not defined in metrics.py nor in EXTERNAL_METRICS: {sorted(unknown)}"


def test_every_autellix_metric_has_a_panel(dashboard):
    """A metric added to metrics.py without a panel fails here; histograms need P50/P95/P99 and mean."""
    defined = defined_metrics()
    assert len(defined) >= 11 and all(n.startswith("autellix_") for n in defined)
    used = referenced(dashboard)
    exprs = expressions(dashboard)
    for name, kind in defined.items():
        names = exported_names(name, kind)
        assert names & used, f"metric {name} ({sorted(names)}) is on no panel"
        if kind == "histogram":
            base = "ray_" + name
            assert {base + "_sum", base + "_count"} <= used, f"{name}: no mean (sum / count)"
            for q in ("0.5", "0.95", "0.99"):
                assert any(re.search(rf"histogram_quantile\({q},.*{base}_bucket", e) for e in exprs), (name, q)


def test_every_verified_external_metric_is_charted(dashboard):
    used = referenced(dashboard)
    for name, kind, *_ in EXTERNAL_METRICS:
        assert exported_names(name, kind) & used, f"{name} is listed as verified but charted nowhere"


def _source(package: str, path: str) -> str:
    spec = importlib.util.find_spec(package)  # a top-level name: located, not imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    return (Path(next(iter(spec.submodule_search_locations))) / path).read_text()


def test_external_names_match_installed_sources():
    for name, _kind, package, path, text in EXTERNAL_METRICS:
        assert text in _source(package, path), f"{name}: {text} not found in {package}/{path}"
    for package, path, text, why in EXPORT_RULES:
        assert text in _source(package, path), f"{why}: {text} not found in {package}/{path}"


def test_metric_name_parsing():
    expr = ('sum by (le) (rate(ray_a_bucket{x=~"$y"}[$__rate_interval]) and on(WorkerId) '
            'ray_b_total{application=~"$application"}) / sum(rate(ray_c_count[5m]))')
    assert metric_names(expr) == {"ray_a_bucket", "ray_b_total", "ray_c_count"}
    assert exported_names("autellix_x_total", "counter") == {"ray_autellix_x_total"}
    assert exported_names("vllm:x", "counter") == {"ray_vllm_x_total"}
