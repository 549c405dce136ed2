"""KV-swap kernels (installed as ``autellix_ray.kernels``).

Batched swap of a preempted call's KV blocks between a paged KV cache and host memory
(Autellix, arXiv 2502.13965): ``swap`` is the torch reference and CPU path (plus the
one-copy-per-block baseline and byte-size helpers for the PCIe cost model);
``triton_swap`` is the Triton gather/scatter kernel with a torch fallback when Triton is
missing. Their GPU-only timing script is ``autellix_ray.bench.swap_kernels_gpu``.
"""

from .swap import (
    LEGACY_KV_FIRST,
    VLLM_PAGED,
    KVLayout,
    alloc_host_buffer,
    buffer_shape,
    kv_swap_nbytes,
    per_block_swap_in,
    per_block_swap_out,
    swap_in,
    swap_nbytes,
    swap_out,
)
from .triton_swap import HAS_TRITON, triton_swap_in, triton_swap_out, triton_usable

__all__ = [
    "HAS_TRITON",
    "LEGACY_KV_FIRST",
    "VLLM_PAGED",
    "KVLayout",
    "alloc_host_buffer",
    "buffer_shape",
    "kv_swap_nbytes",
    "per_block_swap_in",
    "per_block_swap_out",
    "swap_in",
    "swap_nbytes",
    "swap_out",
    "triton_swap_in",
    "triton_swap_out",
    "triton_usable",
]
