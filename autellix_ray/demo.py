"""The README's demo: autellix-ray on this machine, end to end.

It generates the tiny model (no download), starts a local Ray cluster and the app
from ``deployments/local-cpu.yaml`` (2 vLLM-CPU replicas with the Autellix
scheduler, program-table and router actors), then runs a population of example
agents at once: ReAct loops with real tools and LATS-style tree searches over
the OpenAI HTTP API, and ReAct loops inside Ray actors over deployment handles.
It prints a per-program table (latency, calls, service and wait from the
program table, pinned engine) and shuts everything down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "deployments" / "local-cpu.yaml"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--react", type=int, default=3, help="ReAct agents over HTTP")
    parser.add_argument("--trees", type=int, default=2, help="tree-search agents over HTTP")
    parser.add_argument("--actors", type=int, default=2, help="ReAct agents in Ray actors (handles)")
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    import ray
    from ray import serve

    from autellix_ray.serve.app import build_app

    app_config = yaml.safe_load(Path(args.config).read_text())["applications"][0]
    print(f"[1/4] starting Ray and the app from {args.config} (2 engines; ~1-2 min here)", flush=True)
    ray.init(num_cpus=8, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray-demo-", dir="/tmp"),
             runtime_env=app_config.get("runtime_env"))
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": 8000})
        started = time.monotonic()
        serve.run(build_app(app_config["args"]), name=app_config["name"], route_prefix="/", blocking=False)
        _wait_ready("http://127.0.0.1:8000/v1/models")
        print(f"[2/4] app up in {time.monotonic() - started:.0f} s: http://127.0.0.1:8000/v1", flush=True)
        print(f"[3/4] running {args.react} ReAct + {args.trees} tree-search agents over HTTP, "
              f"{args.actors} ReAct agents in Ray actors over handles", flush=True)
        rows = asyncio.run(_run_agents(args))
        rows += _run_actor_agents(args.actors)
        time.sleep(0.5)  # last report batch
        _print_table(rows)
    finally:
        print("[4/4] shutting down", flush=True)
        serve.shutdown()
        ray.shutdown()


def _wait_ready(url: str, timeout_s: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(2)
    raise TimeoutError(f"the app did not come up in {timeout_s} s")


async def _run_agents(args) -> list[dict]:
    from autellix_ray.agents import react_agent, timed, tree_search_agent
    from autellix_ray.client import HTTPProgram

    async def one(kind, agent, **kw):
        program = await HTTPProgram.start("http://127.0.0.1:8000")
        result, latency = await timed(agent(program, **kw))
        row = await program.row()
        return {"program": program.program_id[:14], "agent": kind, "via": "http", "latency_s": latency,
                "calls": result["calls"], "row": row}

    jobs = [one("react", react_agent, folder=str(ROOT / "autellix_ray")) for _ in range(args.react)]
    jobs += [one("tree-search", tree_search_agent) for _ in range(args.trees)]
    return list(await asyncio.gather(*jobs))


def _run_actor_agents(n: int) -> list[dict]:
    import ray

    @ray.remote
    class AgentActor:
        async def run(self):
            from autellix_ray.agents import react_agent, timed
            from autellix_ray.client import HandleProgram

            program = await HandleProgram.start()
            result, latency = await timed(react_agent(program, steps=3, folder="/nonexistent"))
            return {"program": program.program_id[:14], "agent": "react", "via": "ray-handle",
                    "latency_s": latency, "calls": result["calls"], "program_id": program.program_id}

    results = ray.get([AgentActor.remote().run.remote() for _ in range(n)], timeout=600)
    table = ray.get_actor("autellix-program-table", namespace="autellix")
    for r in results:
        r["row"] = ray.get(table.get_program.remote(r.pop("program_id")))
    return results


def _print_table(rows: list[dict]) -> None:
    print(f"\n{'program':<16}{'agent':<13}{'via':<12}{'calls':>6}{'latency s':>11}{'service s':>11}"
          f"{'wait s':>9}  pinned engine")
    for r in sorted(rows, key=lambda r: r["latency_s"]):
        row = r["row"]
        pins = ",".join(row.get("pinned_engines") or []) or "-"
        print(f"{r['program']:<16}{r['agent']:<13}{r['via']:<12}{r['calls']:>6}{r['latency_s']:>11.2f}"
              f"{row['service_s']:>11.2f}{row['wait_s']:>9.2f}  {pins}")
    print("\nservice = engine time credited to the program's calls; wait = time its calls queued.\n")


if __name__ == "__main__":
    main()
