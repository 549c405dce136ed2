"""SYNTHETIC single-thread programs matched to a row of the paper's workload table.

Used only when a dataset package is missing (``source="synthetic"``, or ``"auto"`` with
the package absent); every such workload has ``synthetic=True`` and says so in its
description. Algorithm, per program:

- number of calls ``n ~ Geometric(1 / calls_mean)`` on {1, 2, ...}, redrawn while
  ``n > calls_max`` (mean stays within 1% of ``calls_mean`` for the paper's rows);
- one thread ``"main"``; call ``k`` sends a constant system prefix of
  ``system_tokens`` (shared across programs under ``shared_prefix_key``), the whole
  history (earlier new tokens and outputs) and ``new_k`` fresh tokens;
- ``new_k ~ LogNormal(mean=new_tokens_mean, sigma)`` and
  ``decode_k ~ LogNormal(mean=decode_mean, sigma)``, integers >= 1;
- ``think_time_s ~ Exponential(think_time_mean_s)`` before every call but the first
  (0 when the mean is 0, the default).

Prompt growth makes the mean prompt length larger than ``system_tokens + new_tokens_mean``;
``system_tokens_for_prompt_mean`` solves for the system prefix that gives a target mean
prompt length (the paper's "prefill tok/call" column for BFCL).
"""

from __future__ import annotations

import numpy as np

from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, lognormal_ints
from autellix_ray.bench.workloads.tokens import PromptBuilder


def geometric_calls(rng: np.random.Generator, calls_mean: float, calls_max: int) -> int:
    if calls_mean < 1 or calls_max < 1:
        raise ValueError(f"calls_mean must be >= 1 and calls_max >= 1, got {calls_mean}, {calls_max}")
    while True:
        n = int(rng.geometric(1.0 / calls_mean))
        if n <= calls_max:
            return n


def chain_program(
    rng: np.random.Generator,
    program_id: str,
    workload: str,
    *,
    calls_mean: float,
    calls_max: int,
    new_tokens_mean: float,
    decode_mean: float,
    system_tokens: int = 0,
    shared_prefix_key: str = "",
    sigma: float = 0.8,
    think_time_mean_s: float = 0.0,
) -> ProgramSpec:
    num_calls = geometric_calls(rng, calls_mean, calls_max)
    new = lognormal_ints(rng, new_tokens_mean, sigma, num_calls)
    out = lognormal_ints(rng, decode_mean, sigma, num_calls)
    think = rng.exponential(think_time_mean_s, num_calls) if think_time_mean_s > 0 else np.zeros(num_calls)
    builder = PromptBuilder()
    context: list = [("system", system_tokens)] if system_tokens > 0 else []
    calls: list[CallSpec] = []
    for k in range(num_calls):
        context.append((("new", k), new[k]))
        calls.append(
            builder.call(
                context,
                (("out", k), out[k]),
                thread_id="main",
                think_time_s=float(think[k]) if k else 0.0,
                shared_prefix_key=shared_prefix_key if system_tokens > 0 else "",
                shared_prefix_tokens=system_tokens,
            )
        )
        context.append((("out", k), out[k]))
    return ProgramSpec(program_id, 0.0, tuple(calls), workload)


def system_tokens_for_prompt_mean(
    prompt_mean: float, calls_mean: float, new_tokens_mean: float, decode_mean: float
) -> int:
    """System prefix giving a call-weighted mean prompt of ``prompt_mean`` (geometric calls).

    For a geometric number of calls with mean m, call position k (1-based) has weight
    P(n >= k); the call-weighted mean of (k - 1) is m - 1. Call k's prompt is
    system + k * new + (k - 1) * decode, so the mean prompt is
    system + m * new + (m - 1) * decode.
    """
    growth = calls_mean * new_tokens_mean + (calls_mean - 1) * decode_mean
    return max(0, round(prompt_mean - growth))
