"""KV-locality routing across engine replicas: a router actor and Ray Serve's RequestRouter.

The router actor runs core's ``ProgramRouter`` around the app's routing
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

Throughput: each process group-commits its calls to the router actor (``group_commit.py``:
at most one ``route_batch`` RPC in flight per actor, the calls that arrive meanwhile go in the
next), so the actor's per-RPC cost is paid once per batch. With ``shards`` > 1 there are that
many router actors and a program's calls go to shard ``crc32(program id) % shards``: each keeps
its programs' pins and prefix index (a program's prefix is its own; a prompt prefix shared
across programs is learnt by every shard). Measured in ``docs/scale.md`` (router actor bench).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import zlib
from typing import Any

import ray
from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

from autellix_ray.core import EngineLoad, ProgramRouter, RouteRequest, make_router
from autellix_ray.core.routing.locality import DEFAULT_SHORT_PROMPT_TOKENS, LocalityRouter
from autellix_ray.core.routing.pins import MAX_PINS, RouterStats
from autellix_ray.core.routing.prefix_index import TEXT_BLOCK_CHARS, text_block_keys
from autellix_ray.serve.group_commit import GroupCommit
from autellix_ray.serve.metrics import count_decisions, router_metrics
from autellix_ray.serve.program_table import NAMESPACE, get_or_create_detached

logger = logging.getLogger(__name__)

ROUTER_NAME = "autellix-router"  # shard 0; shard i > 0 is f"{ROUTER_NAME}-{i}"
ROUTER_TIMEOUT_S = 0.5
MAX_ROUTE_BATCH = 256  # calls per route_batch RPC; more wait for the next one
CHARS_PER_TOKEN = 4  # prompt-length estimate before tokenization
ROUTER_POLICIES = ("autellix", "kv_cost")  # Algorithm 2 (the default), the KV-aware cost router
TEXT_BLOCK_TOKENS = TEXT_BLOCK_CHARS // CHARS_PER_TOKEN  # prompt tokens per text-block key (estimate)


def router_shard_name(shard: int) -> str:
    return ROUTER_NAME if shard == 0 else f"{ROUTER_NAME}-{shard}"


def shard_of(program_id: str | None, shards: int) -> int:
    """The router shard of a program (stable across processes, unlike ``hash``)."""
    return zlib.crc32(program_id.encode()) % shards if program_id and shards > 1 else 0


def route_batch_args(calls: list[tuple]) -> tuple[list, list]:
    """``RouterService.route_batch``'s arguments for (program id, prompt tokens, loads, prefix keys)
    calls: each distinct loads vector is sent once (a batch's calls mostly share one: the same
    process's queue-length cache)."""
    vectors: dict[tuple, int] = {}
    indexed = [(program_id, tokens, vectors.setdefault(tuple(loads), len(vectors)), keys)
               for program_id, tokens, loads, keys in calls]
    return [list(v) for v in vectors], indexed


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
        self._uncounted: dict[str, int] = {}  # decisions by reason since the metric was last updated
        self.router = ProgramRouter(make_router_policy(policy, short_prompt_tokens), max_pins,
                                    on_pin=self._tell_table, on_decision=self._count)

    def route(self, program_id: str, num_prompt_tokens: int, loads: list[tuple[str, int]],
              prefix_blocks: tuple = ()) -> list[str]:
        """Engine ids best first, for ``loads``: (engine id, calls in flight) of every candidate;
        ``prefix_blocks``: the prompt's text-block keys (``kv_cost``)."""
        return self.route_batch([loads], [(program_id, num_prompt_tokens, 0, prefix_blocks)])[0]

    def route_batch(self, loads: list[list[tuple[str, int]]], calls: list[tuple]) -> list[list[str]]:
        """One group-committed RPC: ``calls`` are (program id, prompt tokens, index into ``loads``,
        prefix keys), answered in order. Calls sharing a loads vector see the calls routed before
        them in the batch: the chosen engine counts one call more (no herd onto one engine)."""
        engines_of: dict[int, list[EngineLoad]] = {}
        ranked_all = []
        for program_id, num_prompt_tokens, which, prefix_blocks in calls:
            engines = engines_of.get(which)
            if engines is None:
                engines = engines_of[which] = [EngineLoad(engine_id, num_running=n) for engine_id, n in loads[which]]
            ranked = self.router.route(program_id, num_prompt_tokens, engines, tuple(prefix_blocks),
                                       TEXT_BLOCK_TOKENS).ranked
            for i, e in enumerate(engines):
                if e.engine_id == ranked[0]:
                    engines[i] = EngineLoad(e.engine_id, num_running=e.num_running + 1)
                    break
            ranked_all.append(list(ranked))
        self._flush_decision_counts()
        return ranked_all

    def remove_engine(self, engine_id: str) -> int:
        return self.router.remove_engine(engine_id)

    def pin_of(self, program_id: str) -> str | None:
        return self.router.pin_of(program_id)

    def stats(self) -> RouterStats:
        return self.router.stats()

    def _count(self, reason: str) -> None:
        self._uncounted[reason] = self._uncounted.get(reason, 0) + 1

    def _flush_decision_counts(self) -> None:
        """One metric update per reason per RPC (not per decision: a batch holds hundreds)."""
        count_decisions(self._uncounted)
        self._uncounted = {}

    def _tell_table(self, program_id: str, engine_id: str | None) -> None:
        if self.table is not None:
            self.table.set_pin.remote(program_id, engine_id)  # fire and forget: the table is not on the path


RouterActor = ray.remote(num_cpus=0)(RouterService)


def get_or_create_router(table: Any = None, shard: int = 0, **options: Any):
    """The router actor of ``shard``; ``table``: the program table's handle, told about every pin."""
    return get_or_create_detached(RouterActor, router_shard_name(shard), table=table, **options)


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
                         policy: str = "autellix", shards: int = 1, **kwargs: Any) -> None:
        """``router``: the router actors' handles, one per shard, or shard 0's alone (None: looked
        up by name on first use); ``policy``: the actors' routing policy (``ROUTER_POLICIES``),
        which decides which calls go to them; ``shards``: how many router actors."""
        make_router_policy(policy)  # a bad name fails here, not on the first call
        if shards < 1:
            raise ValueError(f"router shards must be >= 1, got {shards}")
        self._policy = LocalityRouter(short_prompt_tokens)  # local ranking: least used, no pins
        self._kv_cost = policy == "kv_cost"
        handles = router if isinstance(router, list) else [router]
        self._actors = [handles[i] if i < len(handles) else None for i in range(shards)]
        self._groups = [GroupCommit(functools.partial(self._send_routes, i), 0.0, MAX_ROUTE_BATCH,
                                    on_failure=functools.partial(self._forget_actor, i)) for i in range(shards)]
        self.num_fallbacks = 0

    def _asks_actor(self, request: RouteRequest) -> bool:
        if self._kv_cost:
            return request.program_id is not None
        return self._policy.follows_pin(request)

    def _router_actor(self, shard: int = 0):
        if self._actors[shard] is None:
            self._actors[shard] = ray.get_actor(router_shard_name(shard), namespace=NAMESPACE)
        return self._actors[shard]

    async def _send_routes(self, shard: int, calls: list) -> list:
        batch = self._router_actor(shard).route_batch.remote(*route_batch_args(calls))
        return await asyncio.wait_for(batch, ROUTER_TIMEOUT_S)

    def _forget_actor(self, shard: int, error: BaseException) -> None:
        self._actors[shard] = None  # dead or restarting: look it up by name for the next RPC

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
            group = self._groups[shard_of(program_id, len(self._groups))]
            try:
                ranked = await asyncio.wait_for(group.submit((program_id, num_tokens, loads, keys)), ROUTER_TIMEOUT_S)
            except Exception as e:  # noqa: BLE001 - dead, restarting or slow router actor: fall back
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
        for shard in range(len(self._actors)):
            try:
                self._router_actor(shard).remove_engine.remote(replica_id.unique_id)
            except Exception:  # noqa: BLE001 - best effort: its pins also drop on the next call
                logger.warning("could not tell router shard %d that %s died", shard, replica_id)
