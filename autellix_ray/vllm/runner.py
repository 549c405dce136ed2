"""A real vLLM ``AsyncLLM`` on its own event-loop thread, driven from synchronous code.

For benchmarks and tests that need an engine in-process (the swap benchmark, the engine
tests): ``EngineRunner(engine_args(model, ...))`` starts the engine (its EngineCore
process is spawned: scripts start one under ``if __name__ == "__main__":``), ``run(coro)``
runs a scenario on the engine's loop, and ``call(...)`` sends one call of token ids and
returns a ``CallResult`` with the reports the engine attached to its last output.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import psutil
from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from autellix_ray.vllm.scheduler import REPORT_KEY
from autellix_ray.vllm.swap import SWAP_REPORT_KEY


def engine_args(
    model_path: str, *, kv_bytes: int, max_num_seqs: int, max_model_len: int, **kwargs: Any
) -> dict[str, Any]:
    """``AsyncEngineArgs`` of a small CPU engine (float32, eager, no stats log); ``kwargs`` add to them."""
    return dict(
        model=model_path,
        dtype="float32",
        enforce_eager=True,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        kv_cache_memory_bytes=kv_bytes,
        disable_log_stats=True,
        **kwargs,
    )


@dataclass
class CallResult:
    """One finished call, as the runner saw it."""

    request_id: str  # the id it was sent with
    program: str | None  # its session_id (the program), None: a one-call program
    prompt_len: int  # prompt tokens
    token_ids: list[int]  # the first completion's tokens ([] if the engine produced no output)
    finish_reason: str | None  # "length", "stop", "abort"; None: no output
    num_outputs: int  # completions in the last output (n, or 0)
    num_streamed: int  # outputs the engine produced for the call
    submitted_s: float  # time.monotonic() when sent
    finished_s: float  # time.monotonic() when its last output arrived
    report: dict[str, Any] = field(default_factory=dict)  # the scheduler's (REPORT_KEY); {}: none
    swap: dict[str, Any] = field(default_factory=dict)  # the swap connector's (SWAP_REPORT_KEY); {}: none

    @property
    def latency_s(self) -> float:
        return self.finished_s - self.submitted_s


class EngineRunner:
    """An ``AsyncLLM`` built from ``engine_args``; ``omp_threads`` sets its processes'
    ``OMP_NUM_THREADS`` (None: inherited). ``pids`` are its processes (EngineCore, workers)."""

    def __init__(self, engine_args: dict[str, Any], *, omp_threads: int | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        args = AsyncEngineArgs(**engine_args)
        # The engine's processes inherit the environment at spawn. One OpenMP thread: on a
        # shared 2-core box, 2-thread OpenMP barriers stall whenever another process runs
        # (steps 20-40x slower and erratic); the setting is restored right after.
        saved = os.environ.get("OMP_NUM_THREADS")
        if omp_threads:
            os.environ["OMP_NUM_THREADS"] = str(omp_threads)
        before = _child_pids()
        try:
            self.engine: AsyncLLM | None = self.run(self._start(args))
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        self.pids = _child_pids() - before
        self._ids = itertools.count()
        self.completion_order: list[str] = []  # request ids, as their calls finished

    @staticmethod
    async def _start(args: AsyncEngineArgs) -> AsyncLLM:
        return AsyncLLM.from_engine_args(args)

    def run(self, coro: Coroutine, timeout: float = 900) -> Any:
        """Run ``coro`` on the engine's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def call(
        self,
        prompt_ids: list[int],
        max_tokens: int,
        *,
        program: str | None = None,
        thread: str | None = None,
        parents: list[str] | None = None,
        delay_s: float = 0.0,
        request_id: str | None = None,
        n: int = 1,
        stop: list[str] | None = None,
        state: dict | None = None,
        on_output: Callable[[str], None] | None = None,
    ) -> CallResult:
        """One call (greedy, ``ignore_eos``); ``state`` goes into ``extra_args`` (program state,
        as the cluster table sends it), ``on_output(request_id)`` runs on every output (to order
        a scenario by engine progress)."""
        if delay_s:
            await asyncio.sleep(delay_s)
        extra = dict(state or {})
        if thread:
            extra["thread_id"] = thread
        if parents:
            extra["parent_thread_ids"] = parents
        sampling = {"temperature": 0.0} if n == 1 else {
            "temperature": 1.0,  # greedy needs n=1
            "seed": 0,
            "output_kind": RequestOutputKind.FINAL_ONLY,  # all n completions in one output
        }
        params = SamplingParams(
            max_tokens=max_tokens, ignore_eos=True, n=n, stop=stop, extra_args=extra or None, **sampling
        )
        rid = request_id or f"c{next(self._ids)}"
        start = time.monotonic()
        last, streamed = None, 0
        prompt = {"prompt_token_ids": prompt_ids}
        async for out in self.engine.generate(prompt, params, rid, session_id=program):
            last = out
            streamed += 1
            if on_output is not None:
                on_output(rid)
        self.completion_order.append(rid)
        kv = (last.kv_transfer_params if last is not None else None) or {}
        first = last.outputs[0] if last is not None else None
        return CallResult(
            request_id=rid,
            program=program,
            prompt_len=len(prompt_ids),
            token_ids=list(first.token_ids) if first else [],
            finish_reason=first.finish_reason if first else None,
            num_outputs=len(last.outputs) if last is not None else 0,
            num_streamed=streamed,
            submitted_s=start,
            finished_s=time.monotonic(),
            report=kv.get(REPORT_KEY) or {},
            swap=kv.get(SWAP_REPORT_KEY) or {},
        )

    async def abort(self, request_id: str) -> None:
        await self.engine.abort(request_id)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the engine's processes."""
        total = 0.0
        for pid in self.pids:
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def shutdown(self) -> None:
        if self.engine is None:
            return
        self.engine.shutdown()
        self.engine = None  # collected now, not in AsyncLLM.__del__ at interpreter exit
        gc.collect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


def _child_pids() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}
