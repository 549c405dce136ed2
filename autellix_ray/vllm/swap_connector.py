"""Swap preemption for vLLM 0.32: keep a preempted call's KV in a bounded host pool.

vLLM V1 preempts by recompute: the victim's blocks go back to the pool and, when the
call resumes, its whole context is prefilled again (minus prefix-cache hits that
survived). Autellix preempts often, so this connector keeps the victim's KV instead:

    kv_transfer_config={
        "kv_connector": "AutellixSwapConnector",
        "kv_connector_module_path": "autellix_ray.vllm.swap_connector",
        "kv_role": "kv_both",
        "kv_connector_extra_config": {"pool_bytes": 1 << 30, "min_swap_tokens": 16},
    }

(``swap_kv_transfer_config(...)`` builds that dict and validates the settings.)

How it works, on vLLM's own connector hooks (nothing in vLLM is patched):

1. Tracking (scheduler process). ``build_connector_meta`` sees every step's
   ``SchedulerOutput``: it keeps each live call's block table (group 0) and how many
   tokens will have KV once the step has run. No scheduler hook is needed, so the
   connector works under stock vLLM schedulers too.
2. Swap-out. A preempted call shows up in ``SchedulerOutput.preempted_req_ids``
   (``Scheduler._preempt_request`` adds it) in the step that preempts it. Its blocks
   are already back in the free pool and may be handed to another call in that very
   step, but nothing writes them before the worker's ``execute_model`` runs
   ``connector.handle_preemptions(metadata)``, its first statement
   (``v1/worker/gpu_model_runner.py``, inherited by ``CPUModelRunner``), ahead of
   new-block zeroing (``_update_states``), copy-on-write copies and the forward pass.
   The worker gathers all the victim's blocks, every layer, into ONE contiguous host
   buffer with ``autellix_ray.kernels`` (``swap_out``; ``triton_swap_out`` on GPUs).
3. Resume. When vLLM re-admits the call, ``get_num_new_matched_tokens`` reports the
   swapped tokens beyond the local prefix-cache hit; vLLM allocates blocks for them
   and marks the step ``has_sync_kv_loads``, so the worker's ``start_load_kv`` runs
   before the forward (after zeroing) and scatters the buffer into the new blocks
   (``swap_in``). The host entry is released right after. vLLM counts loaded tokens
   as computed: the call continues with zero recomputed prompt tokens.
4. Bounded pool. Admission is decided in the scheduler process against
   ``pool_bytes``: when a new victim does not fit, the lowest-priority entries are
   dropped (those calls fall back to recompute), possibly the newcomer itself.
   Priority is vLLM's ``(request.priority, arrival_time)`` unless a scheduler hands
   the connector a key with ``set_priority_key`` (the Autellix scheduler: its
   program-level queue key). Entries being loaded in the current step are pinned.
   The worker double-checks the bound, and a load that finds no buffer is reported
   through ``get_block_ids_with_load_errors`` so vLLM recomputes instead.
5. Cost rule. Calls with fewer than ``min_swap_tokens`` computed tokens are not
   swapped (recompute is cheaper than a transfer for very short contexts); set 0 to
   swap everything.
6. Lifetime. A finished or aborted call's entry is dropped in ``request_finished``
   and freed by the worker in the next step (vLLM runs one more step to deliver
   ``finished_req_ids``); ``shutdown`` clears the pool.

Each call's final ``kv_transfer_params["autellix_swap"]`` reports its swap counters
and the pool's state (bytes, peak, entries, as accounted by the scheduler and as
measured in the worker). The Autellix scheduler adds its own ``"autellix"`` report
(``num_recomputed_tokens`` counts swapped-in tokens as not recomputed).

Limits: one KV cache group of attention layers whose block index is the first
dimension (vLLM 0.32 dense/GQA models; hybrid models disable swapping with a
warning); synchronous loads (the transfer sits on the step's critical path; on GPUs
a copy stream could overlap it); with speculative decoding the tracked token count
may include rejected drafts, so it is capped at the call's known tokens.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
    KVConnectorWorkerMetadata,
)
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.kv_cache_interface import AttentionSpec

from autellix_ray import kernels
from autellix_ray.kernels.swap import layer_list

if TYPE_CHECKING:
    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.attention.backend import AttentionMetadata
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

logger = logging.getLogger(__name__)

CONNECTOR_NAME = "AutellixSwapConnector"
MODULE_PATH = "autellix_ray.vllm.swap_connector"
REPORT_KEY = "autellix_swap"
DEFAULT_POOL_BYTES = 1 << 30
DEFAULT_MIN_SWAP_TOKENS = 16
KERNELS = ("auto", "torch", "triton")


# -- settings -----------------------------------------------------------------


@dataclass(frozen=True)
class SwapSettings:
    """``kv_connector_extra_config`` of the swap connector (validated at engine start)."""

    pool_bytes: int = DEFAULT_POOL_BYTES  # host pool bound, per worker
    min_swap_tokens: int = DEFAULT_MIN_SWAP_TOKENS  # shorter contexts are recomputed
    kernel: str = "auto"  # auto: Triton kernel on CUDA when usable, else torch

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> SwapSettings:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"pool_bytes", "min_swap_tokens", "kernel"})
        if unknown:
            raise ValueError(f"unknown swap connector setting(s) {unknown}")
        settings = cls(**raw)
        for name in ("pool_bytes", "min_swap_tokens"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if settings.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {settings.kernel!r}")
        return settings


def swap_kv_transfer_config(
    pool_bytes: int = DEFAULT_POOL_BYTES, min_swap_tokens: int = DEFAULT_MIN_SWAP_TOKENS, kernel: str = "auto"
) -> dict[str, Any]:
    """The ``kv_transfer_config`` engine argument that turns swap preemption on."""
    settings = SwapSettings.from_mapping(
        {"pool_bytes": pool_bytes, "min_swap_tokens": min_swap_tokens, "kernel": kernel}
    )
    return {
        "kv_connector": CONNECTOR_NAME,
        "kv_connector_module_path": MODULE_PATH,
        "kv_role": "kv_both",
        "kv_load_failure_policy": "recompute",  # a lost host entry means recompute, not an error
        "kv_connector_extra_config": asdict(settings),
    }


# -- messages between the scheduler and the worker connector ------------------


@dataclass
class SwapOut:
    entry_id: int
    block_ids: list[int]  # the victim's blocks, in token order
    num_tokens: int


@dataclass
class SwapIn:
    entry_id: int
    first_block: int  # index, in the entry, of the first block to load
    block_ids: list[int]  # destination blocks for entry blocks first_block, first_block + 1, ...


@dataclass
class SwapConnectorMetadata(KVConnectorMetadata):
    """One step's work, in the order the worker runs it: frees, swap-outs, swap-ins."""

    frees: list[int] = field(default_factory=list)
    swap_outs: list[SwapOut] = field(default_factory=list)
    swap_ins: list[SwapIn] = field(default_factory=list)


