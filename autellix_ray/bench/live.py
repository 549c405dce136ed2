"""Live benchmark: autellix-ray against stock Ray Serve LLM, real engines, same run.

    .venv/bin/python -m autellix_ray.bench.live            # full run (~15-20 min here)
    .venv/bin/python -m autellix_ray.bench.live --quick --out-dir /tmp/live   # smoke (~2-3 min)

One local Ray cluster (own temp dir, HTTP port 8100, metrics port 8190) hosts, one after
the other, (a) stock Ray Serve LLM (``build_app(system="stock")``: vLLM FCFS, Ray Serve's
default router) and (b) autellix-ray (``system="autellix"``: PLAS/ATLAS scheduler,
program table, our router), with the same replica count and the same engine limits
(``ENGINE_LIMITS``). Both are driven with the same trace: a mixed population of the
example agents in scripted mode (``autellix_ray.agents``: ReAct, map-reduce, LATS tree
search; decode lengths fixed by ``max_tokens`` + ``ignore_eos``, tool delays from the
trace), programs arriving as a Poisson process, each program a closed loop (a call is
issued when the calls it depends on have finished). For each system:

1. unloaded: the trace's programs one at a time (mean program latency with no queueing);
2. each arrival rate of the sweep: the same programs with Poisson arrivals of that rate.

Reported per (system, rate): mean/P50/P95/P99 program latency, per-token program latency
(latency / decode tokens), achieved throughput, errors, preemptions and prefix-cache hit
rate (both from vLLM's own engine metrics, scraped from Ray's Prometheus endpoint, the same
source for both systems; for autellix-ray also from the per-call reports in
``kv_transfer_params["autellix"]``). Summary targets: at the lowest swept rate where stock's
mean program latency is >= 3x its unloaded value (the knee), autellix-ray's mean is >= 2x
lower and its P95 no worse; and the highest rate each system sustains with mean latency
under that target (3x stock unloaded, linear interpolation between swept rates) is >= 2x
stock's. Writes ``<out>/results/live.json``, ``<out>/figures/live_*.png`` and
``<out>/live.md`` (``--out-dir docs`` by default). Nothing is hard-coded: every number comes
from this run.

Policy settings (``POLICY_SETTINGS``): PLAS queue boundaries scaled to this machine's service
times, anti-starvation beta 32 and one proactive preemption per engine step (see the comment
there: with the defaults, beta 8 and 4 preemptions, the CPU-saturated engines promoted almost
every call to Q1 and spent CPU on recomputes; one probe at 1 program/s gave a mean of 12.2 s with
the defaults versus 6.9 s with these, stock 9.5 s; single probes on this shared 2-core machine are noisy).

Engine limits (``ENGINE_LIMITS``, identical for both systems): ``max_num_seqs=4`` and a
32 MiB KV cache per replica (4096 tokens of the tiny model), so two CPU replicas saturate
at a few programs/s and calls queue inside the engines, where scheduling decides who
waits. Without them the tiny model on CPU batches 32+ calls per step with little slowdown,
and no queue ever forms.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autellix_ray.agents import LiveMix, live_workload, run_population, with_rate
from autellix_ray.bench.workloads.model import Workload
from autellix_ray.demo import _wait_ready

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("stock", "autellix")
APP_NAME = "live"

# Identical for both systems (see the module header for why these limits).
ENGINE_LIMITS: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 2048,
    "max_num_seqs": 4,
    "max_num_batched_tokens": 512,
    "kv_cache_memory_bytes": 32 << 20,
}
# PLAS queues scaled to this machine's service times (a call here is ~0.1-1 s of engine time).
# beta 32 (default 8): under CPU saturation every waiting call soon has wait >= 8x its service, so
# anti-starvation promoted nearly all of them to Q1 (FCFS again); 32 still bounds any wait.
# One proactive preemption per step: each one is a recompute, which costs CPU this machine lacks.
POLICY_SETTINGS: dict[str, Any] = {"boundaries_s": [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4], "beta": 32.0,
                                   "max_preemptions_per_step": 1}


@dataclass
class LiveConfig:
    rates: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.5])
    num_programs: int = 30
    unloaded_programs: int = 12  # the first N programs, one at a time
    seed: int = 0
    num_replicas: int = 2
    policy: str = "plas"
    systems: tuple[str, ...] = SYSTEMS
    http_port: int = 8100
    metrics_port: int = 8190
    temp_dir: str = "/tmp/ray_live"
    latency_factor: float = 3.0  # knee / latency target: this x stock's unloaded mean
    out_dir: str = str(ROOT / "docs")
    quick: bool = False
    engine_limits: dict[str, Any] = field(default_factory=lambda: dict(ENGINE_LIMITS))
    policy_settings: dict[str, Any] = field(default_factory=lambda: dict(POLICY_SETTINGS))


QUICK = {"rates": [2.0], "num_programs": 6, "unloaded_programs": 2}


# -- statistics --------------------------------------------------------------------------
def latency_stats(records: list[dict]) -> dict[str, Any]:
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


def summarise(results: dict[str, Any], latency_factor: float) -> dict[str, Any]:
    systems = results["systems"]
    if "stock" not in systems or "autellix" not in systems:
        return {}
    stock, ours = systems["stock"], systems["autellix"]
    unloaded = stock["unloaded"]["mean_s"]
    target = latency_factor * unloaded
    rates = sorted(float(r) for r in stock["rates"])
    knee = next((r for r in rates if stock["rates"][str(r)]["latency"]["mean_s"] >= target), None)
    knee_reached = knee is not None
    knee = knee if knee is not None else rates[-1]
    s, a = stock["rates"][str(knee)]["latency"], ours["rates"][str(knee)]["latency"]
    ratio = s["mean_s"] / a["mean_s"] if a["mean_s"] else None
    tp_stock = throughput_at([(float(r), v["latency"]["mean_s"]) for r, v in stock["rates"].items()], target)
    tp_ours = throughput_at([(float(r), v["latency"]["mean_s"]) for r, v in ours["rates"].items()], target)
    tp_ratio = (tp_ours["rate"] / tp_stock["rate"]) if tp_stock["rate"] else (math.inf if tp_ours["rate"] else None)
    return {
        "knee": {
            "rate": knee, "reached": knee_reached, "stock_unloaded_mean_s": unloaded, "latency_target_s": target,
            "stock_mean_over_unloaded": s["mean_s"] / unloaded,
        },
        "summary": {
            "mean_latency_reduction_at_knee": {"measured": ratio, "target": ">= 2.0",
                                               "met": bool(knee_reached and ratio is not None and ratio >= 2.0)},
            "p95_no_worse_at_knee": {"measured": {"autellix_p95_s": a["p95_s"], "stock_p95_s": s["p95_s"]},
                                     "target": "autellix P95 <= stock P95",
                                     "met": bool(knee_reached and a["p95_s"] <= s["p95_s"])},
            "throughput_at_latency_target": {
                "measured": {"ratio": tp_ratio if tp_ratio is None or math.isfinite(tp_ratio) else "inf",
                             "autellix_rate": tp_ours["rate"], "autellix_bound": tp_ours["bound"],
                             "stock_rate": tp_stock["rate"], "stock_bound": tp_stock["bound"]},
                "target": ">= 2.0", "met": bool(knee_reached and tp_ratio is not None and tp_ratio >= 2.0)},
        },
    }


# -- metrics -----------------------------------------------------------------------------
def scrape(port: int) -> dict[tuple, float]:
    """vLLM counters from Ray's Prometheus endpoint: {(name, labels): value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    except Exception:  # noqa: BLE001 - no endpoint: metrics reported as null with the reason
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if ("preempt" in s.name or "prefix_cache" in s.name) and "vllm" in s.name and s.name.endswith("_total"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def metric_delta(before: dict, after: dict) -> dict[str, float]:
    totals: dict[str, float] = {}
    for key, value in after.items():
        name = key[0]
        for short in ("num_preemptions", "prefix_cache_hits", "prefix_cache_queries"):
            if short in name and "external" not in name:
                totals[short] = totals.get(short, 0.0) + value - before.get(key, 0.0)
    return totals


# -- one system ----------------------------------------------------------------------------
class Collector:
    """Per-call facts from responses: usage and (autellix-ray) the call's report."""

    def __init__(self) -> None:
        self.calls = self.prompt_tokens = self.completion_tokens = 0
        self.reports = 0
        self.preemptions = self.cached = self.report_prompt = 0
        self.engines: dict[str, int] = {}

    def __call__(self, spec, reply) -> None:
        self.calls += 1
        usage = getattr(reply, "usage", None)
        if usage is not None:
            self.prompt_tokens += usage.prompt_tokens or 0
            self.completion_tokens += usage.completion_tokens or 0
        params = getattr(reply, "kv_transfer_params", None) or (getattr(reply, "model_extra", None) or {}).get(
            "kv_transfer_params")
        report = (params or {}).get("autellix") if isinstance(params, dict) else None
        if report:
            self.reports += 1
            self.preemptions += int(report.get("num_preemptions", 0))
            self.cached += int(report.get("num_cached_tokens", 0))
            self.report_prompt += int(report.get("num_prompt_tokens", 0))
            engine = str(report.get("engine_id", "?"))
            self.engines[engine] = self.engines.get(engine, 0) + 1

    def result(self) -> dict[str, Any]:
        out = {"calls": self.calls, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens}
        if self.reports:
            out["autellix_reports"] = {
                "calls": self.reports, "preemptions": self.preemptions,
                "prefix_cache_hit_rate": self.cached / self.report_prompt if self.report_prompt else None,
                "calls_per_engine": dict(sorted(self.engines.items())),
            }
        return out


async def _drive(workload: Workload, system: str, base_url: str, collector: Collector, bar,
                 sequential: bool = False) -> list[dict]:
    import httpx
    from openai import AsyncOpenAI

    from autellix_ray.client import HTTPProgram

    http = httpx.AsyncClient(base_url=base_url, timeout=600,
                             limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256))
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key="none", max_retries=0, timeout=600, http_client=http)

    async def make_program(spec):
        if system == "autellix":  # register the program (POST /v1/programs), as users do
            r = await http.post("/v1/programs", json=None)
            r.raise_for_status()
            pid = r.json()["program_id"]
        else:  # stock has no program API: the id only travels in the request bodies
            pid = f"{spec.program_id}-{os.urandom(4).hex()}"
        return HTTPProgram(program_id=pid, base_url=base_url, client=client)

    async def end_program(program):
        if system == "autellix":
            await http.delete(f"/v1/programs/{program.program_id}")

    def done(record):
        bar.update(1)
        if record["error"]:
            bar.write(f"  {system}: program {record['program_id']} failed: {record['error'][:160]}")

    try:
        if not sequential:
            return await run_population(workload, make_program, end_program=end_program, on_reply=collector,
                                        on_done=done)
        records = []
        for p in workload.programs:  # unloaded: one program at a time, no arrival gaps
            one = Workload(workload.name, (type(p)(p.program_id, 0.0, p.calls, p.workload),))
            records += await run_population(one, make_program, end_program=end_program, on_reply=collector,
                                            on_done=done)
        return records
    finally:
        await http.aclose()


