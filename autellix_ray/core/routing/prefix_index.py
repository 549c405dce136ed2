"""Which prompt prefixes each engine holds, as the router last saw them (an approximate index).

The router cannot read the engines' KV caches on the routing path, so, like SGLang's
cache-aware router (an approximate radix tree per worker) and llm-d's prefix-cache scorer, it
remembers what it sent where. A prompt is a sequence of *block keys*: chained hashes of its
full KV blocks (vLLM's own ``Request.block_hashes`` in the replay; hashes of text chunks in
the Serve tier, ``text_block_keys``), so block i's key stands for the whole prefix up to
block i. Per engine the index is an LRU of keys bounded by the engine's KV size in blocks;
routing a prompt to an engine refreshes its blocks, the first block most recent, so a prefix
is always at least as recent as anything that extends it (vLLM's free queue also evicts a
request's tail blocks first). That makes "engine holds block i" monotone in i, and the
longest held prefix is found by binary search: O(log n) lookups per engine. Recency is a
stamp per key (one C-speed dict update per routed prompt); eviction runs in bulk when an
engine's keys pass ``EVICT_SLACK`` x its capacity, keeping the most recent ``capacity``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence

DEFAULT_MAX_BLOCKS = 1 << 16  # per engine, when the engine does not report its KV size (1M tokens at 16/block)
EVICT_SLACK = 1.25  # bulk eviction once an engine's keys pass this x its capacity
STAMP_STRIDE = 1 << 32  # stamps of one insert: base - position (more than any prompt's blocks apart)
TEXT_BLOCK_CHARS = 64  # text_block_keys: characters per key (~16 tokens at ~4 characters per token)


class PrefixIndex:
    def __init__(self, max_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        if not isinstance(max_blocks, int) or max_blocks < 1:
            raise ValueError(f"max_blocks must be an integer >= 1, got {max_blocks!r}")
        self.max_blocks = max_blocks
        self._held: dict[str, dict[Hashable, int]] = {}  # engine id -> {key: recency stamp, higher = newer}
        self._inserts = 0

    def matched_blocks(self, engine_id: str, keys: Sequence[Hashable]) -> int:
        """How many leading ``keys`` the engine holds (0 if it holds none or is unknown)."""
        held = self._held.get(engine_id)
        if not held or not keys or keys[0] not in held:
            return 0
        return _longest_held(held, keys)

    def holders_of(self, key: Hashable) -> dict[str, dict]:
        """Engines holding ``key`` (a prompt's first block: the others match nothing), with their keys."""
        return {e: held for e, held in self._held.items() if key in held}

    def insert(self, engine_id: str, keys: Sequence[Hashable], capacity_blocks: int | None = None) -> None:
        """The engine now holds ``keys`` (most recently used); evict past its capacity."""
        held = self._held.setdefault(engine_id, {})
        self._inserts += 1
        base = self._inserts * STAMP_STRIDE
        held.update(zip(keys, range(base, base - len(keys), -1)))  # the first block newest: prefixes outlive extensions
        cap = min(capacity_blocks, self.max_blocks) if capacity_blocks else self.max_blocks
        if len(held) > cap * EVICT_SLACK:  # keep the newest cap keys (stamps are unique)
            oldest_kept = sorted(held.values())[-cap]
            self._held[engine_id] = {k: stamp for k, stamp in held.items() if stamp >= oldest_kept}

    def forget_engine(self, engine_id: str) -> None:
        self._held.pop(engine_id, None)

    def num_blocks(self, engine_id: str) -> int:
        return len(self._held.get(engine_id, ()))


def _longest_held(held: dict, keys: Sequence[Hashable]) -> int:
    """Binary search for the longest held prefix, given ``keys[0]`` is held (monotone: module header)."""
    lo, hi = 1, len(keys)  # keys[:lo] held; find the largest such lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if keys[mid - 1] in held:
            lo = mid
        else:
            hi = mid - 1
    return lo


def text_block_keys(text: str, block_chars: int = TEXT_BLOCK_CHARS) -> tuple[int, ...]:
    """Chained keys of ``text``'s full ``block_chars``-character blocks (stable across processes).

    Key i hashes key i-1 and block i, so equal keys mean equal prefixes, as vLLM's block hashes.
    """
    keys = []
    prev = b""
    data = text.encode("utf-8", "surrogatepass")
    chunk = block_chars  # bytes per block: characters of ASCII text; close enough for other scripts
    for start in range(0, len(data) - chunk + 1, chunk):
        prev = hashlib.blake2b(prev + data[start:start + chunk], digest_size=8).digest()
        keys.append(int.from_bytes(prev, "little"))
    return tuple(keys)
