"""Autellix locality routing (Algorithm 2 of the paper).

Algorithm: a call whose prompt has at most ``short_prompt_tokens`` tokens goes to
the least-used engine (short prompts mostly share system-prompt prefixes, cached
everywhere). A longer call goes to the engine its program is pinned to, where its
context's KV lives; a program with no pin, or pinned to an engine that is gone, is
pinned to the least-used engine. The pinned engine ranks first; the others follow
by load, as fallbacks. No rebalancing.
Parameters: ``short_prompt_tokens`` (paper: 2048).
"""

from __future__ import annotations

from collections.abc import Sequence

from autellix_ray.core.routing.base import EngineLoad, RouteDecision, RouteRequest, Router
from autellix_ray.core.routing.least_used import LeastUsedRouter

DEFAULT_SHORT_PROMPT_TOKENS = 2048


class LocalityRouter(Router):
    name = "autellix"

    def __init__(self, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS) -> None:
        if not isinstance(short_prompt_tokens, int) or short_prompt_tokens < 0:
            raise ValueError(f"short_prompt_tokens must be an integer >= 0, got {short_prompt_tokens!r}")
        self.short_prompt_tokens = short_prompt_tokens
        self._least_used = LeastUsedRouter()

    def follows_pin(self, request: RouteRequest) -> bool:
        """Whether the call goes to its program's pinned engine (else: least used, no pin).

        A caller without the pins (a Ray Serve router process) routes the other calls itself.
        """
        return request.program_id is not None and request.num_prompt_tokens > self.short_prompt_tokens

    def route(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> RouteDecision:
        ranked = self._least_used.route(request, engines).ranked  # raises ValueError without engines
        if not self.follows_pin(request):
            return RouteDecision(ranked, reason="short")
        pinned = request.pinned_engine_id
        if pinned is not None and pinned in ranked:
            return RouteDecision((pinned,) + tuple(e for e in ranked if e != pinned), reason="pinned")
        return RouteDecision(ranked, pin=ranked[0], reason="new-pin")
