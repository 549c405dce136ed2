"""The routing-policy interface: rank engines for one call, as data.

Caller's contract: pass the call (``RouteRequest``, with the engine its program is
pinned to, if any) and a snapshot of every live engine's load; get back the engines
ranked best first and, when the policy wants it, the engine to pin the program to.
The caller applies the pin (to its program table) and tries engines in rank order.
Routers keep no program state of their own, so any number of router instances
(one per process holding a handle) agree as long as they share the pins. A router that
models the engines' caches (``kv_cost``: which prefixes it sent where) must see every call
it ranks, so it runs as one instance (the router actor, or the replay's cluster tier).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class EngineLoad:
    """One engine's load as the router sees it (a replica's routing stats, or the replay's engine)."""

    engine_id: str  # the engine replica's id (Ray Serve's replica unique id; "e0".. in the replay)
    num_running: int = 0  # calls the engine is running (the Serve tier: calls in flight, all of them)
    num_waiting: int = 0  # calls queued in the engine
    kv_usage: float = 0.0  # fraction of KV blocks in use, 0..1
    kv_capacity_tokens: int = 0  # the engine's KV cache size in tokens (0: not reported)
    waiting_tokens: int = 0  # prompt tokens its waiting calls still have to compute (0: not reported)

    @property
    def num_calls(self) -> int:
        return self.num_running + self.num_waiting


@dataclass(frozen=True)
class RouteRequest:
    program_id: str | None  # None: a call outside any program (never pinned)
    num_prompt_tokens: int  # the prompt's length (the Serve tier estimates it before tokenizing)
    pinned_engine_id: str | None = None  # the live engine its program is pinned to, if any
    prefix_blocks: tuple = ()  # chained keys of the prompt's full KV blocks (prefix_index.py); () unknown
    block_tokens: int = 16  # prompt tokens per key of prefix_blocks


@dataclass(frozen=True)
class RouteDecision:
    ranked: tuple[str, ...]  # engine ids, best first; never empty
    pin: str | None = None  # pin the program to this engine (None: leave pins alone)
    reason: str = ""  # short label for metrics: "short", "pinned", "new-pin", ...


class Router(ABC):
    name: ClassVar[str]
    uses_prefix_blocks: ClassVar[bool] = False  # the caller should fill RouteRequest.prefix_blocks

    @abstractmethod
    def route(self, request: RouteRequest, engines: Sequence[EngineLoad]) -> RouteDecision:
        """Rank ``engines`` for ``request``. Raises ValueError when ``engines`` is empty."""

    def forget_engine(self, engine_id: str) -> None:
        """The engine is gone: drop what the policy knows about it (no-op for stateless policies)."""


def require_engines(engines: Sequence[EngineLoad]) -> None:
    if not engines:
        raise ValueError("no engines to route to")


class LeastUsedRanking:
    """Engines by fewest calls (running + waiting), then KV usage.

    Ties rotate: each ranking starts its tie-break at a different engine, so equal
    engines take turns instead of the first one taking every call.
    """

    def __init__(self) -> None:
        self._turn = 0

    def rank(self, engines: Sequence[EngineLoad]) -> tuple[str, ...]:
        n = len(engines)
        start = self._turn % n
        self._turn += 1
        load = [(e.num_calls, e.kv_usage) for e in engines]
        order = sorted([*range(start, n), *range(start)], key=load.__getitem__)  # stable: ties rotate
        return tuple(engines[i].engine_id for i in order)
