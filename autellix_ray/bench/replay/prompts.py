"""Token ids for replayed calls, built so that the workload's prefix reuse is real.

The workloads describe reuse as counts (``CallSpec.reuse_call``/``reuse_tokens`` and
``shared_prefix_key``/``shared_prefix_tokens``); vLLM's prefix cache matches token ids
block by block. So each call's prompt is built, as ``workloads/model.py`` prescribes, as

    source context[:reuse_tokens]  +  shared prefix[len so far : shared_prefix_tokens]
                                   +  fresh ids up to prompt_tokens

where the source context is the earlier call's prompt followed by the output the
replay made that call generate (``output_ids``: drawn when the program starts, and fed
back one id per step by the fake model). A call that continues a conversation therefore
shares every full 16-token block of its history with the previous call, and calls with
the same shared-prefix key share the system prompt, across programs and engines.

Fresh ids are uniform over Llama-3's 128,256-token vocabulary from a generator seeded by
(seed, program id), so they are identical for every policy of a sweep and two unrelated
16-token blocks never collide. Contexts are dropped once no later call reuses them.
"""

from __future__ import annotations

import zlib

import numpy as np

from autellix_ray.bench.workloads.model import ProgramSpec

VOCAB = 128_256
FIRST_ID = 1000  # keep clear of special tokens (the fake model never emits EOS anyway)


def _rng(seed: int, label: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(label.encode())])


class SharedPrefixes:
    """Token ids of every shared prefix key (the same ids in every program)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._ids: dict[str, list[int]] = {}

    def get(self, key: str, length: int) -> list[int]:
        ids = self._ids.get(key)
        if ids is None or len(ids) < length:
            ids = _rng(self.seed, "shared:" + key).integers(FIRST_ID, VOCAB, size=max(length, 64)).tolist()
            self._ids[key] = ids
        return ids


class ProgramPrompts:
    """Prompt and output ids of one program's calls."""

    def __init__(self, program: ProgramSpec, seed: int, shared: SharedPrefixes) -> None:
        self.program = program
        self._shared = shared
        self._rng = _rng(seed, program.program_id)
        self._contexts: dict[int, list[int]] = {}
        last_use: dict[int, int] = {}
        for i, call in enumerate(program.calls):
            if call.reuse_call >= 0:
                last_use[call.reuse_call] = i
        self._last_use = last_use
        self._next = 0
        self._built: dict[int, tuple[list[int], list[int]]] = {}

    def build(self, index: int) -> tuple[list[int], list[int]]:
        """(prompt ids, output ids) of call ``index`` (each call once, in any order).

        Calls are generated in index order whatever order they are issued in, so the ids
        never depend on timing (and so never on the policy).
        """
        while self._next <= index:
            self._built[self._next] = self._build_one(self._next)
            self._next += 1
        return self._built.pop(index)

    def _build_one(self, index: int) -> tuple[list[int], list[int]]:
        call = self.program.calls[index]
        ids: list[int] = []
        if call.reuse_call >= 0:
            ids = self._contexts[call.reuse_call][: call.reuse_tokens]
            if self._last_use.get(call.reuse_call) == index:
                del self._contexts[call.reuse_call]
        if call.shared_prefix_tokens > len(ids):
            ids = ids + self._shared.get(call.shared_prefix_key, call.shared_prefix_tokens)[
                len(ids) : call.shared_prefix_tokens
            ]
        fresh = call.prompt_tokens - len(ids)
        if fresh > 0:
            ids = ids + self._rng.integers(FIRST_ID, VOCAB, size=fresh).tolist()
        output = self._rng.integers(FIRST_ID, VOCAB, size=call.decode_tokens).tolist()
        if index in self._last_use:
            self._contexts[index] = ids + output
        return ids, output
