"""Shared command-line plumbing of the examples: HTTP or Ray-actor transport, free or scripted mode."""

from __future__ import annotations

import argparse
import asyncio
import os

import numpy as np


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the app's HTTP address (--via http)")
    p.add_argument("--via", choices=["http", "actor"], default="http",
                   help="http: OpenAI client; actor: inside a Ray actor through deployment handles")
    p.add_argument("--app-name", default="autellix", help="Serve app name (--via actor)")
    p.add_argument("--trace", help="scripted mode: a JSONL trace (bench/workloads/trace.py format)")
    p.add_argument("--program", help="scripted mode: program_id in --trace (default: the first of this agent's kind)")
    p.add_argument("--scripted", action="store_true",
                   help="scripted mode with a generated program (autellix_ray.bench.workloads.live.live_program)")
    p.add_argument("--seed", type=int, default=0)
    return p


def script_spec(args, kind: str):
    """The trace program for scripted mode, or None (free mode)."""
    from autellix_ray.bench.workloads.live import live_program
    from autellix_ray.bench.workloads.trace import read_trace

    if args.trace:
        programs = read_trace(args.trace).programs
        for p in programs:
            if (args.program and p.program_id == args.program) or (not args.program and p.workload == kind):
                return p
        raise SystemExit(f"no program {args.program or 'of kind ' + kind} in {args.trace}")
    if args.scripted:
        return live_program(f"{kind}-example", kind, np.random.default_rng(args.seed))
    return None


def run(args, kind: str, **agent_kwargs) -> dict:
    """Run one agent of ``kind`` and print a one-line summary."""
    spec = script_spec(args, kind)
    if args.via == "actor":
        import ray

        from autellix_ray.bench.agents import agent_actor_class
        from autellix_ray.bench.workloads.trace import program_to_json

        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(address="auto", namespace="autellix-examples", log_to_driver=False)
        actor = agent_actor_class().remote()
        kwargs = {"spec": program_to_json(spec)} if spec is not None else agent_kwargs
        result = ray.get(actor.run.remote(kind, app_name=args.app_name, **kwargs))
    else:
        result = asyncio.run(_run_http(args.url, kind, spec, agent_kwargs))
    mode = f"scripted ({spec.program_id}: {spec.num_calls} calls, {spec.total_decode_tokens} tokens)" if spec else "free"
    print(f"{kind} via {args.via}, {mode}: program {result['program_id']}: {result['calls']} calls in "
          f"{result['latency_s']:.2f} s" + (f"; {result['row']}" if result.get("row") else ""))
    return result


async def _run_http(url: str, kind: str, spec, agent_kwargs: dict) -> dict:
    from autellix_ray.bench.agents import AGENTS, AgentScript, timed
    from autellix_ray.client import HTTPProgram

    async with await HTTPProgram.start(url) as program:
        script = AgentScript(spec) if spec is not None else None
        result, latency = await timed(AGENTS[kind](program, script=script, **({} if script else agent_kwargs)))
        row = await program.row()
        summary = (f"service {row['service_s']:.2f} s, critical path {row['critical_path_s']:.2f} s, "
                   f"wait {row['wait_s']:.2f} s, pinned {','.join(row.get('pinned_engines') or []) or '-'}")
        return {**result, "program_id": program.program_id, "latency_s": latency, "row": summary}
