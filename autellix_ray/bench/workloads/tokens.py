"""Token-count estimate and prompt bookkeeping shared by the workload generators.

Token estimate (no tokenizer download): ``estimate_tokens(text) = max(1, ceil(len(text) / 4))``,
the usual ~4 characters per token of English text under BPE tokenizers. It overcounts
Llama-3's 128K-vocabulary tokenizer on English prose by roughly 10-20% and undercounts
code and non-Latin scripts; it is deterministic and free, which is what a replay needs.
Every message counts at least one token (chat templates add a few per message anyway).

Prompt bookkeeping: a generator describes each call's prompt as a list of *segments*
``(key, num_tokens)``, where equal keys mean equal text (a message, a tool result, a
trajectory step). ``PromptBuilder`` turns that description into a ``CallSpec``: the
prompt length is the sum of the segment lengths, and ``reuse_call``/``reuse_tokens`` is
the longest run of leading whole segments equal to an earlier call's context (its prompt
segments followed by its output segment), found with a trie over segment keys.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from autellix_ray.bench.workloads.model import CallSpec

CHARS_PER_TOKEN = 4

Segment = tuple[Hashable, int]  # (identity of the text, its token count)


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: ceil(characters / 4), at least 1."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


class _Node:
    __slots__ = ("children", "owner", "tokens")

    def __init__(self, owner: int, tokens: int) -> None:
        self.children: dict[Hashable, _Node] = {}
        self.owner = owner  # first call whose context passed through this node
        self.tokens = tokens  # context tokens from the root to this node


class PromptBuilder:
    """Builds one program's ``CallSpec``s from segment lists (see module header)."""

    def __init__(self) -> None:
        self._root = _Node(-1, 0)
        self._num_calls = 0

    def call(
        self,
        prompt: Sequence[Segment],
        output: Segment,
        *,
        thread_id: str,
        parent_thread_ids: tuple[str, ...] = (),
        think_time_s: float = 0.0,
        shared_prefix_key: str = "",
        shared_prefix_tokens: int = 0,
    ) -> CallSpec:
        """The next call of the program; ``output`` is what it generates."""
        index = self._num_calls
        node, reuse_call, reuse_tokens = self._root, -1, 0
        for key, _ in prompt:
            node = node.children.get(key)
            if node is None:
                break
            reuse_call, reuse_tokens = node.owner, node.tokens
        self._insert(index, [*prompt, output])
        self._num_calls += 1
        return CallSpec(
            thread_id=thread_id,
            prompt_tokens=sum(n for _, n in prompt),
            decode_tokens=output[1],
            parent_thread_ids=parent_thread_ids,
            think_time_s=float(think_time_s),
            reuse_call=reuse_call,
            reuse_tokens=reuse_tokens,
            shared_prefix_key=shared_prefix_key,
            shared_prefix_tokens=shared_prefix_tokens,
        )

    def _insert(self, index: int, segments: Sequence[Segment]) -> None:
        node = self._root
        for key, num_tokens in segments:
            child = node.children.get(key)
            if child is None:
                child = _Node(index, node.tokens + num_tokens)
                node.children[key] = child
            node = child
