"""A real AsyncLLM engine (vLLM CPU build, tiny model) on its own event-loop thread.

Tests share one engine per configuration across a module (an engine takes ~30 s to
start here). Scenarios are coroutines run on the engine's loop with ``run``.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vllm import SamplingParams
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.sampling_params import RequestOutputKind
from vllm.v1.engine.async_llm import AsyncLLM

from autellix_ray.vllm import REPORT_KEY, autellix_engine_kwargs

KV_BYTES = 64 << 20
MAX_MODEL_LEN = 1024


@dataclass
class CallResult:
    request_id: str
    program: str | None
    submitted_s: float
    finished_s: float
    token_ids: list[int]
    finish_reason: str | None
    num_outputs: int
    report: dict | None = field(default=None)
    num_streamed: int = 0

    @property
    def latency_s(self) -> float:
        return self.finished_s - self.submitted_s


class EngineRunner:
    def __init__(self, model_path: str, policy: str | None, *, max_num_seqs: int = 4, **settings) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        kwargs = autellix_engine_kwargs(policy, **settings) if policy else {}
        args = AsyncEngineArgs(
            model=model_path,
            dtype="float32",
            enforce_eager=True,
            max_model_len=MAX_MODEL_LEN,
            max_num_seqs=max_num_seqs,
            kv_cache_memory_bytes=KV_BYTES,
            disable_log_stats=True,
            **kwargs,
        )
        self.engine: AsyncLLM = self.run(self._start(args))
        self._ids = itertools.count()
        self.completion_order: list[str] = []

    @staticmethod
    async def _start(args: AsyncEngineArgs) -> AsyncLLM:
        return AsyncLLM.from_engine_args(args)

    def run(self, coro, timeout: float = 600):
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
        """One call; ``state`` goes into ``extra_args`` (program state, as the cluster table sends
        it), ``on_output(request_id)`` runs on every output (order a scenario by engine progress)."""
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
        async for out in self.engine.generate(
            {"prompt_token_ids": prompt_ids}, params, rid, session_id=program
        ):
            last = out
            streamed += 1
            if on_output is not None:
                on_output(rid)
        self.completion_order.append(rid)
        report = (last.kv_transfer_params or {}).get(REPORT_KEY) if last.kv_transfer_params else None
        return CallResult(
            request_id=rid,
            program=program,
            submitted_s=start,
            finished_s=time.monotonic(),
            token_ids=list(last.outputs[0].token_ids),
            finish_reason=last.outputs[0].finish_reason,
            num_outputs=len(last.outputs),
            report=report,
            num_streamed=streamed,
        )

    def shutdown(self) -> None:
        self.engine.shutdown()
        self.engine = None  # collected now, not in AsyncLLM.__del__ at interpreter exit
        gc.collect()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)


class Running:
    """Counts the calls that have produced output; ``await wait()`` returns once ``n`` have.

    Pass it as a call's output hook to order a scenario by engine progress instead of by
    wall-clock delays: a call that has produced output is known to have been admitted.
    """

    def __init__(self, n: int) -> None:
        self.n, self.seen, self.event = n, set(), asyncio.Event()

    def __call__(self, request_id: str) -> None:
        self.seen.add(request_id)
        if len(self.seen) >= self.n:
            self.event.set()

    def reset(self) -> None:
        self.seen.clear()
        self.event.clear()

    async def wait(self) -> None:
        await self.event.wait()


def prompt(seed: int, length: int = 32) -> list[int]:
    """Distinct token prompts (no shared prefix across seeds)."""
    return [10 + (seed * 7919 + i * 31) % 480 for i in range(length)]
