"""Round robin: engines in turn, whatever their load or the program (a baseline).

Parameters: none. The ranking is the engine list rotated by a counter.
"""

from __future__ import annotations

from collections.abc import Sequence

from autellix_ray.core.routing.base import EngineLoad, RouteDecision, RouteRequest, Router, require_engines


class RoundRobinRouter(Router):
    name = "round_robin"

    def __init__(self) -> None:
        self._next = 0

    def route(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> RouteDecision:
        require_engines(engines)
        start = self._next % len(engines)
        self._next += 1
        ids = [e.engine_id for e in engines]
        return RouteDecision(tuple(ids[start:] + ids[:start]), reason="round-robin")
