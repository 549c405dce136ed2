"""KV-locality routing across engine replicas: a router actor and Ray Serve's RequestRouter.

``RouterService`` (a Ray actor, one per cluster) owns the program -> engine pins, so
every process holding a handle sees the same pins. ``AutellixRequestRouter`` runs
inside each of those processes (Ray Serve's request-router hook):
- a call with a short prompt (<= ``short_prompt_tokens``), or with no program, is
  ranked locally by fewest calls in flight (Ray Serve's queue-length cache):
  no RPC, like Algorithm 2's short-prompt branch;
- a long call asks the router actor, which applies Algorithm 2 (the pure core's
  ``LocalityRouter``) atomically: the pinned engine first, or a new pin on the
  least-used engine;
- if the router actor does not answer within ``ROUTER_TIMEOUT_S`` (dead or
  restarting), the call falls back to least-used ranking: routing never blocks
  on it.
A replica that dies or is removed loses its pins (``on_replica_actor_died``, and
on every call the actor drops pins to engines not in the candidate list).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import ray
from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

from autellix_ray.core import EngineLoad, RouteRequest
from autellix_ray.core.routing.base import LeastUsedRanking
from autellix_ray.core.routing.locality import DEFAULT_SHORT_PROMPT_TOKENS, LocalityRouter
from autellix_ray.serve.metrics import router_metrics
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME

logger = logging.getLogger(__name__)

ROUTER_NAME = "autellix-router"
ROUTER_TIMEOUT_S = 0.5
MAX_PINS = 1_000_000
CHARS_PER_TOKEN = 4  # prompt-length estimate before tokenization


class RouterService:
    def __init__(self, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS, max_pins: int = MAX_PINS) -> None:
        self.policy = LocalityRouter(short_prompt_tokens)
        self.pins: OrderedDict[str, str] = OrderedDict()
        self.max_pins = max_pins
        self.decisions: dict[str, int] = {}

    def route(self, program_id: str, num_prompt_tokens: int, loads: list[tuple[str, int]]) -> list[str]:
        engines = [EngineLoad(engine_id, num_running=n) for engine_id, n in loads]
        live = {e.engine_id for e in engines}
        pinned = self.pins.get(program_id)
        if pinned is not None and pinned not in live:
            self._unpin(program_id)
            pinned = None
        decision = self.policy.route(RouteRequest(program_id, num_prompt_tokens, pinned), engines)
        if decision.pin is not None:
            self.pins[program_id] = decision.pin
            self.pins.move_to_end(program_id)
            while len(self.pins) > self.max_pins:
                self.pins.popitem(last=False)
            self._tell_table(program_id, decision.pin)
        self.decisions[decision.reason] = self.decisions.get(decision.reason, 0) + 1
        if ray.is_initialized():
            router_metrics()["decisions"].inc(1, tags={"reason": decision.reason})
        return list(decision.ranked)

    def remove_engine(self, engine_id: str) -> int:
        gone = [p for p, e in self.pins.items() if e == engine_id]
        for program_id in gone:
            self._unpin(program_id)
        return len(gone)

    def pin_of(self, program_id: str) -> str | None:
        return self.pins.get(program_id)

    def stats(self) -> dict[str, Any]:
        return {"num_pins": len(self.pins), "decisions": dict(self.decisions)}

    def _unpin(self, program_id: str) -> None:
        self.pins.pop(program_id, None)
        self._tell_table(program_id, None)

    def _tell_table(self, program_id: str, engine_id: str | None) -> None:
        if not ray.is_initialized():
            return  # a plain RouterService outside Ray (tests)
        try:
            table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
            table.set_pin.remote(program_id, engine_id)
        except ValueError:
            pass  # no program table (routing works without it)


RouterActor = ray.remote(num_cpus=0)(RouterService)


def get_or_create_router(**options: Any):
    return RouterActor.options(
        name=ROUTER_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=3,
    ).remote(**options)


def call_context(pending_request: PendingRequest | None) -> tuple[str | None, int]:
    """(program id, prompt-token estimate) of a call on its way to an LLM replica."""
    if pending_request is None:
        return None, 0
    program_id = getattr(pending_request.metadata, "session_id", "") or None
    body = pending_request.args[0] if pending_request.args else None
    if body is None:
        return program_id, 0
    program_id = getattr(body, "session_id", None) or program_id
    return program_id, estimate_prompt_tokens(body)


def estimate_prompt_tokens(body: Any) -> int:
    prompt = getattr(body, "prompt", None)
    if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
        return len(prompt)
    if prompt is not None:
        return len(str(prompt)) // CHARS_PER_TOKEN
    messages = getattr(body, "messages", None) or []
    chars = 0
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        chars += len(content) if isinstance(content, str) else len(str(content or ""))
    return chars // CHARS_PER_TOKEN


class AutellixRequestRouter(FIFOMixin, RequestRouter):
    """Ray Serve request router for the engine deployment (see the module header)."""

    def initialize_state(self, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS, **kwargs: Any) -> None:
        self.short_prompt_tokens = short_prompt_tokens
        self._ranking = LeastUsedRanking()
        self._actor = None
        self.num_fallbacks = 0

    def _router_actor(self):
        if self._actor is None:
            self._actor = ray.get_actor(ROUTER_NAME, namespace=NAMESPACE)
        return self._actor

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        by_id = {r.replica_id.unique_id: r for r in candidate_replicas}
        loads = [(rid, self._calls_on(r)) for rid, r in by_id.items()]
        program_id, num_tokens = call_context(pending_request)
        ranked = None
        if program_id is not None and num_tokens > getattr(self, "short_prompt_tokens", DEFAULT_SHORT_PROMPT_TOKENS):
            try:
                ranked = await asyncio.wait_for(
                    self._router_actor().route.remote(program_id, num_tokens, loads), ROUTER_TIMEOUT_S
                )
            except Exception as e:  # dead, restarting or slow router actor: fall back
                self._actor = None
                self.num_fallbacks = getattr(self, "num_fallbacks", 0) + 1
                router_metrics()["fallbacks"].inc()
                logger.warning("router actor unavailable (%s); least-used fallback", type(e).__name__)
        if ranked is None:
            ranking = getattr(self, "_ranking", None) or LeastUsedRanking()
            ranked = ranking.rank([EngineLoad(rid, num_running=n) for rid, n in loads])
        return [[by_id[rid]] for rid in ranked if rid in by_id]

    def _calls_on(self, replica: RunningReplica) -> int:
        queue_len = self._replica_queue_len_cache.get(replica.replica_id)
        if queue_len is not None:
            return queue_len
        return int((replica.routing_stats or {}).get("num_calls", 0))

    def on_replica_actor_died(self, replica_id) -> None:
        super().on_replica_actor_died(replica_id)
        try:
            self._router_actor().remove_engine.remote(replica_id.unique_id)
        except Exception:
            logger.warning("could not tell the router actor that %s died", replica_id)
