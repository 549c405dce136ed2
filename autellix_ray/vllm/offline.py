"""Drive a vLLM scheduler without a model, the way vLLM's own scheduler tests do.

No engine and no forward pass: the caller builds requests, calls ``schedule()``,
makes up the model's output (one sampled token per scheduled request whose
prefill is complete) and feeds it to ``update_from_output``; the plugin's clock is
a ``FakeClock`` that moves only when a step runs. Used by the direct scheduler
tests and the scheduler-overhead benchmark.
"""

from __future__ import annotations

import itertools
import zlib

import torch
from vllm.config import CacheConfig, KVTransferConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.sampling_params import SamplingParams
from vllm.utils.hashing import sha256
from vllm.v1.core.kv_cache_utils import get_request_block_hasher, init_none_hash
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request
from vllm.v1.structured_output import StructuredOutputManager

from autellix_ray.vllm import autellix_engine_kwargs
from autellix_ray.vllm.scheduler import AutellixScheduler

BLOCK_SIZE = 16


class FakeClock:
    """The plugin's clock in these tests: time moves only when a step runs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


EOS = 2
_hash_ready = False


def make_scheduler(
    model_path: str,
    policy: str | None = "plas",
    *,
    max_num_seqs: int = 8,
    max_num_batched_tokens: int = 2048,
    max_model_len: int = 2048,
    num_blocks: int = 1000,
    enable_prefix_caching: bool = True,
    kv_transfer_config: dict | None = None,
    **settings,
) -> Scheduler:
    """A scheduler over a fake KV cache of ``num_blocks`` blocks (one layer, one KV head of 64,
    float32); policy None = stock vLLM; ``kv_transfer_config`` selects a KV connector."""
    kwargs = autellix_engine_kwargs(policy, **settings) if policy else {}
    scheduler_config = SchedulerConfig(
        max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens, max_model_len=max_model_len,
        enable_chunked_prefill=True, is_encoder_decoder=False,
    )
    vllm_config = VllmConfig(
        scheduler_config=scheduler_config,
        model_config=ModelConfig(model=model_path, dtype="float32", seed=0, max_model_len=max_model_len),
        cache_config=CacheConfig(block_size=BLOCK_SIZE, enable_prefix_caching=enable_prefix_caching),
        additional_config=kwargs.get("additional_config", {}),
        kv_transfer_config=KVTransferConfig(**kv_transfer_config) if kv_transfer_config else None,
    )
    vllm_config.cache_config.num_gpu_blocks = num_blocks
    cls = AutellixScheduler if policy else Scheduler
    scheduler = cls(
        vllm_config=vllm_config, kv_cache_config=_fake_kv_cache(num_blocks), block_size=BLOCK_SIZE,
        structured_output_manager=StructuredOutputManager(vllm_config), log_stats=False,
    )
    if policy:
        scheduler.clock = FakeClock()
    return scheduler


def _fake_kv_cache(num_blocks: int) -> KVCacheConfig:
    """``num_blocks`` blocks of one layer with one KV head of 64 (float32); no tensors behind them."""
    spec = FullAttentionSpec(block_size=BLOCK_SIZE, num_kv_heads=1, head_size=64, dtype=torch.float32)
    groups = [KVCacheGroupSpec(["layer"], spec)]
    return KVCacheConfig(num_blocks=num_blocks, kv_cache_tensors=[], kv_cache_groups=groups)


_ids = itertools.count()


def make_request(
    prompt_len: int = 16,
    max_tokens: int = 8,
    *,
    program: str | None = None,
    thread: str | None = None,
    parents: list[str] | None = None,
    prompt: list[int] | None = None,
    request_id: str | None = None,
    extra: dict | None = None,
) -> Request:
    global _hash_ready
    if not _hash_ready:
        init_none_hash(sha256)
        _hash_ready = True
    extra = dict(extra or {})
    if thread is not None:
        extra["thread_id"] = thread
    if parents:
        extra["parent_thread_ids"] = parents
    rid = request_id or f"r{next(_ids)}"
    seed = zlib.crc32(rid.encode())
    tokens = prompt if prompt is not None else [3 + (seed + i * 7) % 400 for i in range(prompt_len)]
    return Request(
        request_id=rid,
        prompt_token_ids=tokens,
        sampling_params=SamplingParams(max_tokens=max_tokens, ignore_eos=True, extra_args=extra or None),
        pooling_params=None,
        block_hasher=get_request_block_hasher(BLOCK_SIZE, sha256),
        session_id=program,
    )


def fake_output(scheduler: Scheduler, scheduler_output) -> ModelRunnerOutput:
    """One new token for every scheduled request whose prompt is fully computed."""
    req_ids, sampled = [], []
    for rid in scheduler_output.num_scheduled_tokens:
        request = scheduler.requests[rid]
        req_ids.append(rid)
        done_prefill = request.num_computed_tokens >= request.num_tokens
        sampled.append([7] if done_prefill else [])
    return ModelRunnerOutput(
        req_ids=req_ids,
        req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
        sampled_token_ids=sampled,
    )


def step(scheduler: Scheduler, step_s: float = 0.1):
    """One engine step of ``step_s`` seconds on the plugin's fake clock.

    Returns (scheduler_output, {request_id: EngineCoreOutput} of the calls that finished).
    """
    out = scheduler.schedule()
    if isinstance(getattr(scheduler, "clock", None), FakeClock):
        scheduler.clock.now += step_s
    engine_outputs = scheduler.update_from_output(out, fake_output(scheduler, out))
    finished = {}
    for client_outputs in engine_outputs.values():
        for o in client_outputs.outputs:
            if o.finish_reason is not None:
                finished[o.request_id] = o
    return out, finished
