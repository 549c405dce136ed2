"""The README's demo (``make demo``): autellix-ray on this machine, end to end.

It generates the tiny model (no download), starts a local Ray cluster and the app
from ``deployments/local-cpu.yaml`` (2 vLLM-CPU replicas with the Autellix
scheduler, program-table and router actors), then runs a population of example
agents at once: ReAct loops with real tools and LATS-style tree searches over
the OpenAI HTTP API, and ReAct loops inside Ray actors over deployment handles.
It prints its own progress and a per-program table (latency, calls, service and
wait from the program table, and the engines each program's calls ran on, from
the calls' reports) and shuts everything down. Library logs (Ray, vLLM, httpx,
openai) go to a log file whose path it prints. It lives in ``bench/`` because it runs the
example agents (``autellix_ray.bench.agents``): ``python -m autellix_ray.bench.demo``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deployments" / "local-cpu.yaml"
LIBRARY_LOGGERS = ("ray", "vllm", "httpx", "httpcore", "openai", "urllib3", "filelock", "asyncio", "py.warnings")


def _logs_to_file(path: str) -> None:
    """Send the libraries' log records (and Python warnings) to ``path`` instead of the
    terminal. Call again after Ray/Serve start: they attach their own handlers."""
    handler = next((h for h in logging.root.handlers if getattr(h, "_autellix_demo", False)), None)
    if handler is None:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._autellix_demo = True  # type: ignore[attr-defined]
    logging.captureWarnings(True)
    logging.root.handlers = [handler]
    logging.root.setLevel(logging.INFO)
    names = set(LIBRARY_LOGGERS) | {n for n in logging.root.manager.loggerDict
                                    if n.split(".")[0] in LIBRARY_LOGGERS}
    for name in names:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


@contextlib.contextmanager
def _stderr_to(path: str, fds: tuple[int, ...] = (2,)):
    """Point file descriptors (2: where Ray's C++ parts and import-time logs write) at
    ``path`` for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    with open(path, "a") as f:
        for fd in fds:
            os.dup2(f.fileno(), fd)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip(fds, saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def engine_of(reply: Any) -> str | None:
    """The engine (replica) id a call ran on, from its report in ``kv_transfer_params``
    (non-streaming responses over HTTP and over handles carry it)."""
    params = getattr(reply, "kv_transfer_params", None)
    if params is None:
        params = (getattr(reply, "model_extra", None) or {}).get("kv_transfer_params")
    report = params.get("autellix") if isinstance(params, dict) else None
    engine = report.get("engine_id") if isinstance(report, dict) else None
    return str(engine) if engine else None


def engines_cell(engines: list[str | None], short: int = 6) -> str:
    """``a1b2c3 x4, d4e5f6 x1``: calls per engine, short ids, most calls first; ``?`` counts
    calls whose response carried no report."""
    counts = Counter(e[:short] if e else "?" for e in engines)
    return ", ".join(f"{e} x{n}" for e, n in counts.most_common()) or "-"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--react", type=int, default=3, help="ReAct agents over HTTP")
    parser.add_argument("--trees", type=int, default=2, help="tree-search agents over HTTP")
    parser.add_argument("--actors", type=int, default=2, help="ReAct agents in Ray actors (handles)")
    args = parser.parse_args(argv)

    fd, log_path = tempfile.mkstemp(prefix="autellix-demo-", suffix=".log", dir="/tmp")
    os.close(fd)
    print(f"library logs (Ray, vLLM, HTTP client): {log_path}", flush=True)
    steps = ("[1/4] starting Ray and the app from {config} (2 engines; ~1-2 min here)",
             "[2/4] app up in {seconds:.0f} s: {base_url}/v1", "[4/4] shutting down")
    try:
        with local_app(args.config, log_path, steps=steps) as base_url:
            print(f"[3/4] running {args.react} ReAct + {args.trees} tree-search agents over HTTP, "
                  f"{args.actors} ReAct agents in Ray actors over handles", flush=True)
            rows = asyncio.run(_run_agents(args, base_url))
            rows += _run_actor_agents(args.actors)
            time.sleep(0.5)  # last report batch
            _print_table(rows)
    finally:
        print(f"library logs: {log_path}", flush=True)


@contextlib.contextmanager
def local_app(config: str, log_path: str, *, http_port: int = 8000, metrics_port: int | None = None,
              app_args: dict[str, Any] | None = None,
              steps: tuple[str, str, str] = ("starting Ray and the app from {config}",
                                             "app up in {seconds:.0f} s: {base_url}/v1", "shutting down")):
    """A new local Ray cluster (``address="local"``: never an existing one) in its own temp dir,
    with the app from ``config`` (``app_args`` override its ``args``) on ``http_port``; yields the
    base URL once ``/v1/models`` answers, and shuts Serve and Ray down on exit. ``metrics_port``:
    Ray's Prometheus endpoint on that port (``_metrics_export_port``, metrics reported every
    second) instead of a random one. ``steps``: the progress lines printed at start, when up and
    at shutdown."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    import ray
    from ray import serve

    # importing Ray Serve LLM reconfigures the root logger (JSON to stderr) and vLLM logs while
    # it loads: keep stderr in the file meanwhile, then point the loggers at it
    with _stderr_to(log_path):
        from autellix_ray.serve.app import build_app
    from autellix_ray.client import wait_ready
    _logs_to_file(log_path)
    app_config = yaml.safe_load(Path(config).read_text())["applications"][0]
    runtime_env = dict(app_config.get("runtime_env") or {})
    # one OpenMP thread per engine: several engines on 2 cores otherwise slow down 20-40x
    runtime_env["env_vars"] = {"OMP_NUM_THREADS": "1", **(runtime_env.get("env_vars") or {})}
    metrics = {} if metrics_port is None else {
        "_metrics_export_port": metrics_port, "_system_config": {"metrics_report_interval_ms": 1000}}
    print(steps[0].format(config=config), flush=True)
    ray.init(address="local", num_cpus=8, object_store_memory=1 << 30, include_dashboard=False,
             log_to_driver=False, _temp_dir=tempfile.mkdtemp(prefix="ray-demo-", dir="/tmp"),
             runtime_env=runtime_env, **metrics)
    try:
        _logs_to_file(log_path)
        serve.start(http_options={"host": "127.0.0.1", "port": http_port})
        started = time.monotonic()
        serve.run(build_app({**app_config["args"], **(app_args or {})}), name=app_config["name"], route_prefix="/",
                  blocking=False)
        _logs_to_file(log_path)
        base_url = f"http://127.0.0.1:{http_port}"
        wait_ready(f"{base_url}/v1/models")
        print(steps[1].format(seconds=time.monotonic() - started, base_url=base_url), flush=True)
        yield base_url
    finally:
        print(steps[2], flush=True)
        with _stderr_to(log_path, fds=(1, 2)):  # Ray prints its processes' shutdown noise
            serve.shutdown()
            ray.shutdown()


async def _run_agents(args, base_url: str = "http://127.0.0.1:8000", end_programs: bool = False) -> list[dict]:
    """``args.react`` ReAct and ``args.trees`` tree-search agents at once over HTTP, each its own
    program; ``end_programs``: end each program (DELETE) after reading its row."""
    from autellix_ray.bench.agents import react_agent, timed, tree_search_agent
    from autellix_ray.client import HTTPProgram

    async def one(kind, agent, **kw):
        program = await HTTPProgram.start(base_url)
        engines: list[str | None] = []
        result, latency = await timed(agent(program, on_reply=lambda r: engines.append(engine_of(r)), **kw))
        row = await program.row()
        if end_programs:
            await program.end()
        return {"program": program.program_id[:14], "agent": kind, "via": "http", "latency_s": latency,
                "calls": result["calls"], "row": row, "engines": engines}

    jobs = [one("react", react_agent, folder=str(ROOT / "autellix_ray")) for _ in range(args.react)]
    jobs += [one("tree-search", tree_search_agent) for _ in range(args.trees)]
    return list(await asyncio.gather(*jobs))


def _run_actor_agents(n: int) -> list[dict]:
    import ray

    @ray.remote
    class AgentActor:
        async def run(self):
            from autellix_ray.bench.agents import react_agent, timed
            from autellix_ray.bench.demo import engine_of
            from autellix_ray.client import HandleProgram

            program = await HandleProgram.start()
            engines: list[str | None] = []
            result, latency = await timed(react_agent(program, steps=3, folder="/nonexistent",
                                                      on_reply=lambda r: engines.append(engine_of(r))))
            return {"program": program.program_id[:14], "agent": "react", "via": "ray-handle",
                    "latency_s": latency, "calls": result["calls"], "program_id": program.program_id,
                    "engines": engines}

    results = ray.get([AgentActor.remote().run.remote() for _ in range(n)], timeout=600)
    table = ray.get_actor("autellix-program-table", namespace="autellix")
    for r in results:
        r["row"] = ray.get(table.get_program.remote(r.pop("program_id")))
    return results


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'program':<16}{'agent':<13}{'via':<12}{'calls':>6}{'latency s':>11}{'service s':>11}"
          f"{'wait s':>9}  engines (calls)")
    for r in sorted(rows, key=lambda r: r["latency_s"]):
        row = r["row"]
        print(f"{r['program']:<16}{r['agent']:<13}{r['via']:<12}{r['calls']:>6}{r['latency_s']:>11.2f}"
              f"{row['service_s']:>11.2f}{row['wait_s']:>9.2f}  {engines_cell(r.get('engines', []))}")
    print("\nservice = engine time credited to the program's calls; wait = time its calls queued;\n"
          "engines = the replicas (first 6 characters of their ids) that ran the program's calls,\n"
          "from each call's report (kv_transfer_params.autellix.engine_id).\n")


if __name__ == "__main__":
    main()