@dataclass
class SwapWorkerMetadata(KVConnectorWorkerMetadata):
    """What the worker's pool holds after a step (max over workers for bytes/entries)."""

    pool_bytes: int = 0
    pool_entries: int = 0
    peak_bytes: int = 0
    swap_out_s: float = 0.0  # cumulative, engine lifetime
    swap_in_s: float = 0.0
    swap_out_bytes: int = 0
    swap_in_bytes: int = 0
    num_load_errors: int = 0

    def aggregate(self, other: KVConnectorWorkerMetadata) -> KVConnectorWorkerMetadata:
        assert isinstance(other, SwapWorkerMetadata)
        return SwapWorkerMetadata(
            pool_bytes=max(self.pool_bytes, other.pool_bytes),
            pool_entries=max(self.pool_entries, other.pool_entries),
            peak_bytes=max(self.peak_bytes, other.peak_bytes),
            swap_out_s=max(self.swap_out_s, other.swap_out_s),
            swap_in_s=max(self.swap_in_s, other.swap_in_s),
            swap_out_bytes=max(self.swap_out_bytes, other.swap_out_bytes),
            swap_in_bytes=max(self.swap_in_bytes, other.swap_in_bytes),
            num_load_errors=self.num_load_errors + other.num_load_errors,
        )


