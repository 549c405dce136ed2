"""GPU cost model for replay: the time of one engine step, and of a KV swap over PCIe.

Step time (roofline, per GPU of a tensor-parallel group of ``tp`` GPUs)::

    time = max(compute_s, memory_s) + comm_s + step_overhead_s
    compute_s = FLOPs / (peak_flops * compute_efficiency)
    memory_s  = bytes / (hbm_bandwidth * memory_efficiency)
    comm_s    = 2 * num_layers * (allreduce_latency + 2 (tp-1)/tp * T * hidden * 2 B
                                  / (link_bandwidth * link_efficiency))      (0 if tp == 1)

for a batch of T = P + D tokens: prefill chunks of ``n_i`` new tokens after ``c_i``
cached ones (P = sum n_i) and D decoding sequences with context lengths ``k_j``:

    FLOPs = [2 * layer_params * T                     (every matmul, every token)
             + 2 * hidden * vocab * (D + #prefills)    (lm_head, sampled positions only)
             + 4 * num_layers * num_heads * head_dim * (sum_i n_i c_i + n_i (n_i+1)/2
                                                         + sum_j k_j)]   (QK^T and AV)  / tp
    bytes = (layer_params + lm_head_params) * bytes_per_param / tp     (weights, once)
            + kv_bytes_per_token * (sum_i (c_i + 2 n_i) + sum_j (k_j + 1))
                                 (read cached K/V, write new K/V; KV heads split by tp)

kv_bytes_per_token = 2 (K, V) * num_layers * num_kv_heads * head_dim * 2 B / tp.
Activations, norms, rotary and sampling are ignored (they are small next to these).

Constants and sources:

- A100-SXM4-80GB: 312 TFLOP/s dense BF16, 2.039 TB/s HBM2e, NVLink3 600 GB/s total
  (300 GB/s each way); A100-SXM4-40GB: 312 TFLOP/s, 1.555 TB/s (NVIDIA A100 datasheet).
- H100-SXM5-80GB: 989 TFLOP/s dense BF16 (1979 is with sparsity), 3.35 TB/s HBM3,
  NVLink4 900 GB/s total (450 GB/s each way) (NVIDIA H100 datasheet).
- Llama-3.1-8B: 32 layers, hidden 4096, 32 heads, 8 KV heads, head_dim 128, MLP 14336,
  vocab 128256, untied lm_head (8.03 B params); Llama-3.1-70B: 80 layers, hidden 8192,
  64 heads, 8 KV heads, MLP 28672 (70.6 B) (their Hugging Face config.json files).
- Efficiencies are our calibration, not datasheet values: compute 0.6 (large-batch
  prefill MFU of vLLM-class engines), memory 0.85 (decode reaches 75-90% of HBM peak),
  link 0.7 (NCCL all-reduce bus bandwidth ~70-80% of NVLink), all-reduce latency 8 us,
  per-step overhead 1.5 ms (vLLM V1 scheduling + sampling + launch with CUDA graphs).
- PCIe 4.0 x16: 32 GB/s raw, ~25 GB/s effective host<->device with pinned memory;
  ~5 us fixed cost per cudaMemcpyAsync (launch + DMA setup) (our estimate).

Sanity checks (tests/unit/test_cost_model.py; published figures quoted approximately):
Llama-3.1-8B batch-1 decode is ~10 ms on A100-80GB (~100 tok/s is the commonly reported
single-stream figure for 8B models on 80 GB A100-class GPUs) and ~13 ms on A100-40GB (a
public vLLM 0.23 sweep of Llama-3.1-8B-Instruct on one A100-40GB measured ~75 tok/s,
13.3 ms, at concurrency 1); a moderate batch (32 sequences, 1K context) decodes in 10-30
ms; a 2K-token prefill takes 0.1-0.25 s; H100 is faster than A100; 70B on TP4 decodes in
~20-40 ms.

Swap (``PcieSwapModel``): ``time = num_transfers * per_transfer_latency + bytes /
bandwidth``. vLLM's per-block swap issues one copy per (block, layer, K or V): blocks x
layers x 2 transfers; Autellix's batched swap gathers every block into one contiguous
buffer on the GPU (2 x bytes over HBM) and issues one transfer. With these constants a
1000-block swap of Llama-3.1-8B is ~4.7x faster batched, inside the paper's 3-7x.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BYTES_BF16 = 2


@dataclass(frozen=True)
class GpuSpec:
    name: str
    peak_flops: float  # dense BF16 FLOP/s
    hbm_bandwidth_Bps: float  # bytes/s
    hbm_bytes: float  # memory capacity in bytes
    link_bandwidth_Bps: float  # NVLink, one direction, bytes/s per GPU


@dataclass(frozen=True)
class ModelSpec:
    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    bytes_per_param: int = BYTES_BF16
    kv_bytes_per_elem: int = BYTES_BF16

    @property
    def layer_params(self) -> int:
        """Matmul parameters of all decoder layers (q, k, v, o, gate, up, down)."""
        h, a, kv = self.hidden_size, self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        attn = h * a + 2 * h * kv + a * h
        mlp = 3 * h * self.intermediate_size
        return self.num_layers * (attn + mlp)

    @property
    def lm_head_params(self) -> int:
        return self.hidden_size * self.vocab_size

    @property
    def num_params(self) -> int:
        """Total parameters: layers + input embedding + untied lm_head (norms ignored)."""
        return self.layer_params + 2 * self.hidden_size * self.vocab_size

    def kv_bytes_per_token(self, tp: int = 1) -> float:
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes_per_elem / tp


@dataclass(frozen=True)
class StepCost:
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    flops: float  # per GPU
    bytes: float  # HBM bytes per GPU

    @property
    def total_s(self) -> float:
        return max(self.compute_s, self.memory_s) + self.comm_s + self.overhead_s

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True)
class CostModel:
    gpu: GpuSpec
    model: ModelSpec
    tp: int = 1  # tensor-parallel GPUs per engine
    compute_efficiency: float = 0.6
    memory_efficiency: float = 0.85
    link_efficiency: float = 0.7
    allreduce_latency_s: float = 8e-6
    step_overhead_s: float = 1.5e-3

    def __post_init__(self) -> None:
        if isinstance(self.tp, bool) or not isinstance(self.tp, int) or self.tp < 1:
            raise ValueError(f"tp must be an int >= 1, got {self.tp!r}")
        for name in ("compute_efficiency", "memory_efficiency", "link_efficiency"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        for name in ("allreduce_latency_s", "step_overhead_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    @property
    def weight_bytes_per_gpu(self) -> float:
        m = self.model
        return (m.layer_params + m.lm_head_params) * m.bytes_per_param / self.tp

    def kv_capacity_tokens(self, gpu_memory_utilization: float = 0.9) -> int:
        """Tokens of KV cache that fit next to the weights (activations ignored)."""
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization!r}")
        embed = self.model.hidden_size * self.model.vocab_size * self.model.bytes_per_param / self.tp
        free = self.gpu.hbm_bytes * gpu_memory_utilization - self.weight_bytes_per_gpu - embed
        return max(0, int(free // self.model.kv_bytes_per_token(self.tp)))

    def step_cost_totals(
        self,
        num_prefill_tokens: int = 0,
        num_prefill_seqs: int = 0,
        prefill_attention_pairs: float = 0,
        prefill_kv_tokens: float = 0,
        num_decode_seqs: int = 0,
        decode_context_tokens: float = 0,
    ) -> StepCost:
        """Step cost from batch totals (the fast path for simulators).

        ``prefill_attention_pairs`` = sum_i n_i c_i + n_i (n_i + 1) / 2;
        ``prefill_kv_tokens`` = sum_i c_i + 2 n_i; ``decode_context_tokens`` = sum_j k_j.
        """
        values = (num_prefill_tokens, num_prefill_seqs, prefill_attention_pairs, prefill_kv_tokens,
                  num_decode_seqs, decode_context_tokens)
        if any(v < 0 for v in values):
            raise ValueError(f"batch totals must be >= 0, got {values}")
        m, tp = self.model, self.tp
        tokens = num_prefill_tokens + num_decode_seqs
        if tokens == 0:
            return StepCost(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        attn = 4 * m.num_layers * m.num_heads * m.head_dim * (prefill_attention_pairs + decode_context_tokens)
        flops = (2 * m.layer_params * tokens + 2 * m.lm_head_params * (num_decode_seqs + num_prefill_seqs) + attn) / tp
        kv_tokens = prefill_kv_tokens + decode_context_tokens + num_decode_seqs
        num_bytes = self.weight_bytes_per_gpu + m.kv_bytes_per_token(tp) * kv_tokens
        comm = 0.0
        if tp > 1:
            message = tokens * m.hidden_size * BYTES_BF16
            per_allreduce = self.allreduce_latency_s + 2 * (tp - 1) / tp * message / (
                self.gpu.link_bandwidth_Bps * self.link_efficiency
            )
            comm = 2 * m.num_layers * per_allreduce
        return StepCost(
            compute_s=flops / (self.gpu.peak_flops * self.compute_efficiency),
            memory_s=num_bytes / (self.gpu.hbm_bandwidth_Bps * self.memory_efficiency),
            comm_s=comm,
            overhead_s=self.step_overhead_s,
            flops=flops,
            bytes=num_bytes,
        )

    def step_cost(
        self,
        prefill_lens: Sequence[int] = (),
        decode_context_lens: Sequence[int] = (),
        prefill_context_lens: Sequence[int] | None = None,
    ) -> StepCost:
        """Step cost of a batch: prefill chunks of ``prefill_lens[i]`` new tokens after
        ``prefill_context_lens[i]`` cached tokens (default 0), plus one decode token for
        each sequence whose context length is in ``decode_context_lens``."""
        if prefill_context_lens is None:
            prefill_context_lens = [0] * len(prefill_lens)
        if len(prefill_context_lens) != len(prefill_lens):
            raise ValueError("prefill_context_lens must have one entry per prefill chunk")
        if any(n < 1 for n in prefill_lens) or any(c < 0 for c in prefill_context_lens):
            raise ValueError("prefill chunks need >= 1 new token and >= 0 cached tokens")
        if any(k < 1 for k in decode_context_lens):
            raise ValueError("decode context lengths must be >= 1")
        pairs = sum(n * c + n * (n + 1) / 2 for n, c in zip(prefill_lens, prefill_context_lens))
        return self.step_cost_totals(
            num_prefill_tokens=sum(prefill_lens),
            num_prefill_seqs=len(prefill_lens),
            prefill_attention_pairs=pairs,
            prefill_kv_tokens=sum(prefill_context_lens) + 2 * sum(prefill_lens),
            num_decode_seqs=len(decode_context_lens),
            decode_context_tokens=sum(decode_context_lens),
        )

    def step_time_s(self, *batch: Sequence[int] | None, **named_batch: Sequence[int] | None) -> float:
        """The step's duration: ``step_cost(...).total_s``, same arguments."""
        return self.step_cost(*batch, **named_batch).total_s


