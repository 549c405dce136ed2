"""``AutellixSwapConnector``: vLLM's KV-connector interface over the planner and the worker.

In the scheduler process it drives a ``SchedulerSide`` (plan.py's ``SwapPlanner`` with the
KV cache's geometry and vLLM's metadata type); in each worker a ``SwapWorker`` (worker.py).
Users name it through ``autellix_ray.vllm.swap_connector`` (the stable module path).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from vllm.distributed.kv_transfer.kv_connector.v1.base import (
    KVConnectorBase_V1,
    KVConnectorMetadata,
    KVConnectorRole,
    KVConnectorWorkerMetadata,
)
from vllm.v1.kv_cache_interface import AttentionSpec

from autellix_ray.vllm.swap.plan import LAST, SwapPlan, SwapPlanner, WorkerPoolStats
from autellix_ray.vllm.swap.settings import SwapSettings
from autellix_ray.vllm.swap.worker import SwapWorker

if TYPE_CHECKING:
    from collections.abc import Callable

    from vllm.config import VllmConfig
    from vllm.forward_context import ForwardContext
    from vllm.v1.attention.backend import AttentionMetadata
    from vllm.v1.core.kv_cache_manager import KVCacheBlocks
    from vllm.v1.core.sched.output import SchedulerOutput
    from vllm.v1.kv_cache_interface import KVCacheConfig
    from vllm.v1.request import Request

logger = logging.getLogger(__name__)


@dataclass
class SwapConnectorMetadata(SwapPlan, KVConnectorMetadata):
    """A step's ``SwapPlan`` as vLLM's scheduler-to-worker connector metadata."""


@dataclass
class SwapWorkerMetadata(WorkerPoolStats, KVConnectorWorkerMetadata):
    """The worker's ``WorkerPoolStats`` as vLLM's worker-to-scheduler connector metadata."""


class SchedulerSide(SwapPlanner):
    """The planner, sized from vLLM's KV cache config; its plans are vLLM metadata."""

    plan_type = SwapConnectorMetadata

    def __init__(self, settings: SwapSettings, kv_cache_config: KVCacheConfig, block_size: int) -> None:
        enabled, bytes_per_block, reason = _swap_geometry(kv_cache_config)
        if not enabled:
            logger.warning("Autellix swap connector disabled (calls recompute on preemption): %s", reason)
        super().__init__(settings, block_size, bytes_per_block, enabled)
        logger.info(
            "Autellix swap connector: pool_bytes=%d min_swap_tokens=%d bytes_per_block=%d kernel=%s",
            settings.pool_bytes,
            settings.min_swap_tokens,
            self.bytes_per_block,
            settings.kernel,
        )


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


def wire_swap_priority(scheduler: Any) -> bool:
    """Rank host entries by the Autellix scheduler's program-level key (call once, at init).

    No-op (False) without a swap connector or a program policy, so any scheduler may call it.
    """
    connector = getattr(scheduler, "connector", None)
    policy = getattr(scheduler, "program_policy", None)
    if connector is None or policy is None or not hasattr(connector, "set_priority_key"):
        return False
    connector.set_priority_key(lambda rid: policy.key(rid) if rid in policy else LAST)
    return True


class AutellixSwapConnector(KVConnectorBase_V1):
    """Swap preempted calls' KV to a bounded host pool and back (see ``autellix_ray.vllm.swap``)."""

    def __init__(
        self, vllm_config: VllmConfig, role: KVConnectorRole, kv_cache_config: KVCacheConfig
    ) -> None:
        super().__init__(vllm_config=vllm_config, role=role, kv_cache_config=kv_cache_config)
        extra = self._kv_transfer_config.kv_connector_extra_config
        self.settings = SwapSettings.from_mapping(extra)
        self._scheduler: SchedulerSide | None = None
        self._worker: SwapWorker | None = None
        if role == KVConnectorRole.SCHEDULER:
            self._scheduler = SchedulerSide(self.settings, kv_cache_config, vllm_config.cache_config.block_size)
        else:
            self._worker = SwapWorker(self.settings, kv_cache_config)

    @property
    def requires_kv_delivery(self) -> bool:
        return False  # a best-effort cache: a lost entry is a recompute, never an error

    # -- scheduler side ----------------------------------------------------
    def set_priority_key(self, key: Callable[[str], Any] | None) -> None:
        """Eviction order: ``key(request_id)``, smaller = more important (None: vLLM's)."""
        if self._scheduler is not None:
            self._scheduler.set_priority_key(key)

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
        return SwapWorkerMetadata(**asdict(self._worker.worker_meta())) if self._worker is not None else None

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.shutdown()
        if self._scheduler is not None:
            self._scheduler.clear_pool()