# -- scheduler side -------------------------------------------------------------


@dataclass
class _Tracked:
    """A live call as the scheduler last scheduled it."""

    request: Request
    block_ids: list[int] = field(default_factory=list)
    num_computed: int = 0  # tokens with KV once the last scheduled step has run
    num_preemptions: int = 0  # request.num_preemptions when last tracked


@dataclass
class _Entry:
    entry_id: int
    req_id: str
    num_tokens: int
    num_blocks: int
    nbytes: int
    pinned: bool = False  # promised to a load in the step being scheduled
    loading: bool = False


@dataclass
class CallSwapStats:
    """Per-call counters, reported in the call's final kv_transfer_params."""

    num_swap_outs: int = 0
    num_swap_ins: int = 0
    swapped_out_tokens: int = 0
    swapped_in_tokens: int = 0
    num_dropped: int = 0  # entries evicted, or refused for lack of room
    num_skipped_short: int = 0  # preemptions under min_swap_tokens (recomputed)


@dataclass
class PoolCounters:
    """Engine-lifetime counters of the scheduler-side pool accounting."""

    capacity_bytes: int = 0
    used_bytes: int = 0
    peak_bytes: int = 0
    entries: int = 0
    num_swap_outs: int = 0
    num_swap_ins: int = 0
    num_evicted: int = 0
    num_refused: int = 0
    num_skipped_short: int = 0
    num_freed_on_finish: int = 0  # the call finished or was aborted while swapped out
    num_freed_unused: int = 0  # resumed without needing the entry (prefix-cache hits)
    swapped_out_tokens: int = 0
    swapped_in_tokens: int = 0


class SwapPool:
    """Admission and eviction of host entries, by bytes (no tensors: the scheduler's view)."""

    def __init__(self, capacity_bytes: int, priority_key: Callable[[str], Any]) -> None:
        self.capacity_bytes = capacity_bytes
        self.priority_key = priority_key  # smaller = more important
        self.entries: dict[str, _Entry] = {}  # req_id -> entry
        self.used_bytes = 0
        self.peak_bytes = 0
        self._ids = itertools.count(1)

    def __contains__(self, req_id: object) -> bool:
        return req_id in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, req_id: str) -> _Entry | None:
        return self.entries.get(req_id)

    def _key(self, req_id: str) -> Any:
        try:
            return self.priority_key(req_id)
        except Exception:  # noqa: BLE001 - an unknown call ranks last, never fails the engine
            return (math.inf,)

    def admit(
        self, req_id: str, num_tokens: int, num_blocks: int, nbytes: int
    ) -> tuple[_Entry | None, list[_Entry]]:
        """Make room for a new entry by dropping lower-priority ones.

        Returns (the entry or None if refused, the entries evicted). A refused newcomer
        evicts nothing: eviction only happens for a call that outranks the evicted ones.
        """
        assert req_id not in self.entries
        if nbytes > self.capacity_bytes:
            return None, []
        need = self.used_bytes + nbytes - self.capacity_bytes
        victims: list[_Entry] = []
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
        entry = _Entry(next(self._ids), req_id, num_tokens, num_blocks, nbytes)
        self.entries[req_id] = entry
        self.used_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.used_bytes)
        return entry, victims

    def remove(self, req_id: str) -> _Entry | None:
        entry = self.entries.pop(req_id, None)
        if entry is not None:
            self.used_bytes -= entry.nbytes
        return entry


