"""GPU cost model: presets, monotonicity, published-figure sanity checks, PCIe swap."""

import itertools
import math

import pytest

from autellix_ray.bench.cost_model import (
    LLAMA_3_1_8B,
    LLAMA_3_1_70B,
    PCIE4_X16,
    PRESETS,
    CostModel,
    PcieSwapModel,
    decode_tokens_per_s,
    get_preset,
)

ALL = sorted(PRESETS)
A100_8B = "a100-80gb/llama-3.1-8b"


def test_presets_present_and_lookup():
    for name in ("a100-80gb/llama-3.1-8b", "h100/llama-3.1-8b", "a100-80gb/llama-3.1-70b-tp4",
                 "h100/llama-3.1-70b-tp4"):
        assert name in PRESETS
    assert get_preset("h100/llama-3.1-70b-tp4").tp == 4
    with pytest.raises(ValueError, match="a100-80gb/llama-3.1-8b"):
        get_preset("tpu")


def test_model_dimensions_match_published_sizes():
    assert math.isclose(LLAMA_3_1_8B.num_params, 8.03e9, rel_tol=0.01)
    assert math.isclose(LLAMA_3_1_70B.num_params, 70.6e9, rel_tol=0.01)
    assert LLAMA_3_1_8B.kv_bytes_per_token() == 128 * 1024  # 2 x 32 layers x 8 heads x 128 x 2 B
    assert 300_000 < get_preset(A100_8B).kv_capacity_tokens() < 500_000


@pytest.mark.parametrize("name", ALL)
def test_step_time_is_monotonic_in_every_input(name):
    cm = PRESETS[name]
    series = {
        "prefill tokens": [cm.step_time_s(prefill_lens=[n]) for n in (1, 16, 128, 512, 2048, 8192)],
        "decode seqs": [cm.step_time_s(decode_context_lens=[1024] * b) for b in (1, 2, 8, 32, 128, 256)],
        "decode context": [cm.step_time_s(decode_context_lens=[k] * 32) for k in (1, 256, 1024, 4096, 16384)],
        "prefill context": [cm.step_time_s(prefill_lens=[256], prefill_context_lens=[c]) for c in (0, 1024, 8192)],
        "mixed batch": [cm.step_time_s(prefill_lens=[512], decode_context_lens=[2048] * b) for b in (0, 16, 64)],
    }
    for label, times in series.items():
        assert all(a <= b for a, b in itertools.pairwise(times)), (label, times)
        assert times[-1] > times[0], label


def test_empty_batch_and_bad_inputs():
    cm = get_preset(A100_8B)
    assert cm.step_time_s() == 0.0
    with pytest.raises(ValueError):
        cm.step_time_s(prefill_lens=[0])
    with pytest.raises(ValueError):
        cm.step_time_s(prefill_lens=[4], prefill_context_lens=[1, 2])
    with pytest.raises(ValueError):
        cm.step_cost_totals(num_decode_seqs=-1)
    with pytest.raises(ValueError, match="tp"):
        CostModel(cm.gpu, cm.model, tp=0)


def test_totals_fast_path_matches_the_list_form():
    cm = get_preset("h100/llama-3.1-70b-tp4")
    a = cm.step_cost(prefill_lens=[300, 40], prefill_context_lens=[1000, 0], decode_context_lens=[500, 900, 77])
    b = cm.step_cost_totals(
        num_prefill_tokens=340, num_prefill_seqs=2,
        prefill_attention_pairs=300 * 1000 + 300 * 301 / 2 + 40 * 41 / 2, prefill_kv_tokens=1000 + 680,
        num_decode_seqs=3, decode_context_tokens=1477,
    )
    assert a == b and a.comm_s > 0


def test_sanity_against_published_figures():
    a100 = get_preset(A100_8B)
    # Batch-1 decode of an 8B model on A100-80GB: ~9-11 ms/token (SGLang/vLLM, ~90-110 tok/s).
    assert 8e-3 <= a100.step_time_s(decode_context_lens=[1024]) <= 14e-3
    # A100-40GB, vLLM 0.23, 1024 in / 128 out at concurrency 1: ~75 tok/s (13.3 ms).
    assert math.isclose(get_preset("a100-40gb/llama-3.1-8b").step_time_s(decode_context_lens=[1100]), 13.3e-3,
                        rel_tol=0.15)
    # Moderate batch (32 sequences, 1K context): 10-30 ms per decode step.
    moderate = a100.step_time_s(decode_context_lens=[1024] * 32)
    assert 10e-3 <= moderate <= 30e-3
    assert a100.step_cost(decode_context_lens=[1024] * 32).bound == "memory"
    # A 2K-token prefill is compute bound, ~0.1-0.25 s (TTFT of an 8B model on A100).
    prefill = a100.step_cost(prefill_lens=[2048])
    assert prefill.bound == "compute" and 0.1 <= prefill.total_s <= 0.25
    # H100 beats A100; 70B on TP4 decodes in ~20-40 ms on A100 and pays a communication term.
    assert get_preset("h100/llama-3.1-8b").step_time_s(decode_context_lens=[1024] * 32) < moderate
    big = get_preset("a100-80gb/llama-3.1-70b-tp4").step_cost(decode_context_lens=[1024] * 8)
    assert 20e-3 <= big.total_s <= 40e-3 and big.comm_s > 0
    assert a100.step_cost(decode_context_lens=[1024]).comm_s == 0
    # Batching raises throughput by well over an order of magnitude while memory bound.
    assert decode_tokens_per_s(a100, 64, 1024) > 20 * decode_tokens_per_s(a100, 1, 1024)


def test_pcie_batched_swap_beats_per_block_copies():
    cm = get_preset(A100_8B)
    assert PCIE4_X16.swap_time_s(cm, 0) == 0.0
    for blocks in (10, 100, 1000):
        per_block = PCIE4_X16.swap_time_s(cm, blocks, batched=False)
        batched = PCIE4_X16.swap_time_s(cm, blocks, batched=True)
        assert batched < per_block
    ratio = PCIE4_X16.swap_time_s(cm, 1000, batched=False) / PCIE4_X16.swap_time_s(cm, 1000)
    assert 3 <= ratio <= 7  # the paper reports 3-7x less swap time
    # 1000 blocks x 16 tokens x 128 KiB = 2.1 GB at 25 GB/s: ~84 ms plus overheads.
    assert math.isclose(PCIE4_X16.swap_time_s(cm, 1000), 2.097e9 / 25e9, rel_tol=0.05)
    link = PcieSwapModel(bandwidth_Bps=10e9, per_transfer_latency_s=1e-5)
    assert link.transfer_time_s(1e9, 3) == pytest.approx(0.1 + 3e-5)
    with pytest.raises(ValueError):
        link.transfer_time_s(10, 0)
    with pytest.raises(ValueError):
        PcieSwapModel(bandwidth_Bps=0)


def test_replay_config_header_quotes_the_kv_capacity_the_code_computes():
    """bench/replay/config.py's header states KV sizes; they must be what the presets give."""
    import re

    from autellix_ray.bench.replay import config

    header = config.__doc__
    for preset in ("a100-80gb/llama-3.1-8b", "a100-40gb/llama-3.1-8b"):
        tokens = get_preset(preset).kv_capacity_tokens(0.9)
        assert f"{tokens:,} tokens = {tokens // 16:,} blocks" in re.sub(r"\s+", " ", header)
