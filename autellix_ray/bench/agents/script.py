"""Scripted mode: a trace program fixes each call's prompt, decode length and the delay before it.

``AgentScript(spec)`` turns a ``ProgramSpec`` (the replay benchmark's JSONL trace format,
``autellix_ray.bench.workloads.trace``) into token-id prompts and sampling fields;
``scripted_call`` runs the real tool, sleeps the rest of the call's ``think_time_s`` and
issues the call. ``complete`` is the completion every agent sends (``ignore_eos`` fixes the
decode length).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec
from autellix_ray.client.program import Thread

VOCAB_LOW, VOCAB_HIGH = 16, 500  # token ids used for scripted prompts (the tiny model's vocab is 512)


@dataclass
class AgentScript:
    """Per-call prompt/decode lengths and delays for an agent, from a trace program.

    Prompts are token-id lists (the completions API takes them): call ``i``'s prompt is
    the first ``reuse_tokens`` ids of its ``reuse_call``'s prompt (history), else the
    shared prefix's ids for its ``shared_prefix_key``, then ids drawn from a generator
    seeded by the program id and ``i``. The same trace gives the same prompts on every
    run and system. ``vocab`` bounds the ids (set it below your model's vocabulary).
    """

    spec: ProgramSpec
    vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)
    _prompts: dict[int, list[int]] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.spec.workload

    @property
    def num_calls(self) -> int:
        return len(self.spec.calls)

    def call(self, i: int) -> CallSpec:
        return self.spec.calls[i]

    def prompt(self, i: int) -> list[int]:
        if i in self._prompts:
            return self._prompts[i]
        c = self.spec.calls[i]
        if c.reuse_tokens and c.reuse_call < i:
            head = self.prompt(c.reuse_call)[: c.reuse_tokens]
        elif c.shared_prefix_tokens:
            head = _ids(f"shared/{c.shared_prefix_key}", c.shared_prefix_tokens, self.vocab)
        else:
            head = []
        ids = head + _ids(f"{self.spec.program_id}/{i}", c.prompt_tokens - len(head), self.vocab)
        self._prompts[i] = ids
        return ids

    def request(self, i: int) -> dict[str, Any]:
        """``prompt`` and sampling fields of call ``i`` (``ignore_eos`` fixes the decode length)."""
        c = self.spec.calls[i]
        return {"prompt": self.prompt(i), "max_tokens": c.decode_tokens, "ignore_eos": True}


def _ids(key: str, n: int, vocab: tuple[int, int]) -> list[int]:
    if n <= 0:
        return []
    rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little"))
    return [int(t) for t in rng.integers(vocab[0], vocab[1], size=n)]


async def scripted_call(thread: Thread, script: AgentScript, i: int, *, tool: Callable[[], str] | None = None,
                        **kwargs: Any) -> tuple[Any, str | None]:
    """Run ``tool`` (real), sleep the rest of call ``i``'s ``think_time_s``, then issue the call."""
    start = time.monotonic()
    observation = tool() if tool is not None else None
    rest = script.call(i).think_time_s - (time.monotonic() - start)
    if rest > 0:
        await asyncio.sleep(rest)
    return await complete(thread, **script.request(i), **kwargs), observation


async def complete(thread: Thread, *, prompt: Any, max_tokens: int, ignore_eos: bool = True, **kwargs: Any) -> Any:
    """A completion with vLLM's ``ignore_eos`` (works over HTTP and over handles)."""
    extra = dict(kwargs.pop("extra_body", None) or {})
    extra["ignore_eos"] = ignore_eos
    return await thread.complete(prompt, max_tokens=max_tokens, extra_body=extra, **kwargs)


def reply_text(reply: Any) -> str:
    return reply.choices[0].text or ""


def notify(on_reply, reply) -> None:
    if on_reply is not None:
        on_reply(reply)
