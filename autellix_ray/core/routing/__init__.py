"""Routing policies (round robin, least used, Autellix locality: Algorithm 2, KV-aware cost) and the
cluster-wide pins around them (``ProgramRouter``)."""

from autellix_ray.core.routing.base import EngineLoad, RouteDecision, RouteRequest, Router
from autellix_ray.core.routing.kv_cost import KvCostRouter
from autellix_ray.core.routing.least_used import LeastUsedRouter
from autellix_ray.core.routing.locality import LocalityRouter
from autellix_ray.core.routing.pins import ProgramRouter, RouterStats
from autellix_ray.core.routing.prefix_index import PrefixIndex, text_block_keys
from autellix_ray.core.routing.registry import ROUTERS, make_router
from autellix_ray.core.routing.round_robin import RoundRobinRouter

__all__ = [
    "ROUTERS",
    "EngineLoad",
    "KvCostRouter",
    "LeastUsedRouter",
    "LocalityRouter",
    "PrefixIndex",
    "ProgramRouter",
    "RoundRobinRouter",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "RouterStats",
    "make_router",
    "text_block_keys",
]
