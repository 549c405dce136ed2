"""The engine tests' AsyncLLM (vLLM CPU build, tiny model) and their scenario helpers.

Tests share one engine per configuration across a module (an engine takes ~30 s to
start here). Scenarios are coroutines run on the engine's loop with ``run``; the engine
itself is the product's runner (``autellix_ray.vllm.runner``).
"""

from __future__ import annotations

import asyncio

from autellix_ray.vllm import autellix_engine_kwargs, runner
from autellix_ray.vllm.runner import engine_args

KV_BYTES = 64 << 20
MAX_MODEL_LEN = 1024


class EngineRunner(runner.EngineRunner):
    """The tiny model under ``policy`` with ``settings`` (policy None: stock vLLM)."""

    def __init__(self, model_path: str, policy: str | None, *, max_num_seqs: int = 4, **settings) -> None:
        kwargs = autellix_engine_kwargs(policy, **settings) if policy else {}
        kwargs.update(kv_bytes=KV_BYTES, max_num_seqs=max_num_seqs, max_model_len=MAX_MODEL_LEN)
        super().__init__(engine_args(model_path, **kwargs))


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
