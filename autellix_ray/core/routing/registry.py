"""Routing policies by name: ``make_router("autellix", short_prompt_tokens=1024)``."""

from __future__ import annotations

import inspect
from typing import Any

from autellix_ray.core.routing.base import Router
from autellix_ray.core.routing.kv_cost import KvCostRouter
from autellix_ray.core.routing.least_used import LeastUsedRouter
from autellix_ray.core.routing.locality import LocalityRouter
from autellix_ray.core.routing.round_robin import RoundRobinRouter

ROUTERS: dict[str, type[Router]] = {
    "round_robin": RoundRobinRouter,
    "least_used": LeastUsedRouter,
    "autellix": LocalityRouter,
    "kv_cost": KvCostRouter,
}


def make_router(name: str, **params: Any) -> Router:
    """Build a router by name; bad names or parameters raise ValueError."""
    cls = ROUTERS.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown router {name!r}; valid: {sorted(ROUTERS)}")
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for router {name!r}; valid: {valid}")
    return cls(**params)
