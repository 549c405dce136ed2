"""Batched KV swap (kernels/swap.py, kernels/triton_swap.py) against plain indexing.

Caches are built like vLLM 0.32 builds them: every layer is a strided view of ONE flat
buffer, in each KVCacheLayout physical order, with guard elements around it; after a
swap-in the WHOLE buffer must equal the expected one (other blocks, other layers and the
guards untouched). Triton runs interpreted on CPU (TRITON_INTERPRET=1, set by a fixture;
the kernel reads it at first use). Tensors are kept tiny: interpreted Triton is slow.
"""

import importlib.util
import random

import pytest
import torch
from autellix_ray.kernels import swap, triton_swap
from autellix_ray.kernels.swap import LEGACY_KV_FIRST, VLLM_PAGED

from autellix_ray.bench.swap_kernels_gpu import ORDERS, strided_cache

DTYPES = [torch.float16, torch.bfloat16, torch.float32]
INT_OF = {2: torch.int16, 4: torch.int32}
GUARD = 5


def make_cache(order, L, B, H, N, C, dtype, seed=0, device="cpu"):
    """(raw buffer, per-layer [B, H, N, C] views) laid out in ``order``, random contents."""
    return strided_cache(order, (L, B, H, N, C), dtype, guard=GUARD, seed=seed, device=device)


