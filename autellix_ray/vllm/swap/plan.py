"""The scheduler side of swap preemption: which calls to swap out, into which host entries, and
which entries to load back, against a bounded host pool. No tensors (the worker does the copies).

``SwapPlanner`` follows vLLM's connector hooks in the scheduler process (see the package doc)
and queues each step's work in a ``SwapPlan`` (frees, swap-outs, swap-ins, the order the worker
runs them). ``SwapPool`` admits and evicts host entries by bytes and priority. Requests,
scheduler outputs and block lists are duck-typed (vLLM's ``Request``, ``SchedulerOutput``,
``KVCacheBlocks``), so this module imports neither vLLM nor torch and is unit-tested alone.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from autellix_ray.vllm.swap.settings import SWAP_REPORT_KEY, SwapSettings

if TYPE_CHECKING:
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.request import Request

logger = logging.getLogger(__name__)

LAST = (math.inf,)  # the priority key of an unknown call: ranks after every known one


# -- messages from the scheduler to the worker ----------------------------------------
@dataclass
class SwapOut:
    entry_id: int
    block_ids: list[int]  # the victim's blocks, in token order
    num_tokens: int


@dataclass
class SwapIn:
    entry_id: int  # -1: no entry; the worker reports block_ids as failed loads
    first_block: int  # index, in the entry, of the first block to load
    block_ids: list[int]  # destination blocks for entry blocks first_block, first_block + 1, ...


@dataclass
class SwapPlan:
    """One step's work, in the order the worker runs it: frees, swap-outs, swap-ins."""

    frees: list[int] = field(default_factory=list)
    swap_outs: list[SwapOut] = field(default_factory=list)
    swap_ins: list[SwapIn] = field(default_factory=list)


@dataclass
class WorkerPoolStats:
    """What the worker's pool holds after a step (max over workers for bytes/entries)."""

    pool_bytes: int = 0
    pool_entries: int = 0
    peak_bytes: int = 0
    swap_out_s: float = 0.0  # cumulative, engine lifetime
    swap_in_s: float = 0.0
    swap_out_bytes: int = 0
    swap_in_bytes: int = 0
    num_load_errors: int = 0

    def aggregate(self, other: WorkerPoolStats) -> WorkerPoolStats:
        assert isinstance(other, WorkerPoolStats)
        merged = {k: max(v, getattr(other, k)) for k, v in asdict(self).items()}
        merged["num_load_errors"] = self.num_load_errors + other.num_load_errors
        return type(self)(**merged)


# -- counters -------------------------------------------------------------------------
@dataclass
class SwapCounts:
    """Swaps and skipped preemptions: per call (``CallSwapStats``) or for the whole engine
    (``PoolCounters``). Tokens are the swapped context lengths."""

    num_swap_outs: int = 0
    num_swap_ins: int = 0
    swapped_out_tokens: int = 0
    swapped_in_tokens: int = 0
    num_skipped_short: int = 0  # preemptions under min_swap_tokens (recomputed)

    def count_swap_out(self, num_tokens: int) -> None:
        self.num_swap_outs += 1
        self.swapped_out_tokens += num_tokens

    def count_swap_in(self, num_tokens: int) -> None:
        self.num_swap_ins += 1
        self.swapped_in_tokens += num_tokens


@dataclass
class CallSwapStats(SwapCounts):
    """Per-call counters, reported in the call's final kv_transfer_params."""

    num_dropped: int = 0  # entries evicted, or refused for lack of room


@dataclass
class PoolCounters(SwapCounts):
    """Engine-lifetime counters of the scheduler-side pool accounting."""

    capacity_bytes: int = 0
    used_bytes: int = 0
    peak_bytes: int = 0
    entries: int = 0
    num_evicted: int = 0
    num_refused: int = 0
    num_freed_on_finish: int = 0  # the call finished or was aborted while swapped out
    num_freed_unused: int = 0  # resumed without needing the entry (prefix-cache hits)


# -- the host pool, by bytes ----------------------------------------------------------
@dataclass
class PoolEntry:
    entry_id: int
    req_id: str
    num_tokens: int
    num_blocks: int
    nbytes: int
    pinned: bool = False  # promised to a load in the step being scheduled
    loading: bool = False


