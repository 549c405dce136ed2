"""A driver that runs a mixed population of the example agents (ReAct, map-reduce, LATS tree
search) with Poisson arrivals, in scripted mode (lengths and tool delays from a trace), and
prints latency per agent kind. The live benchmark (python -m autellix_ray.bench.live) runs
this same population against stock Ray Serve LLM and autellix-ray.

    .venv/bin/python examples/mixed_driver.py --rate 0.5 --programs 20            # OpenAI client
    .venv/bin/python examples/mixed_driver.py --via actor --rate 0.5 --programs 8  # Ray actors, handles
    .venv/bin/python examples/mixed_driver.py --trace docs/results/live_trace.jsonl --rate 1
    .venv/bin/python examples/mixed_driver.py --write-trace my_trace.jsonl --programs 50   # just the trace
"""

import argparse
import asyncio
import os
import time

import numpy as np


def build_workload(a):
    from autellix_ray.bench.workloads.live import live_workload, with_rate
    from autellix_ray.bench.workloads.trace import read_trace

    if a.trace:
        w = read_trace(a.trace)
        w = type(w)(w.name, w.programs[: a.programs] if a.programs else w.programs, w.rate, w.seed)
        return with_rate(w, a.rate, a.seed)
    return live_workload(a.programs or 20, a.rate, a.seed)


async def run_http(w, url: str) -> list[dict]:
    from autellix_ray.bench.agents import run_population
    from autellix_ray.client import HTTPProgram

    async def make_program(spec):
        return await HTTPProgram.start(url)

    async def end_program(program):
        await program.end()

    return await run_population(w, make_program, end_program=end_program,
                                on_done=lambda r: print(f"  {r['program_id']:<22} {r['latency_s']:6.2f} s"
                                                        f"{'  ' + r['error'] if r['error'] else ''}", flush=True))


async def run_actors(w, app_name: str) -> list[dict]:
    from autellix_ray.bench.agents import agent_actor_class
    from autellix_ray.bench.workloads.trace import program_to_json

    AgentActor = agent_actor_class()
    actors = [AgentActor.remote() for _ in range(min(8, len(w.programs)))]
    await asyncio.gather(*(a.warm_up.remote(app_name=app_name) for a in actors))  # start-up is not latency
    t0 = time.monotonic()

    async def one(i, spec):
        await asyncio.sleep(max(0.0, t0 + spec.arrival_s - time.monotonic()))
        start = time.monotonic()
        try:
            await actors[i % len(actors)].run.remote(spec.workload, app_name=app_name, spec=program_to_json(spec))
            error = None
        except Exception as e:  # noqa: BLE001 - reported per program
            error = f"{type(e).__name__}: {e}"[:200]
        r = {"program_id": spec.program_id, "workload": spec.workload, "latency_s": time.monotonic() - start,
             "error": error}
        print(f"  {r['program_id']:<22} {r['latency_s']:6.2f} s{'  ' + error if error else ''}", flush=True)
        return r

    return list(await asyncio.gather(*(one(i, p) for i, p in enumerate(w.programs))))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--via", choices=["http", "actor"], default="http")
    p.add_argument("--app-name", default="autellix")
    p.add_argument("--rate", type=float, default=0.5, help="program arrivals per second (Poisson)")
    p.add_argument("--programs", type=int, help="how many programs (default 20, or all of --trace)")
    p.add_argument("--trace", help="replay this JSONL trace's programs (bench/workloads/trace.py format)")
    p.add_argument("--write-trace", help="write the population as a JSONL trace and exit")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    w = build_workload(a)
    if a.write_trace:
        from autellix_ray.bench.workloads.trace import write_trace

        write_trace(w, a.write_trace)
        print(f"wrote {w.num_programs} programs ({w.num_calls} calls) to {a.write_trace}")
        raise SystemExit
    print(f"{w.num_programs} programs ({w.num_calls} calls) at {a.rate:g}/s via {a.via}")
    if a.via == "actor":
        import ray

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="auto", namespace="autellix-examples", log_to_driver=False)
        records = asyncio.run(run_actors(w, a.app_name))
    else:
        records = asyncio.run(run_http(w, a.url))
    for kind in sorted({r["workload"] for r in records}):
        lat = [r["latency_s"] for r in records if r["workload"] == kind and not r["error"]]
        if lat:
            print(f"{kind:<10} {len(lat):3d} programs  mean {np.mean(lat):6.2f} s  P95 {np.percentile(lat, 95):6.2f} s")
    errors = sum(1 for r in records if r["error"])
    print(f"errors: {errors}")