def random_case(rng, order_name, dtype):
    L, H = rng.choice([1, 2, 3]), rng.choice([1, 2, 3])
    N, D = rng.choice([1, 2, 4, 16]), rng.choice([4, 8, 32])
    B = rng.randint(6, 10)
    raw, layers = make_cache(ORDERS[order_name], L, B, H, N, 2 * D, dtype, seed=rng.randint(0, 10**6))
    n = rng.randint(1, B // 2)
    src = rng.sample(range(B), n)  # unsorted, non-contiguous
    dst = rng.sample(range(B), n)  # may overlap src, different order
    return raw, layers, src, dst


def bits(t):
    return t.view(INT_OF[t.element_size()])


def expected_gather(layers, ids, block_dim=0):
    return torch.stack([t.movedim(block_dim, 0)[list(ids)] for t in layers])


def expected_after_swap_in(raw, layers, dst, buf, block_dim=0):
    """Clone of ``raw`` with ``buf`` written into ``dst`` by plain indexing."""
    out = raw.clone()
    base = raw.data_ptr()
    for l, t in enumerate(layers):
        v = torch.as_strided(out, t.shape, t.stride(), (t.data_ptr() - base) // t.element_size())
        v.movedim(block_dim, 0)[list(dst)] = buf[l]
    return out


def check_case(raw, layers, src, dst, out_fn, in_fn, block_dim=0):
    want = expected_gather(layers, src, block_dim)
    buf = out_fn(layers, src, block_dim=block_dim)
    assert buf.device.type == "cpu" and buf.is_contiguous()
    assert torch.equal(bits(buf), bits(want))
    expected = expected_after_swap_in(raw, layers, dst, want, block_dim)
    in_fn(layers, dst, buf, block_dim=block_dim)
    assert torch.equal(bits(raw), bits(expected)), "swap_in changed other blocks/layers or wrote wrong data"
    # round trip: the destination blocks now hold exactly the source blocks' old contents
    assert torch.equal(bits(expected_gather(layers, dst, block_dim)), bits(want))


IMPLS = {
    "batched": (swap.swap_out, swap.swap_in),
    "per_block": (swap.per_block_swap_out, swap.per_block_swap_in),
}


@pytest.mark.parametrize("impl", sorted(IMPLS))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_torch_swap_all_vllm_layouts(impl, dtype, order):
    rng = random.Random(f"{impl}{dtype}{order}")
    for _ in range(3):
        check_case(*random_case(rng, order, dtype), *IMPLS[impl])


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_legacy_kv_first_layout_separate_tensors(impl):
    # [2, num_blocks, block_size, num_kv_heads, head_size], one allocation per layer.
    g = torch.Generator().manual_seed(1)
    layers = [torch.randn(2, 9, 4, 2, 8, generator=g).half() for _ in range(3)]
    src, dst = [7, 2, 5], [0, 8, 3]
    want = expected_gather(layers, src, 1)
    buf = IMPLS[impl][0](layers, src, block_dim=LEGACY_KV_FIRST)
    assert buf.shape == (3, 3, 2, 4, 2, 8) and torch.equal(buf, want)
    before = [t.clone() for t in layers]
    IMPLS[impl][1](layers, dst, buf, block_dim=LEGACY_KV_FIRST)
    for l, (t, b) in enumerate(zip(layers, before)):
        b[:, dst] = want[l].movedim(0, 1)
        assert torch.equal(t, b)


def test_host_buffer_reuse_and_pool_slice():
    _raw, layers = make_cache(ORDERS["LBNHC"], 2, 8, 2, 4, 16, torch.float16)
    pool = swap.alloc_host_buffer(layers, 6)
    assert pool.shape == swap.buffer_shape(layers, 6) == (2, 6, 2, 4, 16) and not pool.is_pinned()
    part = pool[:, :3]  # a slice of a bigger preallocated pool
    out = swap.swap_out(layers, [6, 0, 3], part)
    assert out is part and torch.equal(pool[:, :3], expected_gather(layers, [6, 0, 3]))
    if triton_swap.HAS_TRITON:
        pool.zero_()
        triton_swap.triton_swap_out(layers, [6, 0, 3], pool[:, 3:])  # falls back or runs
        assert torch.equal(pool[:, 3:], expected_gather(layers, [6, 0, 3]))


def test_errors():
    _raw, layers = make_cache(ORDERS["LBHNC"], 2, 6, 1, 2, 8, torch.float32)
    buf = swap.swap_out(layers, [1, 2])
    with pytest.raises(ValueError, match="distinct"):
        swap.swap_in(layers, [3, 3], buf)
    with pytest.raises(IndexError):
        swap.swap_out(layers, [6])
    with pytest.raises(ValueError, match="host buffer"):
        swap.swap_in(layers, [1, 2, 3], buf)
    with pytest.raises(ValueError, match="share shape"):
        swap.swap_out([layers[0], layers[1][:3]], [0])
    assert swap.swap_out(layers, []).shape == (2, 0, 1, 2, 8)


def test_dict_input_dedupes_shared_layers():
    _raw, layers = make_cache(ORDERS["LBHNC"], 2, 6, 1, 2, 8, torch.float32)
    kv = {"l0": layers[0], "l1": layers[1], "l2_shares_l0": layers[0]}
    assert swap.swap_out(kv, [4, 1]).shape[0] == 2


def test_swap_nbytes():
    _raw, layers = make_cache(ORDERS["LBNHC"], 3, 8, 2, 4, 2 * 16, torch.bfloat16)
    buf = swap.swap_out(layers, [1, 5, 2])
    assert swap.swap_nbytes(layers, 3) == buf.numel() * buf.element_size() == 3 * 3 * 2 * 4 * 32 * 2
    assert swap.kv_swap_nbytes(
        3, num_layers=3, block_size=4, num_kv_heads=2, head_size=16, dtype=torch.bfloat16
    ) == swap.swap_nbytes(layers, 3)
    assert (
        swap.kv_swap_nbytes(10, num_layers=32, block_size=16, num_kv_heads=8, head_size=128, dtype=2)
        == 10 * 32 * 16 * 8 * 256 * 2
    )


# ---- real vLLM 0.32 views (skipped when vllm is not importable) -------------------------

needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm not installed")


def vllm_cache(layout, L=2, B=7, block_size=4, heads=2, head_size=8, dtype=torch.float16):
    from vllm.v1.kv_cache_interface import (
        FullAttentionSpec,
        KVCacheTensor,
        compute_layout_strides,
        create_kv_cache_views,
    )

    spec = FullAttentionSpec(block_size=block_size, num_kv_heads=heads, head_size=head_size, dtype=dtype)
    layer_stride, block_stride, *_ = compute_layout_strides(spec, B, L, layout)
    kt = KVCacheTensor(
        size=L * B * spec.page_size_bytes,
        layers=[f"l{i}" for i in range(L)],
        layer_stride=layer_stride,
        block_stride=block_stride,
    )
    raw = torch.randint(-100, 100, (kt.size,), dtype=torch.int8)
    return spec, raw, create_kv_cache_views(raw, spec, B, layout, kt)


@needs_vllm
def test_vllm_032_views_and_page_bytes():
    from vllm.v1.kv_cache_interface import KVCacheLayout

    for layout in KVCacheLayout:
        spec, raw, layers = vllm_cache(layout)
        assert layers[0].shape == (7, 2, 4, 16)  # [B, H, N, head_size + head_size_v]
        before = raw.clone()
        buf = swap.swap_out(layers, [5, 0, 3], block_dim=VLLM_PAGED)
        assert torch.equal(bits(buf), bits(expected_gather(layers, [5, 0, 3])))
        assert swap.swap_nbytes(layers, 3) == 3 * 2 * spec.page_size_bytes
        assert (
            swap.kv_swap_nbytes(3, num_layers=2, block_size=4, num_kv_heads=2, head_size=8)
            == 3 * 2 * spec.page_size_bytes
        )
        swap.swap_in(layers, [5, 0, 3], buf)
        assert torch.equal(raw, before), layout.name


# ---- Triton (interpreted on CPU) ---------------------------------------------------------


@pytest.fixture
def interpret(monkeypatch):
    pytest.importorskip("triton", reason="triton cannot be imported; the Triton kernel is untested here")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert triton_swap.HAS_TRITON and triton_swap.triton_usable("cpu")


@pytest.fixture
def kernel_only(monkeypatch):
    """Make any fallback to the torch path fail, so the Triton kernel itself is tested."""

    def boom(*a, **k):
        raise AssertionError("fell back to the torch path")

    monkeypatch.setattr(swap, "swap_out", boom)
    monkeypatch.setattr(swap, "swap_in", boom)


def t_out(*a, **k):
    return triton_swap.triton_swap_out(*a, fallback=False, **k)


def t_in(*a, **k):
    return triton_swap.triton_swap_in(*a, fallback=False, **k)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("order", sorted(ORDERS))
def test_triton_all_vllm_layouts(interpret, kernel_only, dtype, order):
    rng = random.Random(f"triton{dtype}{order}")
    for _ in range(2):
        check_case(*random_case(rng, order, dtype), t_out, t_in)


def test_triton_matches_torch_and_per_block(interpret):
    _raw, layers = make_cache(ORDERS["BHLNC"], 3, 9, 2, 4, 16, torch.bfloat16, seed=3)
    ids = [8, 1, 4, 6]
    a = swap.swap_out(layers, ids)
    assert torch.equal(bits(t_out(layers, ids)), bits(a))
    assert torch.equal(bits(swap.per_block_swap_out(layers, ids)), bits(a))


def test_triton_legacy_layout_and_mixed_allocations(interpret, kernel_only):
    # block_dim=1, layers in different allocations, and a shared allocation whose
    # layers are not consecutive in the list (exercises the per-layer launch path).
    g = torch.Generator().manual_seed(2)
    shared = torch.randn(2, 2, 6, 4, 2, 8, generator=g)
    layers = [shared[0], torch.randn(2, 6, 4, 2, 8, generator=g), shared[1]]
    before = [t.clone() for t in layers]
    want = expected_gather(layers, [5, 1], 1)
    buf = t_out(layers, [5, 1], block_dim=LEGACY_KV_FIRST)
    assert torch.equal(buf, want)
    t_in(layers, [0, 3], buf, block_dim=LEGACY_KV_FIRST)
    for l, (t, b) in enumerate(zip(layers, before)):
        b[:, [0, 3]] = want[l].movedim(0, 1)
        assert torch.equal(t, b)


def test_triton_kernel_blocks_grouped_and_many_dims(interpret, monkeypatch):
    # vLLM group_kernel_blocks: [B*ratio, H, N, C] -> [B, ratio, H, N, C]; with BHLNC the
    # per-block dims stay strided. A 6-D cache with 5 non-mergeable dims falls back to torch.
    raw, layers = make_cache(ORDERS["BHLNC"], 2, 8, 2, 2, 8, torch.float16, seed=4)
    grouped = [t.unflatten(0, (4, 2)) for t in layers]
    check_case(raw, grouped, [3, 0], [1, 2], t_out, t_in)
    calls = []
    monkeypatch.setattr(swap, "swap_out", lambda *a, **k: calls.append(1) or expected_gather([odd], [4, 0]))
    odd = torch.randn(5, 3, 2, 3, 2, 3).permute(0, 5, 3, 1, 4, 2)
    assert torch.equal(t_out(odd, [4, 0]), expected_gather([odd], [4, 0])) and calls == [1]


def test_triton_fallback_without_triton(monkeypatch):
    _raw, layers = make_cache(ORDERS["LBHNC"], 2, 6, 1, 2, 8, torch.float32)
    monkeypatch.setattr(triton_swap, "HAS_TRITON", False)
    assert not triton_swap.triton_usable("cpu")
    assert torch.equal(triton_swap.triton_swap_out(layers, [2, 0]), expected_gather(layers, [2, 0]))
    with pytest.raises(RuntimeError, match="Triton cannot run"):
        triton_swap.triton_swap_out(layers, [2, 0], fallback=False)


@needs_vllm
def test_triton_on_real_vllm_views(interpret, kernel_only):
    from vllm.v1.kv_cache_interface import KVCacheLayout

    for layout in (KVCacheLayout.LBHNC, KVCacheLayout.LBNHC, KVCacheLayout.BLHNC):
        _, raw, layers = vllm_cache(layout, dtype=torch.bfloat16)
        before = raw.clone()
        buf = t_out(layers, [6, 2])
        assert torch.equal(bits(buf), bits(expected_gather(layers, [6, 2])))
        t_in(layers, [6, 2], buf)
        assert torch.equal(raw, before), layout.name


# ---- real GPU path (skipped here) ----------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (this machine has none)")
def test_gpu_swap_paths(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)  # compiled Triton on the GPU
    impls = [IMPLS["batched"], IMPLS["per_block"]]
    if triton_swap.triton_usable("cuda"):
        impls.append((t_out, t_in))
    for out_fn, in_fn in impls:
        for order in ORDERS.values():
            raw, layers = make_cache(order, 3, 64, 4, 16, 2 * 64, torch.float16, device="cuda")
            src, dst = [40, 3, 17, 9], [1, 63, 22, 8]
            want = expected_gather(layers, src).cpu()
            buf = out_fn(layers, src)
            assert buf.is_pinned() and torch.equal(buf, want)
            expected = expected_after_swap_in(raw, layers, dst, want.cuda())
            in_fn(layers, dst, buf)
            assert torch.equal(raw, expected)
