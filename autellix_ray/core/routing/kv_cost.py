"""KV-aware cost routing: the engine where the call costs least, counting what it has cached.

Algorithm (the cost form of Dynamo's KV router, with an approximate prefix index as SGLang's
cache-aware router and llm-d's prefix-cache scorer keep): for every engine e,

    cost(e) = prefill_weight * (prompt tokens e does not hold as a cached prefix) + load(e)

where the cached prefix comes from ``PrefixIndex`` (what this router sent to e, bounded by e's
KV size) and load(e), in tokens, is the KV in use plus the prompt tokens its waiting calls
still have to compute (``EngineLoad.kv_usage * kv_capacity_tokens + waiting_tokens``), or,
where an engine reports only call counts (the Serve tier), its calls times the mean prompt
length routed so far. Engines rank by cost, lowest first; equal costs rotate. The chosen
engine is recorded as holding the prompt's blocks. A program's pin follows its call: it
stays while its engine stays cheapest and moves when another engine is cheaper by more than
the prefill of the context it would leave behind (reasons "pinned", "moved", "new-pin";
calls without a program: "no-program"). Short prompts need no special case: a shared
system prompt is cached everywhere, so load decides.
Parameters: ``prefill_weight`` (1.0: a token to prefill weighs as much as a token of load,
Dynamo's default overlap weight), ``max_index_blocks`` (per-engine index bound when the
engine does not report its KV size).
"""

from __future__ import annotations

from collections.abc import Sequence

from autellix_ray.core.routing.base import EngineLoad, RouteDecision, RouteRequest, Router, require_engines
from autellix_ray.core.routing.prefix_index import DEFAULT_MAX_BLOCKS, PrefixIndex, _longest_held


class KvCostRouter(Router):
    name = "kv_cost"
    uses_prefix_blocks = True

    def __init__(self, prefill_weight: float = 1.0, max_index_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        if isinstance(prefill_weight, bool) or not isinstance(prefill_weight, (int, float)) or not prefill_weight >= 0:
            raise ValueError(f"prefill_weight must be a number >= 0, got {prefill_weight!r}")
        self.prefill_weight = float(prefill_weight)
        self.index = PrefixIndex(max_index_blocks)
        self._turn = 0
        self._routed_calls = 0
        self._routed_tokens = 0

    def load_tokens(self, engine: EngineLoad) -> float:
        """The engine's load in tokens (see the module header)."""
        if engine.kv_capacity_tokens > 0:
            return engine.kv_usage * engine.kv_capacity_tokens + engine.waiting_tokens
        mean = self._routed_tokens / self._routed_calls if self._routed_calls else 1.0
        return engine.num_calls * mean

    def costs(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> list[float]:
        tokens = request.num_prompt_tokens
        keys = request.prefix_blocks
        w = self.prefill_weight
        mean = self._routed_tokens / self._routed_calls if self._routed_calls else 1.0
        holders = self.index.holders_of(keys[0]) if keys else {}  # only these hold any prefix of the prompt
        costs = []
        for e in engines:  # the hot loop (64 engines per call at scale): load_tokens inlined
            load = (e.kv_usage * e.kv_capacity_tokens + e.waiting_tokens if e.kv_capacity_tokens > 0
                    else (e.num_running + e.num_waiting) * mean)
            held = holders.get(e.engine_id)
            new = tokens - _longest_held(held, keys) * request.block_tokens if held is not None else tokens
            costs.append(w * max(0, new) + load)
        return costs

    def route(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> RouteDecision:
        require_engines(engines)
        costs = self.costs(request, engines)
        n = len(engines)
        start = self._turn % n
        self._turn += 1
        order = sorted([*range(start, n), *range(start)], key=costs.__getitem__)  # stable: ties rotate
        ranked = tuple(engines[i].engine_id for i in order)
        best = engines[order[0]]
        self._routed_calls += 1
        self._routed_tokens += request.num_prompt_tokens
        if request.prefix_blocks:
            cap = best.kv_capacity_tokens // max(1, request.block_tokens) if best.kv_capacity_tokens else None
            self.index.insert(best.engine_id, request.prefix_blocks, cap)
        pinned = request.pinned_engine_id
        if request.program_id is None:
            return RouteDecision(ranked, reason="no-program")
        if pinned == best.engine_id:
            return RouteDecision(ranked, reason="pinned")
        return RouteDecision(ranked, pin=best.engine_id, reason="new-pin" if pinned is None else "moved")

    def forget_engine(self, engine_id: str) -> None:
        self.index.forget_engine(engine_id)
