"""Least used: the engine with the fewest calls (running + waiting) first (a baseline).

Parameters: none. Ties break by KV usage, then rotate across equal engines.
"""

from __future__ import annotations

from collections.abc import Sequence

from autellix_ray.core.routing.base import (
    EngineLoad,
    LeastUsedRanking,
    RouteDecision,
    RouteRequest,
    Router,
    require_engines,
)


class LeastUsedRouter(Router):
    name = "least_used"

    def __init__(self) -> None:
        self._ranking = LeastUsedRanking()

    def route(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> RouteDecision:
        require_engines(engines)
        return RouteDecision(self._ranking.rank(engines), reason="least-used")
