"""Cluster-wide program -> engine pins around a routing policy (the router service).

Shipped as the Serve tier's router actor (``serve/router.py``) and run by the multi-engine
replay (``bench/replay/engine.py``). Caller's contract: ``route`` with the call's program,
prompt length and every live engine's load; get the policy's ``RouteDecision``. Per call:
1. a pin to an engine missing from ``engines`` (dead or removed) is dropped first;
2. the policy ranks the engines, given the program's pin (Algorithm 2: ``LocalityRouter``);
3. a pin the policy asks for is recorded, most recently used last; past ``max_pins`` the
   least recently pinned program loses its pin.
``remove_engine`` drops every pin to an engine at once. Hooks (injected, default none):
``on_pin(program_id, engine_id or None)`` for every pin set or dropped (the program table
records them), ``on_decision(reason)`` for every decision (metrics).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TypedDict

from autellix_ray.core.routing.base import EngineLoad, RouteDecision, RouteRequest, Router

MAX_PINS = 1_000_000


class RouterStats(TypedDict):
    """``ProgramRouter.stats()``: what the router actor reports to tests and operators."""

    num_pins: int  # programs pinned to an engine now
    decisions: dict[str, int]  # decision reason ("short", "pinned", "new-pin", ...) -> count


class ProgramRouter:
    def __init__(
        self,
        policy: Router,
        max_pins: int = MAX_PINS,
        on_pin: Callable[[str, str | None], None] | None = None,
        on_decision: Callable[[str], None] | None = None,
    ) -> None:
        if max_pins < 1:
            raise ValueError(f"max_pins must be >= 1, got {max_pins!r}")
        self.policy = policy
        self.max_pins = max_pins
        self.on_pin = on_pin
        self.on_decision = on_decision
        self.pins: OrderedDict[str, str] = OrderedDict()  # program id -> engine id, oldest pin first
        self.decisions: dict[str, int] = {}

    def route(self, program_id: str | None, num_prompt_tokens: int, engines: Sequence[EngineLoad],
              prefix_blocks: tuple = (), block_tokens: int = 16) -> RouteDecision:
        """``prefix_blocks``: the prompt's chained block keys, for cache-aware policies (``kv_cost``)."""
        pinned = None if program_id is None else self.pins.get(program_id)
        if pinned is not None and all(e.engine_id != pinned for e in engines):
            self._unpin(program_id)
            pinned = None
        decision = self.policy.route(
            RouteRequest(program_id, num_prompt_tokens, pinned, prefix_blocks, block_tokens), engines)
        if decision.pin is not None and program_id is not None:
            self.pins[program_id] = decision.pin
            self.pins.move_to_end(program_id)
            while len(self.pins) > self.max_pins:
                self.pins.popitem(last=False)
            if self.on_pin is not None:
                self.on_pin(program_id, decision.pin)
        self.decisions[decision.reason] = self.decisions.get(decision.reason, 0) + 1
        if self.on_decision is not None:
            self.on_decision(decision.reason)
        return decision

    def remove_engine(self, engine_id: str) -> int:
        """Drop every pin to ``engine_id`` (and what the policy knows of it); returns how many."""
        self.policy.forget_engine(engine_id)
        gone = [p for p, e in self.pins.items() if e == engine_id]
        for program_id in gone:
            self._unpin(program_id)
        return len(gone)

    def pin_of(self, program_id: str) -> str | None:
        return self.pins.get(program_id)

    def stats(self) -> RouterStats:
        return {"num_pins": len(self.pins), "decisions": dict(self.decisions)}

    def _unpin(self, program_id: str) -> None:
        self.pins.pop(program_id, None)
        if self.on_pin is not None:
            self.on_pin(program_id, None)