@dataclass(frozen=True)
class PcieSwapModel:
    bandwidth_Bps: float = 25e9  # PCIe 4.0 x16 effective, pinned host memory
    per_transfer_latency_s: float = 5e-6  # launch + DMA setup per cudaMemcpyAsync

    def __post_init__(self) -> None:
        if not self.bandwidth_Bps > 0 or self.per_transfer_latency_s < 0:
            raise ValueError("bandwidth_Bps must be > 0 and per_transfer_latency_s >= 0")

    def transfer_time_s(self, num_bytes: float, num_transfers: int = 1) -> float:
        if num_bytes < 0 or num_transfers < 0 or (num_bytes > 0 and num_transfers == 0):
            raise ValueError(f"bad transfer: {num_bytes} bytes in {num_transfers} transfers")
        return num_transfers * self.per_transfer_latency_s + num_bytes / self.bandwidth_Bps

    def swap_time_s(self, cost_model: CostModel, num_blocks: int, block_size: int = 16, batched: bool = True) -> float:
        """Time to move ``num_blocks`` KV blocks of ``block_size`` tokens one way (per GPU).

        ``batched=False``: one copy per (block, layer, K/V), as vLLM's per-block swap.
        ``batched=True``: a GPU gather into one buffer, then a single transfer (Autellix).
        """
        if num_blocks < 0 or block_size < 1:
            raise ValueError(f"need num_blocks >= 0 and block_size >= 1, got {num_blocks}, {block_size}")
        if num_blocks == 0:
            return 0.0
        m = cost_model.model
        total = num_blocks * block_size * m.kv_bytes_per_token(cost_model.tp)
        if not batched:
            return self.transfer_time_s(total, num_blocks * m.num_layers * 2)
        gather = 2 * total / (cost_model.gpu.hbm_bandwidth_Bps * cost_model.memory_efficiency)
        return gather + self.transfer_time_s(total, 1)


