"""Long-context coding agent (SWE-agent / OpenHands-like issue fixing): SYNTHETIC.

One program = one agent run on one GitHub issue: a single thread ``"main"`` of ``n``
sequential calls. Each call's prompt is the whole trajectory so far; its output is a
thought plus one tool command (open/scroll/search a file, edit, run a test); the tool's
output (the observation) is appended before the next call, which is issued after the
command has run. No trajectory dataset is installed here, so every length is drawn from
the distributions below (``synthetic=True``); the numbers are approximations of the
published descriptions cited next to each parameter.

Algorithm, per program (lengths in tokens, all integers >= 1):

1. ``n ~ Uniform{calls_min..calls_max}`` (20-60: SWE-agent runs until ``submit`` or
   its per-issue cost budget, about $4 of GPT-4 in the paper, typically tens of steps,
   unresolved runs being the long ones (Yang et al. 2024, "SWE-agent", arXiv
   2405.15793); OpenHands caps a run at a configurable number of iterations (Wang et
   al. 2024, "OpenHands", arXiv 2407.16741); approximately).
2. Call 1's prompt = ``system_tokens`` (system prompt, tool/command documentation and
   a demonstration; identical for every program, ``shared_prefix_key="coding-system"``)
   + the issue text ``~ LogNormal(mean issue_tokens_mean)``, capped at
   ``issue_max_tokens`` (SWE-bench problem statements average roughly 200 words,
   a few hundred tokens, with a long tail; Jimenez et al. 2024, arXiv 2310.06770).
3. Decode ``d_k ~ LogNormal(mean decode_tokens_mean)`` capped at ``decode_max_tokens``:
   a short thought and one command (tens to a few hundred tokens).
4. Observation ``o_k ~ LogNormal(mean observation_tokens_mean)`` capped at
   ``observation_max_tokens``, after every call but the last (the last submits): a
   100-line file window, search hits, an edit echo or test output, a few hundred to
   a few thousand tokens (SWE-agent's viewer shows 100 lines at a time and caps search
   results; approximately).
5. Context cap: the last call's prompt plus decode is
   ``system + issue + sum(d) + sum(o)``; when that exceeds ``max_context_tokens``
   (default 32,000, under the replay's ``max_model_len=32768``), every observation
   ``o`` becomes ``min_observation_tokens + floor(o x s)``, with one factor ``s`` per
   program chosen so the sum fits. Long runs thus end at the cap, as real agents run into
   their context window (SWE-agent's "exit_context"; the "token snowball" of Fan et al.
   2025, "SWE-Effi", arXiv 2509.09853), while the history is never truncated, so
   every call's prompt is exactly the previous call's prompt + output + observation.
6. Every call after the first: ``reuse_call`` = the previous call's index,
   ``reuse_tokens`` = previous prompt + previous decode; ``think_time_s`` = the command's execution time
   ``~ LogNormal(mean tool_time_mean_s, sigma tool_time_sigma)`` capped at
   ``tool_time_max_s`` (seconds: file views take well under a second, test runs and
   installs several seconds to minutes; approximately). Call 1 starts at arrival.

Defaults give calls/program ~40, prompts growing from ~3.3k to ~15-32k tokens (mean
~16.5k; about half the programs reach the cap), decodes ~110 tokens, tool time ~3.5 s;
``python -m autellix_ray.bench.workloads --stats --workload coding`` prints them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from autellix_ray.bench.workloads.generators import SyntheticWorkload
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, lognormal_ints

NAME = "coding"
SHARED_KEY = "coding-system"


@dataclass(frozen=True)
class CodingParams:
    calls_min: int = 20  # calls per program, uniform in [calls_min, calls_max]
    calls_max: int = 60
    system_tokens: int = 3000  # system prompt + tool docs + demonstration (shared)
    issue_tokens_mean: float = 300.0  # issue text (SWE-bench: ~200 words on average)
    issue_max_tokens: int = 3000
    decode_tokens_mean: float = 120.0  # thought + one command
    decode_max_tokens: int = 300
    observation_tokens_mean: float = 700.0  # tool output appended after a call
    observation_max_tokens: int = 4000
    min_observation_tokens: int = 20  # floor when observations are scaled to the cap
    sigma: float = 0.8  # log-sigma of every token length
    tool_time_mean_s: float = 3.5  # command execution time before the next call
    tool_time_sigma: float = 0.7
    tool_time_max_s: float = 30.0
    max_context_tokens: int = 32_000  # prompt + decode of every call stays <= this

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        ints = ("calls_min", "calls_max", "system_tokens", "issue_max_tokens", "decode_max_tokens",
                "observation_max_tokens", "min_observation_tokens", "max_context_tokens")
        for name in ints:
            value = getattr(self, name)
            if int(value) != value or value < (0 if name == "system_tokens" else 1):
                raise ValueError(f"{name} must be an int >= {0 if name == 'system_tokens' else 1}, got {value!r}")
        for name in ("issue_tokens_mean", "decode_tokens_mean", "observation_tokens_mean"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("sigma", "tool_time_sigma", "tool_time_mean_s", "tool_time_max_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.calls_max < self.calls_min:
            raise ValueError(f"calls_max={self.calls_max} must be >= calls_min={self.calls_min}")
        if self.min_observation_tokens > self.observation_max_tokens:
            raise ValueError("min_observation_tokens must be <= observation_max_tokens")
        worst = self.system_tokens + self.issue_max_tokens + self.calls_max * (
            self.decode_max_tokens + self.min_observation_tokens
        )
        if worst > self.max_context_tokens:
            raise ValueError(
                f"max_context_tokens={self.max_context_tokens} cannot hold the longest program even with minimal "
                f"observations: system + issue_max + calls_max x (decode_max + min_observation) = {worst}"
            )


def _capped(rng: np.random.Generator, mean: float, sigma: float, cap: int, size: int) -> list[int]:
    return [min(cap, v) for v in lognormal_ints(rng, mean, sigma, size)]


def fit_observations(observations: list[int], budget: int, floor: int) -> list[int]:
    """Observations unchanged if they sum to at most ``budget``; otherwise each becomes
    ``floor + floor(o x s)`` with the one factor ``s`` that makes the sum at most ``budget``."""
    total = sum(observations)
    if total <= budget:
        return list(observations)
    if floor * len(observations) > budget:
        raise ValueError(f"{len(observations)} observations of >= {floor} tokens cannot fit in {budget}")
    scale = (budget - floor * len(observations)) / total
    return [floor + math.floor(o * scale) for o in observations]


def tool_times_s(rng: np.random.Generator, params: CodingParams, size: int) -> np.ndarray:
    """Tool execution times (s): LogNormal with mean ``tool_time_mean_s``, capped."""
    p = params
    if p.tool_time_mean_s == 0:
        return np.zeros(size)
    mu = math.log(p.tool_time_mean_s) - p.tool_time_sigma**2 / 2
    return np.minimum(rng.lognormal(mu, p.tool_time_sigma, size), p.tool_time_max_s)


def coding_program(program_id: str, rng: np.random.Generator, params: CodingParams = CodingParams()) -> ProgramSpec:
    p = params
    n = int(rng.integers(p.calls_min, p.calls_max + 1))
    issue = min(p.issue_max_tokens, lognormal_ints(rng, p.issue_tokens_mean, p.sigma))
    decodes = _capped(rng, p.decode_tokens_mean, p.sigma, p.decode_max_tokens, n)
    observations = _capped(rng, p.observation_tokens_mean, p.sigma, p.observation_max_tokens, n - 1)
    budget = p.max_context_tokens - p.system_tokens - issue - sum(decodes)
    observations = fit_observations(observations, budget, p.min_observation_tokens)
    tool_times = tool_times_s(rng, p, n)
    shared = {"shared_prefix_key": SHARED_KEY, "shared_prefix_tokens": p.system_tokens} if p.system_tokens else {}
    calls = [CallSpec("main", p.system_tokens + issue, decodes[0], **shared)]
    for k in range(1, n):
        previous = calls[-1]
        context = previous.prompt_tokens + previous.decode_tokens
        calls.append(CallSpec(
            "main", context + observations[k - 1], decodes[k], think_time_s=float(tool_times[k]),
            reuse_call=k - 1, reuse_tokens=context, **shared,
        ))
    return ProgramSpec(program_id, 0.0, tuple(calls), NAME)


def _describe(p: CodingParams) -> str:
    return (
        f"SYNTHETIC SWE-agent/OpenHands-like coding agent: {p.calls_min}-{p.calls_max} "
        f"sequential calls, full-history prompts capped at {p.max_context_tokens} tokens, "
        f"~{p.tool_time_mean_s:g} s tool time between calls"
    )


make_coding_workload = SyntheticWorkload(NAME, CodingParams, coding_program, _describe)
