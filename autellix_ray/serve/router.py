"""KV-locality routing across engine replicas: a router actor and Ray Serve's RequestRouter.

The router actor (one per cluster) runs core's ``ProgramRouter`` around the app's routing
policy (``ROUTER_POLICIES``: Algorithm 2, ``autellix``, over cluster-wide program -> engine
pins; or the KV-aware cost router, ``kv_cost``, over its per-engine prefix index), so every
process holding a handle sees the same pins; it tells the program table (an injected
handle) about every pin. ``AutellixRequestRouter`` runs inside each of those processes
(Ray Serve's request-router hook):
- a call the actor need not see (no program; under Algorithm 2 also a short prompt,
  <= ``short_prompt_tokens``) is ranked locally over fewest calls in flight (Ray Serve's
  queue-length cache): no RPC, like Algorithm 2's short-prompt branch;
- any other call asks the router actor: under Algorithm 2 the pinned engine first, or a new
  pin on the least-used engine; under ``kv_cost`` the engine with the lowest cost, from the
  prompt's chained text-block keys (``core.text_block_keys``) and the calls in flight;
- if the router actor does not answer within ``ROUTER_TIMEOUT_S`` (dead or restarting),
  the call is ranked locally as if unpinned: routing never blocks on it.
A replica that dies or is removed loses its pins (``on_replica_actor_died``, and on every
call the actor drops pins to engines not in the candidate list).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import ray
from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

from autellix_ray.core import EngineLoad, ProgramRouter, RouteRequest, make_router
from autellix_ray.core.routing.locality import DEFAULT_SHORT_PROMPT_TOKENS, LocalityRouter
from autellix_ray.core.routing.prefix_index import TEXT_BLOCK_CHARS, text_block_keys
from autellix_ray.core.routing.pins import MAX_PINS, RouterStats
from autellix_ray.serve.metrics import count_decision, router_metrics
from autellix_ray.serve.program_table import NAMESPACE, get_or_create_detached

logger = logging.getLogger(__name__)

ROUTER_NAME = "autellix-router"
ROUTER_TIMEOUT_S = 0.5
CHARS_PER_TOKEN = 4  # prompt-length estimate before tokenization
ROUTER_POLICIES = ("autellix", "kv_cost")  # Algorithm 2 (the default), the KV-aware cost router
TEXT_BLOCK_TOKENS = TEXT_BLOCK_CHARS // CHARS_PER_TOKEN  # prompt tokens per text-block key (estimate)


def make_router_policy(policy: str, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS):
    """The router actor's policy by name (``ROUTER_POLICIES``); a bad name raises ValueError."""
    if policy not in ROUTER_POLICIES:
        raise ValueError(f"unknown router policy {policy!r}; valid: {list(ROUTER_POLICIES)}")
    return LocalityRouter(short_prompt_tokens) if policy == "autellix" else make_router(policy)


class RouterService:
    """Core's ``ProgramRouter`` with the app's routing policy, behind the actor's RPC shapes (a plain
    class: tests). ``table``: the program table's actor handle (None: pins stay here)."""

    def __init__(self, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS, max_pins: int = MAX_PINS,
                 table: Any = None, policy: str = "autellix") -> None:
        self.table = table
        self.router = ProgramRouter(make_router_policy(policy, short_prompt_tokens), max_pins,
                                    on_pin=self._tell_table, on_decision=count_decision)

    def route(self, program_id: str, num_prompt_tokens: int, loads: list[tuple[str, int]],
              prefix_blocks: tuple = ()) -> list[str]:
        """Engine ids best first, for ``loads``: (engine id, calls in flight) of every candidate;
        ``prefix_blocks``: the prompt's text-block keys (``kv_cost``)."""
        engines = [EngineLoad(engine_id, num_running=n) for engine_id, n in loads]
        return list(self.router.route(program_id, num_prompt_tokens, engines, tuple(prefix_blocks),
                                      TEXT_BLOCK_TOKENS).ranked)

    def remove_engine(self, engine_id: str) -> int:
        return self.router.remove_engine(engine_id)

    def pin_of(self, program_id: str) -> str | None:
        return self.router.pin_of(program_id)

    def stats(self) -> RouterStats:
        return self.router.stats()

    def _tell_table(self, program_id: str, engine_id: str | None) -> None:
        if self.table is not None:
            self.table.set_pin.remote(program_id, engine_id)  # fire and forget: the table is not on the path


RouterActor = ray.remote(num_cpus=0)(RouterService)


def get_or_create_router(table: Any = None, **options: Any):
    """The router actor; ``table``: the program table's handle, told about every pin."""
    return get_or_create_detached(RouterActor, ROUTER_NAME, table=table, **options)


def call_context(pending_request: PendingRequest | None) -> tuple[str | None, int, Any]:
    """(program id, prompt-token estimate, request body or None) of a call on its way to an LLM replica."""
    if pending_request is None:
        return None, 0, None
    program_id = getattr(pending_request.metadata, "session_id", "") or None
    body = pending_request.args[0] if pending_request.args else None
    if body is None:
        return program_id, 0, None
    program_id = getattr(body, "session_id", None) or program_id
    return program_id, estimate_prompt_tokens(body), body


def prompt_text(body: Any) -> str:
    """The prompt as text, for prefix keys: the completion prompt, or the chat messages in order."""
    prompt = getattr(body, "prompt", None)
    if isinstance(prompt, list):  # token ids
        return " ".join(map(str, prompt))
    if prompt is not None:
        return str(prompt)
    parts = []
    for m in getattr(body, "messages", None) or []:
        role = m.get("role") if isinstance(m, dict) else getattr(m, "role", None)
        content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
        parts.append(f"<{role}>{content if isinstance(content, str) else str(content or '')}")
    return "\n".join(parts)


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

    def initialize_state(self, short_prompt_tokens: int = DEFAULT_SHORT_PROMPT_TOKENS, router: Any = None,
                         policy: str = "autellix", **kwargs: Any) -> None:
        """``router``: the router actor's handle (None: looked up by name on first use); ``policy``:
        the actor's routing policy (``ROUTER_POLICIES``), which decides which calls go to it."""
        make_router_policy(policy)  # a bad name fails here, not on the first call
        self._policy = LocalityRouter(short_prompt_tokens)  # local ranking: least used, no pins
        self._kv_cost = policy == "kv_cost"
        self._actor = router
        self.num_fallbacks = 0

    def _asks_actor(self, request: RouteRequest) -> bool:
        if self._kv_cost:
            return request.program_id is not None
        return self._policy.follows_pin(request)

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
        program_id, num_tokens, body = call_context(pending_request)
        request = RouteRequest(program_id, num_tokens)
        ranked = None
        if self._asks_actor(request):
            keys = text_block_keys(prompt_text(body)) if self._kv_cost and body is not None else ()
            try:
                ranked = await asyncio.wait_for(
                    self._router_actor().route.remote(program_id, num_tokens, loads, keys), ROUTER_TIMEOUT_S
                )
            except Exception as e:  # dead, restarting or slow router actor: fall back
                self._actor = None
                self.num_fallbacks += 1
                router_metrics()["fallbacks"].inc()
                logger.warning("router actor unavailable (%s); ranked as unpinned", type(e).__name__)
        if ranked is None:  # no pins here: the policy ranks as for an unpinned call (least used first)
            ranked = self._policy.route(request, [EngineLoad(rid, num_running=n) for rid, n in loads]).ranked
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