class SwapPool:
    """Admission and eviction of host entries, by bytes (no tensors: the scheduler's view)."""

    def __init__(self, capacity_bytes: int, priority_key: Callable[[str], Any]) -> None:
        self.capacity_bytes = capacity_bytes
        self.priority_key = priority_key  # smaller = more important
        self.entries: dict[str, PoolEntry] = {}  # req_id -> entry
        self.used_bytes = 0
        self.peak_bytes = 0
        self._ids = itertools.count(1)

    def __contains__(self, req_id: object) -> bool:
        return req_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, req_id: str) -> PoolEntry | None:
        return self.entries.get(req_id)

    def _key(self, req_id: str) -> Any:
        try:
            return self.priority_key(req_id)
        except Exception:  # noqa: BLE001 - an unknown call ranks last, never fails the engine
            return LAST

    def admit(
        self, req_id: str, num_tokens: int, num_blocks: int, nbytes: int
    ) -> tuple[PoolEntry | None, list[PoolEntry]]:
        """Make room for a new entry by dropping lower-priority ones.

        Returns (the entry or None if refused, the entries evicted). A refused newcomer
        evicts nothing: eviction only happens for a call that outranks the evicted ones.
        """
        assert req_id not in self.entries
        if nbytes > self.capacity_bytes:
            return None, []
        need = self.used_bytes + nbytes - self.capacity_bytes
        victims: list[PoolEntry] = []
        if need > 0:
            new_key = self._key(req_id)
            # worst first; ties: the newer entry goes first
            candidates = sorted(
                (e for e in self.entries.values() if not e.pinned),
                key=lambda e: (self._key(e.req_id), e.entry_id),
                reverse=True,
            )
            freed = 0
            for entry in candidates:
                if freed >= need:
                    break
                if not (self._key(entry.req_id) > new_key):
                    return None, []  # the newcomer ranks last among what would have to go
                victims.append(entry)
                freed += entry.nbytes
            if freed < need:
                return None, []
        for victim in victims:
            self.remove(victim.req_id)
        entry = PoolEntry(next(self._ids), req_id, num_tokens, num_blocks, nbytes)
        self.entries[req_id] = entry
        self.used_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)
        return entry, victims

    def remove(self, req_id: str) -> PoolEntry | None:
        entry = self.entries.pop(req_id, None)
        if entry is not None:
            self.used_bytes -= entry.nbytes
        return entry


# -- the planner ----------------------------------------------------------------------
@dataclass
class TrackedCall:
    """A live call as the scheduler last scheduled it."""

    request: Request
    block_ids: list[int] = field(default_factory=list)
    num_computed: int = 0  # tokens with KV once the last scheduled step has run
    num_preemptions: int = 0  # request.num_preemptions when last tracked


