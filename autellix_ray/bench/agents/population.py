"""Run a population of scripted agents: each trace program starts at its arrival time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from autellix_ray.bench.agents.programs import run_scripted
from autellix_ray.bench.agents.script import VOCAB_HIGH, VOCAB_LOW
from autellix_ray.bench.workloads.model import ProgramSpec, Workload
from autellix_ray.client.program import Program


async def run_population(workload: Workload, make_program: Callable[[ProgramSpec], Awaitable[Program]], *,
                         end_program: Callable[[Program], Awaitable[Any]] | None = None,
                         on_reply: Callable[[ProgramSpec, Any], None] | None = None,
                         on_done: Callable[[dict], None] | None = None,
                         vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)) -> list[dict]:
    """Start each program of ``workload`` at its ``arrival_s`` (from now) and run its agent
    in scripted mode; return one record per program (latency from arrival to the last call's
    end, tokens, errors). Programs are closed loops: each call is issued when the calls it
    depends on finished (plus its tool delay)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def one(spec: ProgramSpec) -> dict:
        await asyncio.sleep(max(0.0, t0 + spec.arrival_s - loop.time()))
        start = loop.time()
        record = {"program_id": spec.program_id, "workload": spec.workload, "calls": spec.num_calls,
                  "decode_tokens": spec.total_decode_tokens, "arrival_s": spec.arrival_s,
                  "start_s": start - t0, "error": None}
        program = None
        try:
            program = await make_program(spec)
            callback = (lambda reply: on_reply(spec, reply)) if on_reply else None
            await run_scripted(program, spec, callback, vocab)
        except Exception as e:  # noqa: BLE001 - recorded in the record; the caller counts errors
            record["error"] = f"{type(e).__name__}: {e}"[:300]
        record["latency_s"] = loop.time() - start
        if program is not None and end_program is not None:
            try:
                await end_program(program)
            except Exception as e:  # noqa: BLE001 - ending is best effort (idle timeout ends it anyway)
                record["end_error"] = f"{type(e).__name__}: {e}"[:200]
        if on_done is not None:
            on_done(record)
        return record

    return list(await asyncio.gather(*(one(p) for p in workload.programs)))


async def timed(coro) -> tuple[Any, float]:
    """``(result, seconds)`` of awaiting ``coro``."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await coro
    return result, loop.time() - start
