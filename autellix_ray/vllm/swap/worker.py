"""The worker side of swap preemption: the copies between the paged KV cache and host buffers.

Runs a step's ``SwapPlan`` in the worker process: frees, then swap-outs (all of a victim's
blocks, every layer, gathered into ONE host buffer with ``autellix_ray.kernels``), then
swap-ins (scattered into the blocks vLLM allocated on resume). It double-checks the pool
bound; a load that finds no buffer is recorded as failed blocks (vLLM recomputes them).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import torch

from autellix_ray import kernels
from autellix_ray.kernels.swap import layer_list
from autellix_ray.vllm.swap.plan import SwapPlan, WorkerPoolStats
from autellix_ray.vllm.swap.settings import SwapSettings

if TYPE_CHECKING:
    from vllm.v1.kv_cache_interface import KVCacheConfig

logger = logging.getLogger(__name__)


class SwapWorker:
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

    def handle_preemptions(self, meta: SwapPlan) -> None:
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

    def start_load_kv(self, meta: SwapPlan) -> None:
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

    def worker_meta(self) -> WorkerPoolStats:
        return WorkerPoolStats(
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
