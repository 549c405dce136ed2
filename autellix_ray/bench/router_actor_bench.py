"""Routing decisions per second the router actor sustains: one RPC per call or group-committed
batches, one actor or sharded by program id.

The Serve tier asks the router actor (``serve/router.py``) for every call it routes under
``kv_cost`` (under Algorithm 2, for long prompts), with every candidate engine's load and, under
``kv_cost``, the prompt's block keys. This drives the shipped actor class (``RouterActor``
around ``RouterService``) the same way: ``--callers`` closed-loop callers (asyncio tasks in this
driver, which plays one Ray Serve process's request router) each send a call of a random live
program (of ``--programs``; a program's prompt has ``--blocks`` keys and grows by a few blocks
per call) over ``--engines`` engine loads (a queue-length cache that Ray Serve's probes update
every 5 ms), for ``--seconds``. Cases:
- one RPC per call (``route``), the design before group commit;
- batched: the request router's ``GroupCommit`` and ``route_batch`` (one RPC in flight per
  actor, the calls that arrive meanwhile go in the next);
- sharded: ``S`` actors, a program's calls go to ``shard_of(program id, S)``; each shard keeps
  its own pins and prefix index.

Reported per case: decisions/s, RPC latency percentiles, and the actors' CPU seconds per
decision (their processes, /proc), from which ``cpu_bound_headroom``: what the actors allow when
each has a core of its own, as on a cluster's head node (here the driver, the actors and Ray share
2 cores). The 64-engine call rate the actors must absorb comes from
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


def run_case(policy: str, shards: int, batched: bool, callers: int, engines: int, programs: int, blocks: int,
             seconds: float, seed: int = 0) -> dict[str, Any]:
    import ray

    from autellix_ray.serve.group_commit import GroupCommit
    from autellix_ray.serve.router import MAX_ROUTE_BATCH, RouterService, route_batch_args, shard_of

    @ray.remote(num_cpus=0)
    class BenchRouter(RouterService):
        def pid(self) -> int:
            return os.getpid()

    actors = [BenchRouter.remote(policy=policy) for _ in range(shards)]
    pids = ray.get([a.pid.remote() for a in actors])
    rng = random.Random(seed)
    grown = [0] * programs
    queue_lengths = {f"replica-{i}": rng.randrange(0, 12) for i in range(engines)}

    known: dict[int, tuple] = {}

    def program_keys(p: int, n: int) -> tuple:  # a program's prompt grows: its keys are computed once
        have = known.get(p, ())
        if len(have) < n:
            have = known[p] = have + tuple(zlib.crc32(f"{p}:{i}".encode()) for i in range(len(have), n))
        return have[:n]

    def call() -> tuple[Any, tuple]:
        p = rng.randrange(programs)
        grown[p] += 3
        n = blocks + grown[p] % 300
        keys = program_keys(p, n) if policy == "kv_cost" else ()
        loads = list(queue_lengths.items())  # this process's snapshot, as the request router's cache
        pid = f"program-{p}"
        return shard_of(pid, shards), (pid, n * 16, loads, keys)

    latencies: list[float] = []

    def sender(actor):
        return lambda calls: actor.route_batch.remote(*route_batch_args(calls))

    groups = [GroupCommit(sender(a), 0.0, MAX_ROUTE_BATCH) for a in actors]  # as the request router

    async def probe_queue_lengths() -> None:  # Ray Serve's probes: a few replicas' lengths change every 5 ms
        while True:
            await asyncio.sleep(0.005)
            for e in rng.sample(list(queue_lengths), 8):
                queue_lengths[e] = rng.randrange(0, 12)

    async def caller(deadline: float) -> int:
        done = 0
        while time.perf_counter() < deadline:
            shard, args = call()
            t = time.perf_counter()
            await (groups[shard].submit(args) if batched else actors[shard].route.remote(*args))
            latencies.append(time.perf_counter() - t)
            done += 1
        return done

    async def drive() -> int:
        prober = asyncio.get_running_loop().create_task(probe_queue_lengths())
        await asyncio.gather(*(caller(time.perf_counter() + 1.0) for _ in range(callers)))  # warm-up
        latencies.clear()
        for g in groups:
            g.num_rpcs = 0
        cpu0 = [_cpu_s(pid) for pid in pids]
        driver0 = _cpu_s(os.getpid())
        t0 = time.perf_counter()
        counts = await asyncio.gather(*(caller(t0 + seconds) for _ in range(callers)))
        drive.elapsed = time.perf_counter() - t0
        drive.cpu = sum(_cpu_s(pid) for pid in pids) - sum(cpu0)
        drive.driver_cpu = _cpu_s(os.getpid()) - driver0
        prober.cancel()
        return sum(counts)

    decisions = asyncio.run(drive())
    for a in actors:
        ray.kill(a)
    rpcs = sum(g.num_rpcs for g in groups)
    return {"policy": policy, "shards": shards, "batched": batched, "callers": callers, "engines": engines,
            "blocks": blocks, "decisions": decisions, "decisions_per_s": decisions / drive.elapsed,
            "mean_batch": decisions / rpcs if batched and rpcs else None,
            "rpc_latency_ms_p50": 1e3 * _percentile(latencies, 50), "rpc_latency_ms_p99": 1e3 * _percentile(latencies, 99),
            "actor_cpu_us_per_decision": 1e6 * drive.cpu / decisions if decisions else None,
            # the callers' side (the request routers': spread over many processes in a cluster)
            "driver_cpu_us_per_decision": 1e6 * drive.driver_cpu / decisions if decisions else None,
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
        for batched in (False, True):
            for shards in (1, 2):
                case = run_case(policy, shards, batched, args.callers, args.engines, args.programs, args.blocks,
                                args.seconds)
                print(json.dumps(case))
                cases.append(case)
    ray.shutdown()
    out = Path(args.out_dir)
    need = required_rate(out / "results" / "scale.json")
    summary = {}
    for c in cases:
        key = f"{c['policy']}_{c['shards']}_shard{'s' if c['shards'] > 1 else ''}_{'batched' if c['batched'] else 'one_rpc_per_call'}"
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