def _run(workload, system, base_url, bar, metrics_port, sequential=False) -> dict[str, Any]:
    collector = Collector()
    before = scrape(metrics_port)
    started = time.monotonic()
    records = asyncio.run(_drive(workload, system, base_url, collector, bar, sequential))
    wall = time.monotonic() - started
    time.sleep(2.5)  # Ray's metrics agent flushes every second or two
    delta = metric_delta(before, scrape(metrics_port))
    ok = [r for r in records if r["error"] is None]
    out = {
        "latency": latency_stats(records), "wall_s": wall,
        "throughput_programs_per_s": len(ok) / wall if wall else None,
        "throughput_tokens_per_s": sum(r["decode_tokens"] for r in ok) / wall if wall else None,
        "calls": collector.result(),
    }
    if delta:
        q = delta.get("prefix_cache_queries", 0.0)
        out["engine_metrics"] = {
            "source": "vLLM engine metrics (vllm:num_preemptions, vllm:prefix_cache_hits/queries) via Ray Prometheus",
            "preemptions": int(round(delta.get("num_preemptions", 0.0))),
            "prefix_cache_hit_rate": delta.get("prefix_cache_hits", 0.0) / q if q else None,
        }
    else:
        out["engine_metrics"] = {"preemptions": None, "prefix_cache_hit_rate": None,
                                 "reason": f"no vLLM counters on Ray's metrics endpoint :{metrics_port}"}
    out["records"] = records
    return out


