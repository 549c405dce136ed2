"""Triton gather/scatter kernel for batched KV swap (same API and buffer format as swap.py).

``triton_swap_out`` gathers ``block_ids`` of every layer of a paged KV cache into a
buffer ``[L, n, *block_shape]``; ``triton_swap_in`` scatters it back into (possibly
different) block ids. One kernel launch covers all layers that live in one allocation
(vLLM 0.32 puts every layer in ONE int8 buffer, see swap.py), addressing each layer by its
element offset in that allocation; layers in separate allocations get one launch each.
Any per-layer layout works: the per-block dims are coalesced into at most 4 strided dims,
so contiguous blocks (LBHNC) and strided ones (LBNHC, LHBNC, BL*) and ``block_dim=1``
caches use the same kernel (a block with more than 4 non-mergeable dims, which no vLLM
layout has, takes the torch path). Data is copied as raw integers of the element width, so
float16/bfloat16/float32 (and fp8/uint8 caches) all work.

On GPU: the kernel gathers into a DEVICE staging buffer, then ONE device->host copy into
pinned host memory (swap-in: one host->device copy, then the scatter kernel). Triton
refuses CPU (pinned) tensors as kernel arguments, so it does not write to host memory
directly. On CPU it runs only under ``TRITON_INTERPRET=1`` (correctness, not speed) and
writes straight into the host buffer.

When Triton is missing (ImportError) or cannot run on the tensors' device, the wrappers
fall back to the torch implementation in swap.py (``fallback=False`` raises instead).
The kernel is jitted lazily, so ``TRITON_INTERPRET`` is read at first use, not at import.
"""

import os

import torch

from . import swap as ref

try:  # ImportError-safe: the package works without Triton.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # noqa: BLE001 - a broken Triton install must not break imports
    triton = tl = None
    HAS_TRITON = False

_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_MAX_DIMS = 4