class _SchedulerSide:
    def __init__(self, settings: SwapSettings, kv_cache_config: KVCacheConfig, block_size: int) -> None:
        self.settings = settings
        self.block_size = block_size
        self.enabled, self.bytes_per_block, reason = _swap_geometry(kv_cache_config)
        if not self.enabled:
            logger.warning("Autellix swap connector disabled (calls recompute on preemption): %s", reason)
        self.default_priority = True
        self.pool = SwapPool(settings.pool_bytes, self._vllm_priority)
        self.counters = PoolCounters(capacity_bytes=settings.pool_bytes)
        self.tracked: dict[str, _Tracked] = {}
        self.stats: dict[str, CallSwapStats] = {}
        self.pending = SwapConnectorMetadata()  # work decided before the next build
        self.worker = SwapWorkerMetadata()
        logger.info(
            "Autellix swap connector: pool_bytes=%d min_swap_tokens=%d bytes_per_block=%d kernel=%s",
            settings.pool_bytes,
            settings.min_swap_tokens,
            self.bytes_per_block,
            settings.kernel,
        )

    def _vllm_priority(self, req_id: str) -> Any:
        tracked = self.tracked.get(req_id)
        if tracked is None:
            return (math.inf,)
        return (tracked.request.priority, tracked.request.arrival_time)

    # -- lifecycle ---------------------------------------------------------
    def on_new_request(self, request: Request) -> None:
        self.tracked.setdefault(request.request_id, _Tracked(request))
        self.stats.setdefault(request.request_id, CallSwapStats())

    def request_finished(self, request: Request) -> dict[str, Any]:
        rid = request.request_id
        self._free_entry(rid)
        self.tracked.pop(rid, None)
        stats = self.stats.pop(rid, None) or CallSwapStats()
        return {REPORT_KEY: {**asdict(stats), "pool": self.pool_report()}}

    def pool_report(self) -> dict[str, Any]:
        c = self.counters
        c.used_bytes, c.peak_bytes, c.entries = self.pool.used_bytes, self.pool.peak_bytes, len(self.pool)
        return {**asdict(c), "worker": asdict(self.worker)}

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
        stats.num_swap_outs += 1
        stats.swapped_out_tokens += num_tokens
        self.counters.num_swap_outs += 1
        self.counters.swapped_out_tokens += num_tokens

    def _drop(self, entry: _Entry, *, evicted: bool) -> None:
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
        stats = self.stats.setdefault(rid, CallSwapStats())
        stats.num_swap_ins += 1
        stats.swapped_in_tokens += num_external_tokens
        self.counters.num_swap_ins += 1
        self.counters.swapped_in_tokens += num_external_tokens

    # -- per step ---------------------------------------------------------
    def build_connector_meta(self, out: SchedulerOutput) -> SwapConnectorMetadata:
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
        meta, self.pending = self.pending, SwapConnectorMetadata()
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

    def update_connector_output(self, worker_meta: KVConnectorWorkerMetadata | None) -> None:
        if isinstance(worker_meta, SwapWorkerMetadata):
            self.worker = worker_meta


def _swap_geometry(kv_cache_config: KVCacheConfig) -> tuple[bool, int, str]:
    """(enabled, host bytes per block for all layers, why disabled)."""
    groups = kv_cache_config.kv_cache_groups
    if len(groups) != 1:
        return False, 0, f"{len(groups)} KV cache groups (hybrid model); only one is supported"
    spec = groups[0].kv_cache_spec
    if not isinstance(spec, AttentionSpec):
        return False, 0, f"KV cache spec {type(spec).__name__} is not an attention spec"
    per_layer = (
        spec.block_size * spec.num_kv_heads * (spec.head_size + spec.head_size_v) * spec.dtype.itemsize
    )
    return True, per_layer * len(groups[0].layer_names), ""


# -- worker side -------------------------------------------------------------------