A100_80GB = GpuSpec("A100-SXM4-80GB", 312e12, 2.039e12, 80e9, 300e9)
A100_40GB = GpuSpec("A100-SXM4-40GB", 312e12, 1.555e12, 40e9, 300e9)
H100_SXM = GpuSpec("H100-SXM5-80GB", 989e12, 3.35e12, 80e9, 450e9)
LLAMA_3_1_8B = ModelSpec("Llama-3.1-8B", 32, 4096, 32, 8, 128, 14336, 128256)
LLAMA_3_1_70B = ModelSpec("Llama-3.1-70B", 80, 8192, 64, 8, 128, 28672, 128256)

PRESETS: dict[str, CostModel] = {
    "a100-80gb/llama-3.1-8b": CostModel(A100_80GB, LLAMA_3_1_8B),
    "a100-40gb/llama-3.1-8b": CostModel(A100_40GB, LLAMA_3_1_8B),
    "h100/llama-3.1-8b": CostModel(H100_SXM, LLAMA_3_1_8B),
    "a100-80gb/llama-3.1-70b-tp4": CostModel(A100_80GB, LLAMA_3_1_70B, tp=4),
    "h100/llama-3.1-70b-tp4": CostModel(H100_SXM, LLAMA_3_1_70B, tp=4),
}
PCIE4_X16 = PcieSwapModel()


def get_preset(name: str) -> CostModel:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown cost-model preset {name!r}; choose one of {sorted(PRESETS)}") from None


def decode_tokens_per_s(cost_model: CostModel, batch_size: int, context_len: int) -> float:
    """Aggregate decode throughput of a steady batch (a convenience for sanity checks)."""
    if batch_size < 1 or context_len < 1:
        raise ValueError("batch_size and context_len must be >= 1")
    return batch_size / cost_model.step_time_s(decode_context_lens=[context_len] * batch_size)


__all__ = [
    "A100_40GB",
    "A100_80GB",
    "H100_SXM",
    "LLAMA_3_1_8B",
    "LLAMA_3_1_70B",
    "PCIE4_X16",
    "PRESETS",
    "CostModel",
    "GpuSpec",
    "ModelSpec",
    "PcieSwapModel",
    "StepCost",
    "decode_tokens_per_s",
    "get_preset",
]
