"""What a replay engine is: GPU limits, and the policies (baselines and ours) by name.

Engine limits (``EngineConfig``), defaults for one A100-SXM4-80GB serving Llama-3.1-8B:

- ``num_gpu_blocks``: KV blocks of 16 tokens that fit next to the weights at vLLM's
  default ``gpu_memory_utilization=0.9``: ``CostModel.kv_capacity_tokens(0.9) // 16``
  = (0.9 x 80 GB - 15.0 GB layers + lm_head - 1.05 GB embedding) / 128 KiB per token
  (2 x 32 layers x 8 KV heads x 128 x 2 B) = 426,788 tokens = 26,674 blocks (the
  ``a100-40gb`` preset: 152,130 tokens = 9,508 blocks). vLLM logs about 450K tokens of KV
  cache for this model and GPU; activations are ignored here. A test checks these numbers.
- ``max_num_seqs=256`` and ``max_num_batched_tokens=8192``: vLLM 0.32's defaults on an
  A100 for the ``LLM`` class (``EngineArgs._set_default_args``; ``vllm serve`` on an A100
  uses 2048 batched tokens). Calibration bursts gave the same latencies with 2048 (ShareGPT
  400 programs: 37.28 vs 37.31 ms/token; BFCL 600: 155.9 vs 155.6).
- ``max_model_len=32768``: above every workload's longest context (ShareGPT caps its
  conversations at 16,384 tokens); Llama-3.1 allows 128K, which only matters for the
  length check. The tiny model that provides the tokenizer/config metadata has 4096
  positions, so ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`` is set before configs are built
  (no forward pass ever runs, so the positions are never used).

Policies (``POLICIES``): every one runs through vLLM 0.32's own ``Scheduler`` with
chunked prefill on (V1 always chunks; vLLM v0 also turned it on by default for
Llama-3.1's 128K context):

- ``vllm``: stock scheduler, FCFS, prefix caching OFF (the paper's "vLLM").
- ``vllm-opt``: stock scheduler, FCFS, prefix caching ON (the paper's "vLLM-opt";
  multi-step scheduling does not exist in V1, whose async scheduling is the successor).
- ``mlfq``: our plugin with FastServe-style MLFQ (new calls enter Q1, quanta in wall
  time), prefix caching ON.
- ``plas`` / ``atlas``: our plugin with the paper's PLAS / ATLAS (``PAPER_SETTINGS``:
  service = wall time of the steps a call was in, Q1 first, FCFS by call inside a queue, no
  bound on a proactive victim's recompute), prefix caching ON.
- ``autellix`` / ``autellix-atlas``: the plugin's shipped defaults with PLAS / ATLAS
  (load-invariant work as service, queues in the learned Gittins order, programs in a stable
  order inside a queue, bounded victim recompute; see ``autellix_ray/vllm/settings.py``).
- ``program-fcfs``: calls ordered by their program's first arrival (one queue, program
  order, no anti-starvation): the order Continuum-style systems use.
- ``srpt``: our plugin with the clairvoyant SRPT oracle: each call carries
  ``remaining_s`` (see ``engine.call_work_s``), prefix caching ON.
- ``plas-swap`` / ``atlas-swap``: the paper's ``plas`` / ``atlas`` with the swap connector
  (``autellix_ray.vllm.swap_connector``, its scheduler side, unchanged): a preempted call's
  KV goes to a host pool of ``EngineConfig.swap_host_pool_gib`` and is loaded back on
  resume instead of recomputed; each step is charged the PCIe time of its swaps
  (``PcieSwapModel.swap_time_s``, one batched transfer per call and direction).

Plugin parameters (queue boundaries, beta, ``max_preemptions_per_step``) are the plugin's
defaults unless a sweep overrides them (``PolicySpec.with_settings``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from autellix_ray.bench.cost_model import CostModel, get_preset

os.environ.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")

BLOCK_SIZE = 16
DEFAULT_PRESET = "a100-80gb/llama-3.1-8b"


@dataclass(frozen=True)
class EngineConfig:
    preset: str = DEFAULT_PRESET
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    max_model_len: int = 32768
    num_gpu_blocks: int | None = None  # None: what the preset's GPU holds (see module header)
    swap_host_pool_gib: float = 64.0  # pinned host memory for swapped KV (swap policies only)

    @property
    def cost_model(self) -> CostModel:
        return get_preset(self.preset)

    @property
    def blocks(self) -> int:
        if self.num_gpu_blocks is not None:
            return self.num_gpu_blocks
        return self.cost_model.kv_capacity_tokens(self.gpu_memory_utilization) // BLOCK_SIZE

    def describe(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "gpu_memory_utilization": self.gpu_memory_utilization,
            "num_gpu_blocks": self.blocks,
            "block_size": BLOCK_SIZE,
            "kv_capacity_tokens": self.blocks * BLOCK_SIZE,
            "max_num_seqs": self.max_num_seqs,
            "max_num_batched_tokens": self.max_num_batched_tokens,
            "max_model_len": self.max_model_len,
            "enable_chunked_prefill": True,
            "swap_host_pool_gib": self.swap_host_pool_gib,
        }


@dataclass(frozen=True)
class PolicySpec:
    name: str  # label in results ("vllm-opt", "plas", ...)
    autellix_policy: str | None  # None: vLLM's stock Scheduler
    prefix_caching: bool = True
    settings: dict[str, Any] = field(default_factory=dict)  # plugin settings (see vllm/settings.py)
    swap: bool = False  # preempted calls' KV swapped to host memory (the swap connector)

    @property
    def clairvoyant(self) -> bool:
        return self.autellix_policy == "srpt"

    def with_settings(self, label: str | None = None, **settings: Any) -> PolicySpec:
        if self.autellix_policy is None:
            raise ValueError(f"{self.name} is stock vLLM: it takes no plugin settings")
        return replace(self, name=label or self.name, settings={**self.settings, **settings})

    def describe(self) -> dict[str, Any]:
        return {
            "scheduler": "vllm Scheduler" if self.autellix_policy is None else "AutellixScheduler",
            "autellix_policy": self.autellix_policy,
            "prefix_caching": self.prefix_caching,
            "chunked_prefill": True,
            "settings": dict(self.settings),
            "swap": self.swap,
        }


# The paper's PLAS/ATLAS (the plugin's defaults are load-invariant, Gittins-ordered, program-ordered
# inside a queue, and bound the recompute cost of a proactive victim; the paper does none of these).
PAPER_SETTINGS: dict[str, Any] = {
    "service_unit": "wall", "queue_order": "attained", "order_within_queue": "call",
    "preempt_max_victim_tokens": None, "beta_vs_median": None,
}
PROGRAM_FCFS_SETTINGS: dict[str, Any] = {
    "boundaries_s": (0.0,), "beta": None, "order_within_queue": "program", "queue_order": "attained",
}

POLICIES: dict[str, PolicySpec] = {
    "vllm": PolicySpec("vllm", None, prefix_caching=False),
    "vllm-opt": PolicySpec("vllm-opt", None, prefix_caching=True),
    "mlfq": PolicySpec("mlfq", "mlfq", settings={"service_unit": "wall", "beta_vs_median": None}),
    "plas": PolicySpec("plas", "plas", settings=PAPER_SETTINGS),
    "atlas": PolicySpec("atlas", "atlas", settings=PAPER_SETTINGS),
    "autellix": PolicySpec("autellix", "plas"),
    "autellix-atlas": PolicySpec("autellix-atlas", "atlas"),
    "program-fcfs": PolicySpec("program-fcfs", "plas", settings=PROGRAM_FCFS_SETTINGS),
    "srpt": PolicySpec("srpt", "srpt"),
    "plas-swap": PolicySpec("plas-swap", "plas", settings=PAPER_SETTINGS, swap=True),
    "atlas-swap": PolicySpec("atlas-swap", "atlas", settings=PAPER_SETTINGS, swap=True),
}


def get_policy(name: str | PolicySpec) -> PolicySpec:
    if isinstance(name, PolicySpec):
        return name
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown replay policy {name!r}; choose one of {sorted(POLICIES)}") from None