if HAS_TRITON:

    def _kv_block_copy(
        cache_ptr,
        cache_off_ptr,
        ids_ptr,
        buf_ptr,
        buf_layer_stride,
        block_stride,
        block_numel,
        S1,
        S2,
        S3,
        T0,
        T1,
        T2,
        T3,
        TO_BUFFER: tl.constexpr,
        BLOCK: tl.constexpr,
    ):
        """Copy block ``ids[j]`` of layer ``layer`` to/from buffer row ``[layer, j]``.

        Cache element ``i`` of a block sits at ``cache_off[layer] + block_id * block_stride
        + inner(i)``, where ``inner`` unravels ``i`` over the coalesced per-block dims
        (sizes S0..S3, S0 implicit; strides T0..T3). The buffer rows are contiguous.
        """
        j = tl.program_id(0)  # which swapped block (axis 0: no 65535 limit on CUDA)
        layer = tl.program_id(1)
        i = tl.program_id(2) * BLOCK + tl.arange(0, BLOCK)
        mask = i < block_numel
        i = i.to(tl.int64)
        block_id = tl.load(ids_ptr + j).to(tl.int64)
        inner = (
            (i // (S1 * S2 * S3)) * T0 + ((i // (S2 * S3)) % S1) * T1 + ((i // S3) % S2) * T2 + (i % S3) * T3
        )
        c = tl.load(cache_off_ptr + layer) + block_id * block_stride + inner
        b = layer.to(tl.int64) * buf_layer_stride + j.to(tl.int64) * block_numel + i
        if TO_BUFFER:
            tl.store(buf_ptr + b, tl.load(cache_ptr + c, mask=mask), mask=mask)
        else:
            tl.store(cache_ptr + c, tl.load(buf_ptr + b, mask=mask), mask=mask)


_JITTED: dict[bool, object] = {}


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def _kernel():
    key = _interpret()
    if key not in _JITTED:  # triton.jit picks interpreter vs compiler when it is applied
        _JITTED[key] = triton.jit(_kv_block_copy)
    return _JITTED[key]


def triton_usable(device: torch.device | str) -> bool:
    """True when the kernel can run on tensors of ``device`` (CUDA, or CPU interpreted)."""
    device = torch.device(device)
    return HAS_TRITON and (_interpret() or (device.type == "cuda" and torch.cuda.is_available()))


def _coalesce(shape, stride) -> tuple[list[int], list[int]]:
    """Merge per-block dims into as few (size, stride) dims as possible, padded to 4."""
    dims = [(s, t) for s, t in zip(shape, stride) if s != 1]
    merged: list[list[int]] = []
    for s, t in dims:
        if merged and merged[-1][1] == s * t:
            merged[-1] = [merged[-1][0] * s, t]
        else:
            merged.append([s, t])
    merged = [[1, 0]] * (_MAX_DIMS - len(merged)) + merged
    return [m[0] for m in merged], [m[1] for m in merged]


def _plan(layers: list[torch.Tensor], block_dim: int):
    """Group layers by allocation and strides: one kernel launch per group."""
    groups: dict[tuple, list[int]] = {}
    for l, t in enumerate(layers):
        v = t.movedim(block_dim, 0)
        groups.setdefault((t.untyped_storage().data_ptr(), v.stride()), []).append(l)
    plans = []
    for (_, stride), idx in groups.items():
        v = layers[idx[0]].movedim(block_dim, 0)
        sizes, strides = _coalesce(v.shape[1:], stride[1:])
        if len(sizes) > _MAX_DIMS:
            return None
        plans.append((idx, stride[0], sizes, strides))
    return plans


def _flat(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 1-D ``dtype`` tensor over the whole allocation backing ``t``."""
    storage = t.untyped_storage()
    n = storage.nbytes() // t.element_size()
    return torch.empty(0, dtype=dtype, device=t.device).set_(storage, 0, (n,), (1,))


def _launch(layers, block_dim, ids, buf, to_buffer: bool) -> bool:
    plans = _plan(layers, block_dim)
    if plans is None:
        return False
    esize = layers[0].element_size()
    int_dtype = _INT_OF_SIZE[esize]
    n = ids.numel()
    block_numel = layers[0].movedim(block_dim, 0)[0].numel()
    if n == 0 or block_numel == 0:
        return True
    BLOCK = min(triton.next_power_of_2(block_numel), 16384 if _interpret() else 1024)
    ibuf = buf.view(int_dtype)
    for idx, block_stride, sizes, strides in plans:
        cache = _flat(layers[idx[0]], int_dtype)
        base = cache.data_ptr()
        offs = [(layers[l].data_ptr() - base) // esize for l in idx]
        cache_off = torch.tensor(offs, dtype=torch.int64, device=cache.device)
        # Layers of this group may not be consecutive in the buffer: give the kernel a
        # buffer view starting at the group's first layer when they are, else one launch each.
        runs = [idx] if idx == list(range(idx[0], idx[0] + len(idx))) else [[l] for l in idx]
        for run in runs:
            sel = cache_off[idx.index(run[0]) : idx.index(run[0]) + len(run)]
            grid = (n, len(run), triton.cdiv(block_numel, BLOCK))
            # sizes[0] is implicit in the kernel (S1..S3, then strides T0..T3)
            _kernel()[grid](
                cache,
                sel,
                ids,
                ibuf[run[0] :],
                ibuf.stride(0),
                block_stride,
                block_numel,
                *sizes[1:],
                *strides,
                TO_BUFFER=to_buffer,
                BLOCK=BLOCK,
            )
    return True


def _prepare(kv_caches: ref.KVCaches, block_dim: int | ref.KVLayout, fallback: bool):
    """The deduplicated layers, ``block_dim`` as a non-negative int, and whether the kernel runs.

    Raises when it cannot run and ``fallback`` is False; else the caller uses the torch path.
    """
    layers = ref.layer_list(kv_caches)
    bd = ref._block_dim(block_dim) % layers[0].dim()
    dev = layers[0].device
    usable = triton_usable(dev)
    if not usable and not fallback:
        raise RuntimeError(
            f"Triton cannot run on {dev} (installed: {HAS_TRITON}; set TRITON_INTERPRET=1 for CPU)"
        )
    return layers, bd, usable


def triton_swap_out(
    kv_caches: ref.KVCaches,
    block_ids: ref.BlockIds,
    host_buffer: torch.Tensor | None = None,
    *,
    block_dim: int | ref.KVLayout = 0,
    non_blocking: bool = False,
    fallback: bool = True,
) -> torch.Tensor:
    """Triton version of ``swap.swap_out`` (same arguments and buffer format)."""
    layers, bd, usable = _prepare(kv_caches, block_dim, fallback)
    if not usable:
        return ref.swap_out(layers, block_ids, host_buffer, block_dim=bd, non_blocking=non_blocking)
    dev = layers[0].device
    ids = ref.as_block_ids(block_ids, layers[0].shape[bd], dev)
    if host_buffer is None:
        host_buffer = ref.alloc_host_buffer(layers, ids.numel(), bd)
    ref.check_host_buffer(host_buffer, layers, ids.numel(), bd)
    on_host = dev.type == "cpu"
    staging = host_buffer if on_host else torch.empty(host_buffer.shape, dtype=host_buffer.dtype, device=dev)
    if not _launch(layers, bd, ids, staging, to_buffer=True):
        return ref.swap_out(layers, ids, host_buffer, block_dim=bd, non_blocking=non_blocking)
    if not on_host:
        host_buffer.copy_(staging, non_blocking=non_blocking)  # the ONE device->host transfer
        ref._sync(layers, non_blocking)
    return host_buffer


def triton_swap_in(
    kv_caches: ref.KVCaches,
    block_ids: ref.BlockIds,
    host_buffer: torch.Tensor,
    *,
    block_dim: int | ref.KVLayout = 0,
    non_blocking: bool = False,
    fallback: bool = True,
) -> None:
    """Triton version of ``swap.swap_in`` (same arguments and buffer format)."""
    layers, bd, usable = _prepare(kv_caches, block_dim, fallback)
    if not usable:
        return ref.swap_in(layers, block_ids, host_buffer, block_dim=bd, non_blocking=non_blocking)
    dev = layers[0].device
    ids = ref.as_block_ids(block_ids, layers[0].shape[bd], dev, unique=True)
    ref.check_host_buffer(host_buffer, layers, ids.numel(), bd)
    src = host_buffer if dev.type == "cpu" else host_buffer.to(dev, non_blocking=non_blocking)
    if not _launch(layers, bd, ids, src, to_buffer=False):
        return ref.swap_in(layers, ids, host_buffer, block_dim=bd, non_blocking=non_blocking)
    ref._sync(layers, non_blocking)