class _WorkerSide:
    def __init__(self, settings: SwapSettings, kv_cache_config: KVCacheConfig) -> None:
        self.settings = settings
        self.num_blocks = kv_cache_config.num_blocks
        self.layers: list[torch.Tensor] = []
        self.pool: dict[int, torch.Tensor] = {}
        self.pool_bytes = 0
        self.peak_bytes = 0
        self.swap_out_s = 0.0
        self.swap_in_s = 0.0
        self.swap_out_bytes = 0
        self.swap_in_bytes = 0
        self.load_errors: set[int] = set()
        self.num_load_errors = 0
        self._out = self._in = None

    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        from vllm.v1.kv_cache_interface import group_kernel_blocks

        layers = layer_list([group_kernel_blocks(t, self.num_blocks) for t in kv_caches.values()])
        self.layers = layers
        on_cuda = layers[0].is_cuda
        use_triton = self.settings.kernel == "triton" or (
            self.settings.kernel == "auto" and on_cuda and kernels.triton_usable(layers[0])
        )
        if use_triton:
            self._out, self._in = kernels.triton_swap_out, kernels.triton_swap_in
        else:
            self._out, self._in = kernels.swap_out, kernels.swap_in
        # first-use costs of the copy kernels (about a second here) at start, not at the
        # first preemption: gather block 0 and write the same bytes back (KV is unused yet)
        warm = self._out(layers, [0])
        self._in(layers, [0], warm)
        logger.info(
            "Autellix swap worker: %d layers, block shape %s %s, %d bytes per block, %s kernel",
            len(layers),
            tuple(layers[0].shape[1:]),
            layers[0].dtype,
            kernels.swap_nbytes(layers, 1),
            "triton" if use_triton else "torch",
        )

    def handle_preemptions(self, meta: SwapConnectorMetadata) -> None:
        for entry_id in meta.frees:
            self._release(entry_id)
        if not meta.swap_outs:
            return
        start = time.perf_counter()
        for op in meta.swap_outs:
            nbytes = kernels.swap_nbytes(self.layers, len(op.block_ids))
            if self.pool_bytes + nbytes > self.settings.pool_bytes:
                logger.error("swap worker: entry %d would exceed the pool bound; not saved", op.entry_id)
                continue  # its load will report errors and vLLM recomputes
            self.pool[op.entry_id] = self._out(self.layers, op.block_ids)
            self.pool_bytes += nbytes
            self.swap_out_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.pool_bytes)
        self.swap_out_s += time.perf_counter() - start

    def start_load_kv(self, meta: SwapConnectorMetadata) -> None:
        if not meta.swap_ins:
            return
        start = time.perf_counter()
        for op in meta.swap_ins:
            buffer = self.pool.get(op.entry_id)
            n = len(op.block_ids)
            if buffer is None or op.first_block + n > buffer.shape[1]:
                self.load_errors.update(op.block_ids)
                self.num_load_errors += 1
                continue
            self._in(self.layers, op.block_ids, buffer[:, op.first_block : op.first_block + n])
            self.swap_in_bytes += kernels.swap_nbytes(self.layers, n)
            self._release(op.entry_id)
        self.swap_in_s += time.perf_counter() - start

    def _release(self, entry_id: int) -> None:
        buffer = self.pool.pop(entry_id, None)
        if buffer is not None:
            self.pool_bytes -= buffer.numel() * buffer.element_size()

    def take_load_errors(self) -> set[int]:
        errors, self.load_errors = self.load_errors, set()
        return errors

    def worker_meta(self) -> SwapWorkerMetadata:
        return SwapWorkerMetadata(
            pool_bytes=self.pool_bytes,
            pool_entries=len(self.pool),
            peak_bytes=self.peak_bytes,
            swap_out_s=self.swap_out_s,
            swap_in_s=self.swap_in_s,
            swap_out_bytes=self.swap_out_bytes,
            swap_in_bytes=self.swap_in_bytes,
            num_load_errors=self.num_load_errors,
        )

    def shutdown(self) -> None:
        self.pool.clear()
        self.pool_bytes = 0


# -- the connector -------------------------------------------------------------------

_LAST = (math.inf,)


def wire_swap_priority(scheduler: Any) -> bool:
    """Rank host entries by the Autellix scheduler's program-level key (call once, at init).

    No-op (False) without a swap connector or a program policy, so any scheduler may call it.
    """
    connector = getattr(scheduler, "connector", None)
    policy = getattr(scheduler, "program_policy", None)
    if connector is None or policy is None or not hasattr(connector, "set_priority_key"):
        return False
    connector.set_priority_key(lambda rid: policy.key(rid) if rid in policy else _LAST)
    return True


