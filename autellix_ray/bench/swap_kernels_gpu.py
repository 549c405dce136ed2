"""GPU ONLY: timing of KV swap kernels, one copy per (layer, block) vs ONE batched transfer.

*** NOT RUN on the development machine (2 CPU cores, no GPU): this script has produced no
numbers yet. Do not quote results from it until it has been run on a CUDA machine. ***

Usage (on a CUDA machine):
    python -m autellix_ray.bench.swap_kernels_gpu [--layers 32 --heads 8 --head-size 128]
        [--block-sizes 16 32] [--counts 1 8 64 256] [--layouts LBNHC LBHNC] [--json out.json]

For each vLLM 0.32 layout, block size and swap size it builds a cache the way vLLM 0.32
does (all layers as strided views of one buffer, see kernels/swap.py; ``strided_cache``,
which tests/kernels/test_swap.py also uses), picks random unsorted block ids, and times
into/out of a preallocated pinned host buffer:
  per_block  swap.per_block_swap_out/in  (one async copy per layer and block, one sync)
  batched    swap.swap_out/in            (device gather + one D2H copy / one H2D + scatter)
  triton     triton_swap.triton_swap_out/in  (Triton gather into staging + one copy)
Results of the three methods are checked equal before timing. Exits with status 2 and a
message when CUDA is unavailable.
"""

import argparse
import functools
import json
import random
import sys
import time

import torch

from autellix_ray.kernels import swap, triton_swap

ORDERS = {  # physical order of logical [L, B, H, N, C] (vllm/v1/kv_cache_layout.py)
    "LBHNC": (0, 1, 2, 3, 4),
    "LBNHC": (0, 1, 3, 2, 4),
    "LHBNC": (0, 2, 1, 3, 4),
    "BLHNC": (1, 0, 2, 3, 4),
    "BLNHC": (1, 0, 3, 2, 4),
    "BHLNC": (1, 2, 0, 3, 4),
}


def strided_cache(order, shape, dtype, *, guard=0, seed=None, device="cuda"):
    """(raw buffer, per-layer [B, H, N, C] views) of logical ``shape`` [L, B, H, N, C] laid out
    in physical ``order``, random contents, ``guard`` spare elements on each side.
    ``seed``: drawn on the CPU from a seeded generator (same contents on any device)."""
    strides, cur = [0] * 5, 1
    for d in reversed(order):
        strides[d], cur = cur, cur * shape[d]
    generator = None if seed is None else torch.Generator().manual_seed(seed)
    raw = torch.randn(cur + 2 * guard, generator=generator, device="cpu" if generator else device)
    raw = raw.to(dtype).to(device)
    view = torch.as_strided(raw, shape, strides, storage_offset=guard)
    return raw, [view[l] for l in range(shape[0])]


def timed(fn, iters: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters


def methods():
    out = {
        "per_block": (
            lambda kv, ids, buf: swap.per_block_swap_out(kv, ids, buf, non_blocking=True),
            lambda kv, ids, buf: swap.per_block_swap_in(kv, ids, buf, non_blocking=True),
        ),
        "batched": (swap.swap_out, swap.swap_in),
    }
    if triton_swap.triton_usable("cuda") and not triton_swap._interpret():
        out["triton"] = (
            lambda kv, ids, buf: triton_swap.triton_swap_out(kv, ids, buf, fallback=False),
            lambda kv, ids, buf: triton_swap.triton_swap_in(kv, ids, buf, fallback=False),
        )
    else:
        print(
            "note: Triton unavailable (or TRITON_INTERPRET set): skipping the triton method", file=sys.stderr
        )
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--heads", type=int, default=8, help="KV heads per layer")
    p.add_argument("--head-size", type=int, default=128)
    p.add_argument("--dtype", default="float16", choices=["float16", "bfloat16", "float32"])
    p.add_argument("--block-sizes", type=int, nargs="+", default=[16, 32])
    p.add_argument("--counts", type=int, nargs="+", default=[1, 8, 64, 256])
    p.add_argument("--layouts", nargs="+", default=["LBNHC", "LBHNC"], choices=sorted(ORDERS))
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "swap_kernels_gpu: CUDA is not available on this machine; this benchmark only runs "
            "on a GPU. Nothing was measured.",
            file=sys.stderr,
        )
        return 2

    dtype = getattr(torch, args.dtype)
    rng = random.Random(0)
    rows = []
    print(
        f"# {torch.cuda.get_device_name()}  torch {torch.__version__}  {args.layers} layers, "
        f"{args.heads} kv heads, head {args.head_size}, {args.dtype}"
    )
    print(
        f"{'layout':7} {'bs':>4} {'blocks':>6} {'MiB':>9} {'method':10} {'out ms':>9} {'in ms':>9} {'out GB/s':>9} {'in GB/s':>9}"
    )
    for layout in args.layouts:
        for bs in args.block_sizes:
            num_blocks = 2 * max(args.counts)
            _, kv = strided_cache(
                ORDERS[layout], (args.layers, num_blocks, args.heads, bs, 2 * args.head_size), dtype
            )
            for n in args.counts:
                ids = rng.sample(range(num_blocks), n)
                nbytes = swap.swap_nbytes(kv, n)
                buf = swap.alloc_host_buffer(kv, n, pin=True)
                ref = swap.swap_out(kv, ids).clone()
                for name, (out_fn, in_fn) in methods().items():
                    buf.zero_()
                    out_fn(kv, ids, buf)
                    torch.cuda.synchronize()
                    assert torch.equal(buf, ref), f"{name} gathered wrong data"
                    t_out = timed(functools.partial(out_fn, kv, ids, buf), args.iters)
                    # swap-in to the same ids: the cache keeps its contents between iterations
                    t_in = timed(functools.partial(in_fn, kv, ids, buf), args.iters)
                    row = {
                        "layout": layout,
                        "block_size": bs,
                        "blocks": n,
                        "bytes": nbytes,
                        "method": name,
                        "out_ms": t_out * 1e3,
                        "in_ms": t_in * 1e3,
                        "out_gbps": nbytes / t_out / 1e9,
                        "in_gbps": nbytes / t_in / 1e9,
                    }
                    rows.append(row)
                    print(
                        f"{layout:7} {bs:>4} {n:>6} {nbytes / 2**20:>9.1f} {name:10} {row['out_ms']:>9.3f} "
                        f"{row['in_ms']:>9.3f} {row['out_gbps']:>9.2f} {row['in_gbps']:>9.2f}"
                    )
            del kv
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "args": vars(args), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
