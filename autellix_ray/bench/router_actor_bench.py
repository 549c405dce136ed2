"""Routing decisions per second the router actor sustains, one actor or sharded by program id.

The Serve tier asks the router actor (``serve/router.py``) once per call it routes: one
``route`` RPC, awaited, with every candidate engine's load and, under ``kv_cost``, the prompt's
block keys. This drives the shipped actor class (``RouterActor`` around ``RouterService``) the
same way: ``--callers`` closed-loop callers (asyncio tasks in this driver, like the Ray Serve
router processes of many ingress replicas) each send a call of a random live program (of
``--programs``; a program's prompt has ``--blocks`` keys and grows by a few blocks per call)
over ``--engines`` engine loads, for ``--seconds``. Sharded: ``S`` actors, a call goes to actor
``hash(program id) % S``; each shard keeps its own pins and prefix index, which is all a program
needs (its prefix is its own; a shared system prompt is learnt by every shard).

Reported per case: decisions/s, RPC latency percentiles, and the actors' CPU seconds per
decision (their processes, /proc). The 64-engine call rate the actors must absorb comes from
the scale replay (``results/scale.json``: calls/s at steady state); ``summary`` holds each
design's headroom over it (target >= 3x).

    python -m autellix_ray.bench.router_actor_bench          # writes docs/results/router_actor.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import zlib
from pathlib import Path
from typing import Any


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def run_case(policy: str, shards: int, callers: int, engines: int, programs: int, blocks: int,
             seconds: float, seed: int = 0) -> dict[str, Any]:
    import ray

    from autellix_ray.serve.router import RouterService

    @ray.remote(num_cpus=0)
    class BenchRouter(RouterService):
        def pid(self) -> int:
            return os.getpid()

    actors = [BenchRouter.remote(policy=policy) for _ in range(shards)]
    pids = ray.get([a.pid.remote() for a in actors])
    rng = random.Random(seed)
    grown = [0] * programs
    engine_ids = [f"replica-{i}" for i in range(engines)]

    def call() -> tuple[Any, tuple]:
        p = rng.randrange(programs)
        grown[p] += 3
        n = blocks + grown[p] % 300
        keys = tuple(zlib.crc32(f"{p}:{i}".encode()) for i in range(n)) if policy == "kv_cost" else ()
        loads = [(e, rng.randrange(0, 12)) for e in engine_ids]
        pid = f"program-{p}"
        return actors[zlib.crc32(pid.encode()) % shards], (pid, n * 16, loads, keys)

    latencies: list[float] = []

    async def caller(deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            actor, args = call()
            t = time.perf_counter()
            await actor.route.remote(*args)
            latencies.append(time.perf_counter() - t)
            done += 1
        return done

    async def drive() -> int:
        await asyncio.gather(*(caller(time.perf_counter() + 1.0) for _ in range(callers)))  # warm-up
        latencies.clear()
        cpu0 = [_cpu_s(pid) for pid in pids]
        t0 = time.perf_counter()
        counts = await asyncio.gather(*(caller(t0 + seconds) for _ in range(callers)))
        drive.elapsed = time.perf_counter() - t0
        drive.cpu = sum(_cpu_s(pid) for pid in pids) - sum(cpu0)
        return sum(counts)

    decisions = asyncio.run(drive())
    for a in actors:
        ray.kill(a)
    return {"policy": policy, "shards": shards, "callers": callers, "engines": engines, "blocks": blocks,
            "decisions": decisions, "decisions_per_s": decisions / drive.elapsed,
            "rpc_latency_ms_p50": 1e3 * _percentile(latencies, 50), "rpc_latency_ms_p99": 1e3 * _percentile(latencies, 99),
            "actor_cpu_us_per_decision": 1e6 * drive.cpu / decisions if decisions else None,
            "load_average_1min_at_end": os.getloadavg()[0]}


def required_rate(scale_path: Path) -> dict[str, Any] | None:
    """The highest steady-state call rate of the scale replay's largest cluster (calls/s)."""
    if not scale_path.exists():
        return None
    runs = json.loads(scale_path.read_text()).get("runs", {})
    if not runs:
        return None
    n = max(runs, key=int)
    rows = [r for by_router in runs[n].values() for r in by_router.values()]
    top = max(rows, key=lambda r: r["central_load"]["calls_per_s"])
    return {"engines": int(n), "calls_per_s": top["central_load"]["calls_per_s"], "router": top["router"],
            "load": top["load"], "commit": top["commit"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--engines", type=int, default=64)
    parser.add_argument("--programs", type=int, default=5000)
    parser.add_argument("--blocks", type=int, default=200, help="prompt keys per call (x16 tokens)")
    parser.add_argument("--out-dir", default="docs")
    args = parser.parse_args(argv)
    import ray

    from autellix_ray.bench.replay.ablation import git_commit

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False)  # never a running cluster
    cases = []
    for policy in ("autellix", "kv_cost"):
        for shards in (1, 2):
            case = run_case(policy, shards, args.callers, args.engines, args.programs, args.blocks, args.seconds)
            print(json.dumps(case))
            cases.append(case)
    ray.shutdown()
    out = Path(args.out_dir)
    need = required_rate(out / "results" / "scale.json")
    summary = {}
    for c in cases:
        key = f"{c['policy']}_{c['shards']}_shard{'s' if c['shards'] > 1 else ''}"
        entry = {"decisions_per_s": round(c["decisions_per_s"]), "actor_cpu_us_per_decision": c["actor_cpu_us_per_decision"]}
        if need:
            entry["headroom"] = c["decisions_per_s"] / need["calls_per_s"]
            entry["met_3x"] = entry["headroom"] >= 3.0
            # what one actor's CPU alone allows (its cores are not shared with the callers in a cluster)
            entry["cpu_bound_headroom"] = (1e6 / c["actor_cpu_us_per_decision"] * c["shards"] / need["calls_per_s"]
                                           if c["actor_cpu_us_per_decision"] else None)
        summary[key] = entry
    doc = {"command": "python -m autellix_ray.bench.router_actor_bench", "commit": git_commit(),
           "machine": {"cpus": os.cpu_count()}, "args": vars(args), "required": need, "cases": cases,
           "summary": summary}
    path = out / "results" / "router_actor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