def _app_args(cfg: LiveConfig, system: str, model_path: str) -> dict[str, Any]:
    args: dict[str, Any] = {"system": system, "model_source": model_path, "num_replicas": cfg.num_replicas,
                            "engine_kwargs": dict(cfg.engine_limits)}
    if system == "autellix":
        args.update(policy=cfg.policy, policy_settings=dict(cfg.policy_settings))
    return args


def _warm_up(base_url: str) -> None:
    import httpx

    for _ in range(4):  # a few calls: both replicas compile/allocate before timing
        httpx.post(f"{base_url}/v1/completions", timeout=120, json={
            "model": "tiny", "prompt": list(range(20, 80)), "max_tokens": 8, "ignore_eos": True})


def run_system(cfg: LiveConfig, system: str, workload: Workload, model_path: str, bar) -> dict[str, Any]:
    from ray import serve

    from autellix_ray.serve.app import build_app

    base_url = f"http://127.0.0.1:{cfg.http_port}"
    started = time.monotonic()
    bar.set_description(f"{system}: deploying")
    serve.run(build_app(_app_args(cfg, system, model_path)), name=APP_NAME, route_prefix="/", blocking=False)
    _wait_ready(f"{base_url}/v1/models")
    _warm_up(base_url)
    out: dict[str, Any] = {"app_args": _app_args(cfg, system, model_path), "startup_s": time.monotonic() - started}
    try:
        bar.set_description(f"{system}: unloaded")
        unloaded = Workload(workload.name, workload.programs[: cfg.unloaded_programs])
        out["unloaded"] = _run(unloaded, system, base_url, bar, cfg.metrics_port, sequential=True)
        out["unloaded"]["mean_s"] = out["unloaded"]["latency"]["mean_s"]
        out["rates"] = {}
        for rate in cfg.rates:
            bar.set_description(f"{system}: {rate:g} programs/s")
            out["rates"][str(float(rate))] = _run(with_rate(workload, rate, cfg.seed), system, base_url, bar,
                                                  cfg.metrics_port)
    finally:
        serve.delete(APP_NAME)
        time.sleep(3)  # engine processes exit
    return out