class SwapPlanner:
    """The connector's scheduler side: tracks block tables, plans swap-outs at preemption
    and swap-ins at resume, keeps the pool within its bound.

    ``bytes_per_block``: host bytes of one block over all layers; ``enabled=False`` plans
    nothing (every preempted call recomputes). ``plan_type`` is the ``SwapPlan`` class
    whose instances ``build_connector_meta`` returns (the connector's vLLM metadata type).
    """

    plan_type: type[SwapPlan] = SwapPlan

    def __init__(self, settings: SwapSettings, block_size: int, bytes_per_block: int, enabled: bool = True) -> None:
        self.settings = settings
        self.block_size = block_size
        self.bytes_per_block = bytes_per_block
        self.enabled = enabled
        self.pool = SwapPool(settings.pool_bytes, self._vllm_priority)
        self.counters = PoolCounters(capacity_bytes=settings.pool_bytes)
        self.tracked: dict[str, TrackedCall] = {}
        self.stats: dict[str, CallSwapStats] = {}
        self.pending = self.plan_type()  # work decided before the next build
        self.worker = WorkerPoolStats()  # the worker's last report

    def _vllm_priority(self, req_id: str) -> Any:
        tracked = self.tracked.get(req_id)
        if tracked is None:
            return LAST
        return (tracked.request.priority, tracked.request.arrival_time)

    def set_priority_key(self, key: Callable[[str], Any] | None) -> None:
        """Eviction order: ``key(request_id)``, smaller = more important (None: vLLM's)."""
        self.pool.priority_key = key if key is not None else self._vllm_priority

    # -- lifecycle ---------------------------------------------------------
    def on_new_request(self, request: Request) -> None:
        self.tracked.setdefault(request.request_id, TrackedCall(request))
        self.stats.setdefault(request.request_id, CallSwapStats())

    def request_finished(self, request: Request) -> dict[str, Any]:
        rid = request.request_id
        self._free_entry(rid)
        self.tracked.pop(rid, None)
        stats = self.stats.pop(rid, None) or CallSwapStats()
        return {SWAP_REPORT_KEY: {**asdict(stats), "pool": self.pool_report()}}

    def pool_report(self) -> dict[str, Any]:
        c = self.counters
        c.used_bytes, c.peak_bytes, c.entries = self.pool.used_bytes, self.pool.peak_bytes, len(self.pool)
        return {**asdict(c), "worker": asdict(self.worker)}

    def clear_pool(self) -> None:
        """A fresh, empty pool with the same bound and priority key (engine shutdown)."""
        self.pool = SwapPool(self.settings.pool_bytes, self.pool.priority_key)

    # -- preemption -> swap-out --------------------------------------------
    def _maybe_save(self, rid: str) -> None:
        """Plan the swap-out of a call preempted since it was last tracked (idempotent)."""
        tracked = self.tracked.get(rid)
        if tracked is None or rid in self.pool:
            return
        request = tracked.request
        if request.num_preemptions <= tracked.num_preemptions:
            return  # not preempted since its last scheduled step (or already handled)
        tracked.num_preemptions = request.num_preemptions
        num_tokens = min(tracked.num_computed, max(0, request.num_tokens - 1))
        blocks = tracked.block_ids[: -(-num_tokens // self.block_size)] if num_tokens else []
        tracked.block_ids, tracked.num_computed = [], 0
        if not self.enabled or num_tokens == 0 or len(blocks) * self.block_size < num_tokens:
            return
        stats = self.stats.setdefault(rid, CallSwapStats())
        if num_tokens < self.settings.min_swap_tokens:
            stats.num_skipped_short += 1
            self.counters.num_skipped_short += 1
            return
        entry, evicted = self.pool.admit(rid, num_tokens, len(blocks), len(blocks) * self.bytes_per_block)
        for victim in evicted:
            self._drop(victim, evicted=True)
        if entry is None:
            stats.num_dropped += 1
            self.counters.num_refused += 1
            return
        self.pending.swap_outs.append(SwapOut(entry.entry_id, list(blocks), num_tokens))
        stats.count_swap_out(num_tokens)
        self.counters.count_swap_out(num_tokens)

    def _drop(self, entry: PoolEntry, *, evicted: bool) -> None:
        self.pending.frees.append(entry.entry_id)
        if evicted:
            self.counters.num_evicted += 1
            stats = self.stats.get(entry.req_id)
            if stats is not None:
                stats.num_dropped += 1

    def _free_entry(self, rid: str) -> None:
        entry = self.pool.remove(rid)
        if entry is not None:
            self._drop(entry, evicted=False)
            self.counters.num_freed_on_finish += 1

    # -- resume -> swap-in ------------------------------------------------
    def get_num_new_matched_tokens(self, request: Request, num_computed_tokens: int) -> int:
        rid = request.request_id
        self._maybe_save(rid)  # preempted and re-admitted in one schedule() call
        entry = self.pool.get(rid)
        if entry is None or entry.loading:
            return 0
        # leave at least one token to compute (vLLM must run a forward to sample)
        limit = min(entry.num_tokens, request.num_tokens - 1)
        if num_computed_tokens % self.block_size or num_computed_tokens >= limit:
            return 0
        entry.pinned = True  # not evictable until this step's metadata is built
        return limit - num_computed_tokens

    def update_state_after_alloc(
        self, request: Request, blocks: KVCacheBlocks, num_external_tokens: int
    ) -> None:
        rid = request.request_id
        entry = self.pool.get(rid)
        if entry is None or num_external_tokens <= 0 or entry.loading:
            return
        end = min(entry.num_tokens, request.num_tokens - 1)
        start = end - num_external_tokens  # the local (prefix-cache) hit, block-aligned
        first = start // self.block_size
        last = -(-end // self.block_size)
        block_ids = blocks.get_block_ids()[0]
        if start < 0 or start % self.block_size or last > len(block_ids) or last > entry.num_blocks:
            # cannot happen with vLLM 0.32's scheduler; if it does, vLLM already counts these
            # tokens as computed: make the worker report the blocks as failed loads so vLLM
            # recomputes them (kv_load_failure_policy="recompute") instead of using garbage
            logger.error(
                "swap connector: inconsistent load for %s (tokens %d..%d); recomputing", rid, start, end
            )
            failed = list(block_ids[max(0, first) : min(last, len(block_ids))])
            self.pending.swap_ins.append(SwapIn(-1, 0, failed))
            return
        entry.loading = True
        self.pending.swap_ins.append(SwapIn(entry.entry_id, first, list(block_ids[first:last])))
        self.stats.setdefault(rid, CallSwapStats()).count_swap_in(num_external_tokens)
        self.counters.count_swap_in(num_external_tokens)

    # -- per step ---------------------------------------------------------
    def build_connector_meta(self, out: SchedulerOutput) -> SwapPlan:
        # 1. victims of this step (their tracked blocks are from before it)
        for rid in out.preempted_req_ids or ():
            self._maybe_save(rid)
        # 2. block tables of the calls scheduled this step
        num_scheduled = out.num_scheduled_tokens
        for new in out.scheduled_new_reqs:
            self._track(
                new.req_id,
                list(new.block_ids[0]) if new.block_ids else [],
                new.num_computed_tokens,
                num_scheduled,
                replace=True,
            )
        cached = out.scheduled_cached_reqs
        resumed = cached.resumed_req_ids
        for i, rid in enumerate(cached.req_ids):
            new_ids = cached.new_block_ids[i]
            blocks = list(new_ids[0]) if new_ids else []
            self._track(rid, blocks, cached.num_computed_tokens[i], num_scheduled, replace=rid in resumed)
        # 3. entries: loaded this step -> released; unused by a resumed call -> freed
        meta, self.pending = self.pending, self.plan_type()
        for rid in list(num_scheduled):
            entry = self.pool.get(rid)
            if entry is None:
                continue
            if not entry.loading:
                self.counters.num_freed_unused += 1
            self.pool.remove(rid)
            if not entry.loading:
                meta.frees.append(entry.entry_id)
        for entry in self.pool.entries.values():
            entry.pinned = False
        # An entry saved and dropped in the same step: the worker frees before it saves,
        # so cancel both instead of leaving an orphan buffer.
        cancelled = {op.entry_id for op in meta.swap_outs} & set(meta.frees)
        if cancelled:
            meta.swap_outs = [op for op in meta.swap_outs if op.entry_id not in cancelled]
            meta.frees = [e for e in meta.frees if e not in cancelled]
        return meta

    def _track(
        self, rid: str, blocks: list[int], num_computed: int, num_scheduled: dict[str, int], *, replace: bool
    ) -> None:
        tracked = self.tracked.get(rid)
        if tracked is None:
            return
        if replace:
            tracked.block_ids = blocks
        else:
            tracked.block_ids.extend(blocks)
        tracked.num_computed = num_computed + num_scheduled.get(rid, 0)
        tracked.num_preemptions = tracked.request.num_preemptions

    def reset(self) -> None:
        """Forget all entries; calls preempted so far recompute (e.g. after a weight update)."""
        for rid in list(self.pool.entries):
            self._free_entry(rid)
        for tracked in self.tracked.values():
            tracked.num_preemptions = tracked.request.num_preemptions
            tracked.block_ids, tracked.num_computed = [], 0
        self.pending.swap_outs.clear()

    def update_connector_output(self, worker_meta: Any) -> None:
        if isinstance(worker_meta, WorkerPoolStats):
            self.worker = worker_meta
