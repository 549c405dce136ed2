"""Batched KV-cache swap between a paged device KV cache and host memory (pure torch).

Autellix (arXiv 2502.13965) preempts LLM calls often; a preempted call's KV blocks
are moved to host memory with ONE batched transfer instead of one copy per block.
This module is the reference implementation and the CPU path:

* ``swap_out(kv_caches, block_ids)`` gathers the given blocks of every layer into one
  contiguous host buffer of shape ``[num_layers, len(block_ids), *block_shape]``
  (pinned when the cache is on a CUDA device, a plain CPU tensor otherwise).
  On CUDA the blocks are gathered on the device into a staging buffer and moved with a
  single device->host copy; on CPU they are gathered straight into the host buffer.
* ``swap_in(kv_caches, block_ids, host_buffer)`` scatters a buffer back into (new,
  possibly different) block ids. ``block_ids`` may be any unsorted, non-contiguous list.
* ``per_block=True`` (or ``per_block_swap_out`` / ``per_block_swap_in``): the naive
  baseline, one copy per (layer, block) pair, which is what vLLM's old ``swap_blocks`` did.
* ``swap_nbytes`` / ``kv_swap_nbytes``: bytes moved by a swap of N blocks (PCIe cost model).

Supported layouts. A layer's cache is any tensor in which ONE dimension (``block_dim``)
indexes blocks; every other dimension, with any strides, belongs to the block. The
layouts this covers (paths relative to site-packages/vllm of the installed vLLM 0.32):

* ``VLLM_PAGED`` (block_dim=0), what vLLM 0.32 actually allocates for every attention
  backend: per layer a logical view ``[num_blocks, num_kv_heads, block_size,
  head_size + head_size_v]`` (K and V packed in the last dim), made by
  ``v1/worker/utils.py:allocate_kv_cache`` -> ``v1/kv_cache_interface.py:
  create_kv_cache_views`` as strided views of ONE int8 buffer. Its physical order is a
  ``v1/kv_cache_layout.py:KVCacheLayout`` permutation of ``[L, B, H, N, C]``
  (strides from ``compute_layout_strides``):
    - LBHNC: the CPU backend (``v1/attention/backends/cpu_attn.py``
      ``supported_kv_cache_layouts`` -> "Using LBHNC KV cache layout"); per layer
      contiguous. ``forward`` re-views it as ``[B, H, 2*N, D]`` (K rows then V rows),
      while FlashAttention reads the last dim as K|V per token; a swap moves whole
      blocks, so it never depends on how K and V are packed inside one.
    - LBNHC ("NHD"): FlashAttention (``flash_attn.py`` declares no layouts, so the
      default preference ``v1/attention/backends/utils.py:_DEFAULT_LAYOUT_PREFERENCE``
      picks LBNHC first); it reads ``kv_cache.transpose(1, 2).split(head_size, -1)``.
    - LHBNC, BLHNC, BLNHC, BHLNC (``VLLM_KV_CACHE_LAYOUT``, other backends): in
      LHBNC/BHLNC a block's heads lie apart; in BL* the block stride spans all layers.
      All are handled by the generic strided gather.
  Kernel-block-granular views (manager block split into ``ratio`` kernel blocks) should
  be regrouped first with ``v1/kv_cache_interface.py:group_kernel_blocks(cache,
  num_blocks)`` -> ``[num_blocks, ratio, H, N, C]``, still block_dim=0.
* ``LEGACY_KV_FIRST`` (block_dim=1): ``[2, num_blocks, block_size, num_kv_heads,
  head_size]``, the ``get_kv_cache_shape`` of FlashAttention in older vLLM releases.
  It does not exist in the installed 0.32 (no backend there has this shape); kept for
  caches built that way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KVLayout:
    """Which dimension of a per-layer KV tensor indexes blocks (plus documentation)."""

    name: str
    block_dim: int
    shape: str
    source: str


VLLM_PAGED = KVLayout(
    "vllm-0.32-paged",
    0,
    "[num_blocks, num_kv_heads, block_size, head_size + head_size_v], any KVCacheLayout strides",
    "vllm/v1/kv_cache_interface.py:create_kv_cache_views, vllm/v1/kv_cache_layout.py",
)
LEGACY_KV_FIRST = KVLayout(
    "legacy-kv-first",
    1,
    "[2, num_blocks, block_size, num_kv_heads, head_size]",
    "FlashAttentionBackend.get_kv_cache_shape in older vLLM (not in 0.32)",
)

KVCaches = torch.Tensor | Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
BlockIds = Sequence[int] | torch.Tensor


def _block_dim(block_dim: int | KVLayout) -> int:
    return block_dim.block_dim if isinstance(block_dim, KVLayout) else int(block_dim)


def layer_list(kv_caches: KVCaches) -> list[torch.Tensor]:
    """Per-layer tensors in a fixed order; identical views (vLLM KV sharing) kept once."""
    if isinstance(kv_caches, torch.Tensor):
        tensors = [kv_caches]
    elif isinstance(kv_caches, Mapping):
        tensors = list(kv_caches.values())
    else:
        tensors = list(kv_caches)
    if not tensors:
        raise ValueError("kv_caches is empty")
    seen, layers = set(), []
    for t in tensors:
        key = (t.data_ptr(), tuple(t.shape), t.stride(), t.dtype)
        if key not in seen:
            seen.add(key)
            layers.append(t)
    first = layers[0]
    for t in layers[1:]:
        if t.shape != first.shape or t.dtype != first.dtype or t.device != first.device:
            raise ValueError("all layers must share shape, dtype and device")
    return layers


def block_view(layer: torch.Tensor, block_dim: int | KVLayout = 0) -> torch.Tensor:
    """The layer with its block dimension moved to the front (a view, no copy)."""
    return layer.movedim(_block_dim(block_dim), 0)


def as_block_ids(
    block_ids: BlockIds, num_blocks: int, device: torch.device, *, unique: bool = False
) -> torch.Tensor:
    """Validate block ids and return them as an int64 tensor on ``device``."""
    ids = torch.as_tensor(block_ids, dtype=torch.int64).flatten().cpu()
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= num_blocks):
        raise IndexError(f"block ids must be in [0, {num_blocks})")
    if unique and ids.unique().numel() != ids.numel():
        raise ValueError("destination block ids must be distinct")
    return ids.to(device)


def buffer_shape(kv_caches: KVCaches, num_blocks: int, block_dim: int | KVLayout = 0) -> tuple[int, ...]:
    """Shape of the host buffer for ``num_blocks`` blocks: ``[L, n, *block_shape]``."""
    layers = layer_list(kv_caches)
    return (len(layers), num_blocks, *block_view(layers[0], block_dim).shape[1:])


def alloc_host_buffer(
    kv_caches: KVCaches, num_blocks: int, block_dim: int | KVLayout = 0, pin: bool | None = None
) -> torch.Tensor:
    """Empty host buffer for a swap; pinned by default when the cache is on CUDA."""
    layers = layer_list(kv_caches)
    if pin is None:
        pin = layers[0].is_cuda and torch.cuda.is_available()
    shape = buffer_shape(layers, num_blocks, block_dim)
    return torch.empty(shape, dtype=layers[0].dtype, device="cpu", pin_memory=pin)


def check_host_buffer(host_buffer: torch.Tensor, layers: list[torch.Tensor], n: int, block_dim) -> None:
    want = buffer_shape(layers, n, block_dim)
    if tuple(host_buffer.shape) != want or host_buffer.dtype != layers[0].dtype:
        raise ValueError(
            f"host buffer must be {want} {layers[0].dtype}, got {tuple(host_buffer.shape)} {host_buffer.dtype}"
        )
    if host_buffer.device.type != "cpu":
        raise ValueError("host buffer must be a CPU tensor")
    if not host_buffer[0].is_contiguous():
        raise ValueError("each layer slice host_buffer[l] must be contiguous")


def _sync(layers: list[torch.Tensor], non_blocking: bool) -> None:
    if layers[0].is_cuda and not non_blocking:
        torch.cuda.current_stream(layers[0].device).synchronize()


def swap_out(
    kv_caches: KVCaches,
    block_ids: BlockIds,
    host_buffer: torch.Tensor | None = None,
    *,
    block_dim: int | KVLayout = 0,
    non_blocking: bool = False,
    per_block: bool = False,
) -> torch.Tensor:
    """Gather ``block_ids`` of every layer into one host buffer ``[L, n, *block_shape]``.

    ``per_block=True`` is the naive baseline: one copy per (layer, block) straight to the host.
    """
    layers = layer_list(kv_caches)
    views = [block_view(t, block_dim) for t in layers]
    dev = layers[0].device
    ids = as_block_ids(block_ids, views[0].shape[0], torch.device("cpu") if per_block else dev)
    n = ids.numel()
    if host_buffer is None:
        host_buffer = alloc_host_buffer(layers, n, block_dim)
    check_host_buffer(host_buffer, layers, n, block_dim)
    if per_block:
        blocks = ids.tolist()
        for l, v in enumerate(views):
            for j, b in enumerate(blocks):
                host_buffer[l, j].copy_(v[b], non_blocking=non_blocking)
    else:
        staging = host_buffer  # on CPU gather straight into the host buffer
        if dev.type != "cpu":
            staging = torch.empty(host_buffer.shape, dtype=host_buffer.dtype, device=dev)
        for l, v in enumerate(views):
            torch.index_select(v, 0, ids, out=staging[l])
        if staging is not host_buffer:
            host_buffer.copy_(staging, non_blocking=non_blocking)  # the ONE device->host transfer
    _sync(layers, non_blocking)
    return host_buffer


def swap_in(
    kv_caches: KVCaches,
    block_ids: BlockIds,
    host_buffer: torch.Tensor,
    *,
    block_dim: int | KVLayout = 0,
    non_blocking: bool = False,
    per_block: bool = False,
) -> None:
    """Scatter ``host_buffer`` (from ``swap_out``) into ``block_ids`` of every layer.

    ``per_block=True`` is the naive baseline: one copy per (layer, block) back into the cache.
    """
    layers = layer_list(kv_caches)
    views = [block_view(t, block_dim) for t in layers]
    dev = layers[0].device
    ids = as_block_ids(block_ids, views[0].shape[0], torch.device("cpu") if per_block else dev, unique=True)
    check_host_buffer(host_buffer, layers, ids.numel(), block_dim)
    if per_block:
        blocks = ids.tolist()
        for l, v in enumerate(views):
            for j, b in enumerate(blocks):
                v[b].copy_(host_buffer[l, j], non_blocking=non_blocking)
    else:
        src = host_buffer
        if dev.type != "cpu":
            src = host_buffer.to(dev, non_blocking=non_blocking)  # ONE host->device transfer
        for l, v in enumerate(views):
            v.index_copy_(0, ids, src[l])
    _sync(layers, non_blocking)


def per_block_swap_out(kv_caches: KVCaches, block_ids: BlockIds, *args, **kwargs) -> torch.Tensor:
    """Baseline ``swap_out(..., per_block=True)``: same arguments and buffer format."""
    return swap_out(kv_caches, block_ids, *args, per_block=True, **kwargs)


def per_block_swap_in(kv_caches: KVCaches, block_ids: BlockIds, *args, **kwargs) -> None:
    """Baseline ``swap_in(..., per_block=True)``: same arguments and buffer format."""
    swap_in(kv_caches, block_ids, *args, per_block=True, **kwargs)


def swap_nbytes(kv_caches: KVCaches, num_blocks: int, block_dim: int | KVLayout = 0) -> int:
    """Bytes moved to or from the host when swapping ``num_blocks`` blocks of these caches."""
    layers = layer_list(kv_caches)
    per_block = block_view(layers[0], block_dim)[0].numel() * layers[0].element_size()
    return num_blocks * len(layers) * per_block


def kv_swap_nbytes(
    num_blocks: int,
    *,
    num_layers: int,
    block_size: int,
    num_kv_heads: int,
    head_size: int,
    dtype: torch.dtype | int = torch.float16,
    head_size_v: int | None = None,
) -> int:
    """Bytes of a swap of ``num_blocks`` blocks from model dimensions (no tensors needed).

    Matches vLLM 0.32 ``AttentionSpec.page_size_bytes`` (unpadded) times layers: padding
    between pages is never transferred. ``dtype`` may be a torch dtype or a byte size.
    """
    elem = dtype if isinstance(dtype, int) else torch.empty((), dtype=dtype).element_size()
    hv = head_size if head_size_v is None else head_size_v
    return num_blocks * num_layers * num_kv_heads * block_size * (head_size + hv) * elem