# -- main ----------------------------------------------------------------------------------
def run(cfg: LiveConfig, argv: list[str] | None = None) -> dict[str, Any]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import logging

    import ray
    from ray import serve
    from tqdm import tqdm

    for name in ("httpx", "openai", "httpcore"):  # one INFO line per call would cost the driver CPU
        logging.getLogger(name).setLevel(logging.WARNING)

    from autellix_ray.serve.app import TINY_MODEL_DIR
    from autellix_ray.tiny_model import build_tiny_model

    model_path = str(build_tiny_model(os.environ.get("AUTELLIX_TINY_MODEL", TINY_MODEL_DIR)))
    workload = live_workload(cfg.num_programs, cfg.rates[0], cfg.seed)
    out_dir = Path(cfg.out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    from autellix_ray.bench.workloads.trace import write_trace

    write_trace(workload, out_dir / "results" / "live_trace.jsonl")
    started = time.monotonic()
    os.makedirs(cfg.temp_dir, exist_ok=True)
    env = {k: os.environ[k] for k in ("RAY_AUTH_MODE", "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS")}
    ray.init(num_cpus=8, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False,
             namespace="autellix-live", _temp_dir=cfg.temp_dir, _metrics_export_port=cfg.metrics_port,
             _system_config={"metrics_report_interval_ms": 1000}, runtime_env={"env_vars": env})
    total = len(cfg.systems) * (cfg.unloaded_programs + len(cfg.rates) * cfg.num_programs)
    results: dict[str, Any] = {"systems": {}}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": cfg.http_port})
        with tqdm(total=total, unit="program", file=sys.stderr, dynamic_ncols=True) as bar:
            for system in cfg.systems:
                results["systems"][system] = run_system(cfg, system, workload, model_path, bar)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    cmd = "python -m autellix_ray.bench.live" + ("" if argv is None else "".join(" " + shlex.quote(a) for a in argv))
    results = {
        "benchmark": "live", "command": cmd, "duration_s": time.monotonic() - started,
        "machine": {"cpus": os.cpu_count(), "gpu": False, "engine": "vllm-cpu 0.32, tiny Llama (random weights)"},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out_dir",)},
        "workload": {"name": workload.name, "programs": workload.num_programs, "calls": workload.num_calls,
                     "decode_tokens": sum(p.total_decode_tokens for p in workload.programs),
                     "by_kind": {k: sum(1 for p in workload.programs if p.workload == k)
                                 for k in ("react", "mapreduce", "lats")},
                     "mix": asdict(LiveMix()), "trace": "results/live_trace.jsonl"},
        **summarise(results, cfg.latency_factor),
        **results,
    }
    write_outputs(results, out_dir)
    return results


def write_outputs(results: dict[str, Any], out_dir: Path) -> None:
    from autellix_ray.bench.live_report import write_figures, write_markdown

    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    (out_dir / "results" / "live.json").write_text(json.dumps(results, indent=1, allow_nan=False) + "\n")
    figures = write_figures(results, out_dir / "figures")
    write_markdown(results, out_dir / "live.md", figures)


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it is JSON (numbers, lists), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI smoke test: 2 rates, 10 programs (~2-3 min)")
    p.add_argument("--out-dir", default=str(ROOT / "docs"), help="writes results/, figures/ and live.md here")
    p.add_argument("--rates", type=float, nargs="+", help="arrival rates, programs/s")
    p.add_argument("--programs", type=int, help="programs per rate")
    p.add_argument("--unloaded-programs", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", default="plas", choices=["plas", "atlas", "mlfq", "fcfs"])
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--http-port", type=int, default=8100)
    p.add_argument("--metrics-port", type=int, default=8190)
    p.add_argument("--temp-dir", default="/tmp/ray_live")
    p.add_argument("--engine-limit", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="override an engine limit for both systems (repeatable), e.g. max_num_seqs=2")
    p.add_argument("--policy-setting", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="override an autellix-ray policy setting (repeatable), e.g. max_preemptions_per_step=0")
    p.add_argument("--render", metavar="LIVE_JSON", help="only redraw figures and live.md from a results file")
    a = p.parse_args(argv)
    if a.render:
        results = json.loads(Path(a.render).read_text())
        write_outputs(results, Path(a.out_dir))
        return results
    cfg = LiveConfig(seed=a.seed, policy=a.policy, systems=tuple(a.systems), http_port=a.http_port,
                     metrics_port=a.metrics_port, temp_dir=a.temp_dir, out_dir=a.out_dir, quick=a.quick)
    if a.quick:
        for k, v in QUICK.items():
            setattr(cfg, k, v)
    if a.rates:
        cfg.rates = sorted(a.rates)
    if a.programs:
        cfg.num_programs = a.programs
    if a.unloaded_programs is not None:
        cfg.unloaded_programs = a.unloaded_programs
    cfg.engine_limits.update(a.engine_limit)
    cfg.policy_settings.update(a.policy_setting)
    cfg.unloaded_programs = min(cfg.unloaded_programs, cfg.num_programs)
    results = run(cfg, argv)
    print(json.dumps({"knee": results.get("knee"), "summary": results.get("summary")}, indent=1))
    return results


if __name__ == "__main__":
    main()