class AutellixSwapConnector(KVConnectorBase_V1):
    """Swap preempted calls' KV to a bounded host pool and back (see the module doc)."""

    def __init__(
        self, vllm_config: VllmConfig, role: KVConnectorRole, kv_cache_config: KVCacheConfig
    ) -> None:
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        extra = self._kv_transfer_config.kv_connector_extra_config
        self.settings = SwapSettings.from_mapping(extra)
        self._scheduler: _SchedulerSide | None = None
        self._worker: _WorkerSide | None = None
        if role == KVConnectorRole.SCHEDULER:
            self._scheduler = _SchedulerSide(
                self.settings, kv_cache_config, vllm_config.cache_config.block_size
            )
        else:
            self._worker = _WorkerSide(self.settings, kv_cache_config)

    @property
    def requires_kv_delivery(self) -> bool:
        return False  # a best-effort cache: a lost entry is a recompute, never an error

    # -- scheduler side ----------------------------------------------------
    def set_priority_key(self, key: Callable[[str], Any] | None) -> None:
        """Eviction order: ``key(request_id)``, smaller = more important (None: vLLM's)."""
        side = self._scheduler
        if side is not None:
            side.pool.priority_key = key if key is not None else side._vllm_priority
            side.default_priority = key is None

    def on_new_request(self, request: Request) -> None:
        assert self._scheduler is not None
        self._scheduler.on_new_request(request)

    def get_num_new_matched_tokens(
        self, request: Request, num_computed_tokens: int
    ) -> tuple[int | None, bool]:
        assert self._scheduler is not None
        return self._scheduler.get_num_new_matched_tokens(request, num_computed_tokens), False

    def get_loaded_kv_cache_group_ids(self, request: Request) -> tuple[int, ...]:
        return (0,)

    def update_state_after_alloc(
        self, request: Request, blocks: KVCacheBlocks, num_external_tokens: int
    ) -> None:
        assert self._scheduler is not None
        self._scheduler.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: SchedulerOutput) -> KVConnectorMetadata:
        assert self._scheduler is not None
        return self._scheduler.build_connector_meta(scheduler_output)

    def update_connector_output(self, connector_output: Any) -> None:
        assert self._scheduler is not None
        self._scheduler.update_connector_output(getattr(connector_output, "kv_connector_worker_meta", None))

    def request_finished(self, request: Request, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        assert self._scheduler is not None
        return False, self._scheduler.request_finished(request)

    def reset_cache(self) -> bool:
        """``reset_prefix_cache(reset_connector=True)``: drop every host entry (stale KV)."""
        if self._scheduler is not None:
            self._scheduler.reset()
        return True

    def swap_snapshot(self) -> dict[str, Any]:
        """Pool counters (scheduler accounting plus the worker's last report)."""
        assert self._scheduler is not None
        return self._scheduler.pool_report()

    # -- worker side -------------------------------------------------------
    def register_kv_caches(self, kv_caches: dict[str, torch.Tensor]) -> None:
        assert self._worker is not None
        self._worker.register_kv_caches(kv_caches)

    def handle_preemptions(self, kv_connector_metadata: KVConnectorMetadata) -> None:
        assert self._worker is not None
        if isinstance(kv_connector_metadata, SwapConnectorMetadata):
            self._worker.handle_preemptions(kv_connector_metadata)

    def start_load_kv(self, forward_context: ForwardContext, **kwargs: Any) -> None:
        assert self._worker is not None
        meta = self._get_connector_metadata()
        if isinstance(meta, SwapConnectorMetadata):
            self._worker.start_load_kv(meta)

    def wait_for_layer_load(self, layer_name: str) -> None:
        return

    def save_kv_layer(
        self, layer_name: str, kv_layer: torch.Tensor, attn_metadata: AttentionMetadata, **kwargs: Any
    ) -> None:
        return  # saves happen at preemption (handle_preemptions), not per layer

    def wait_for_save(self) -> None:
        return  # swap-outs are synchronous

    def get_block_ids_with_load_errors(self) -> set[int]:
        return self._worker.take_load_errors() if self._worker is not None else set()

    def build_connector_worker_meta(self) -> KVConnectorWorkerMetadata | None:
        return self._worker.worker_meta() if self._worker is not None else None

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.shutdown()
        if self._scheduler is not None:
            self._scheduler.pool = SwapPool(self.settings.pool_bytes, self._scheduler.pool.priority_key)
