"""The live benchmark's workload: mixed agent programs with the example agents' call layouts.

``live_program(id, kind, rng)`` builds one trace program whose calls follow the layout the
agent of ``kind`` (``autellix_ray.bench.agents``: ``react``, ``lats``, ``mapreduce``) runs in
scripted mode; ``live_workload`` a heavy-tailed mix of them arriving as a Poisson process
(``LiveMix``); ``with_rate`` the same programs at another rate. Used by the live benchmark,
examples/mixed_driver.py and the example agents' ``--scripted`` mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload, poisson_arrival_times

AGENT_KINDS = ("react", "lats", "mapreduce")


@dataclass(frozen=True)
class LiveMix:
    """The mixed population the live benchmark and examples/mixed_driver.py run.

    Heavy-tailed on purpose (as agent traffic is): many short ReAct programs, some
    map-reduce fan-outs, a few big tree searches. Lengths in tokens, delays in seconds.
    """

    weights: tuple[float, float, float] = (0.7, 0.1, 0.2)  # react, mapreduce, lats
    system_prompt_tokens: int = 64  # shared by every call of the same agent kind
    react_steps: tuple[int, int] = (2, 4)  # calls per ReAct program (inclusive range)
    react_decode: int = 16
    react_observation_tokens: int = 48  # prompt growth per step (reply + observation)
    react_tool_s: tuple[float, float] = (0.05, 0.3)
    map_chunks: tuple[int, int] = (3, 6)
    map_prompt_tokens: int = 192
    map_decode: int = 32
    reduce_decode: int = 48
    lats_depth: tuple[int, int] = (2, 3)
    lats_width: tuple[int, int] = (3, 4)
    lats_expand_decode: int = 48
    lats_score_decode: int = 4
    lats_eval_s: float = 0.05


def live_program(program_id: str, kind: str, rng: np.random.Generator, mix: LiveMix = LiveMix(),
                 arrival_s: float = 0.0) -> ProgramSpec:
    """A trace program with the call layout ``AGENTS[kind]`` follows in scripted mode."""
    sp = mix.system_prompt_tokens
    calls: list[CallSpec] = []
    if kind == "react":
        steps = int(rng.integers(mix.react_steps[0], mix.react_steps[1] + 1))
        prompt = sp + 32
        for i in range(steps):
            think = 0.0 if i == 0 else round(float(rng.uniform(*mix.react_tool_s)), 4)
            reuse = {"reuse_call": i - 1, "reuse_tokens": calls[-1].prompt_tokens} if i else \
                {"shared_prefix_key": "react", "shared_prefix_tokens": sp}
            calls.append(CallSpec("main", prompt, mix.react_decode, think_time_s=think, **reuse))
            prompt += mix.react_observation_tokens
    elif kind == "mapreduce":
        n = int(rng.integers(mix.map_chunks[0], mix.map_chunks[1] + 1))
        for i in range(n):
            calls.append(CallSpec(f"map{i}", sp + mix.map_prompt_tokens, mix.map_decode,
                                  shared_prefix_key="mapreduce", shared_prefix_tokens=sp))
        calls.append(CallSpec("reduce", sp + n * mix.map_decode + 16, mix.reduce_decode,
                              parent_thread_ids=tuple(f"map{i}" for i in range(n)),
                              shared_prefix_key="mapreduce", shared_prefix_tokens=sp))
    elif kind == "lats":
        depth = int(rng.integers(mix.lats_depth[0], mix.lats_depth[1] + 1))
        width = int(rng.integers(mix.lats_width[0], mix.lats_width[1] + 1))
        calls.append(CallSpec("root", sp + 64, mix.lats_expand_decode, shared_prefix_key="lats",
                               shared_prefix_tokens=sp))
        parent, parent_call, context = "root", 0, sp + 64
        for level in range(depth):
            first = len(calls)
            for c in range(width):
                calls.append(CallSpec(f"d{level}c{c}", context + 16, mix.lats_expand_decode,
                                      parent_thread_ids=(parent,), reuse_call=parent_call, reuse_tokens=context))
            for c in range(width):
                calls.append(CallSpec(f"d{level}c{c}", context + 16 + 24, mix.lats_score_decode,
                                      think_time_s=mix.lats_eval_s, reuse_call=first + c,
                                      reuse_tokens=context + 16))
            best = int(rng.integers(width))
            parent, parent_call, context = f"d{level}c{best}", first + best, context + 16
    else:
        raise ValueError(f"unknown agent kind {kind!r}; choose one of {AGENT_KINDS}")
    return ProgramSpec(program_id, float(arrival_s), tuple(calls), kind)


def live_workload(num_programs: int, rate: float, seed: int, mix: LiveMix = LiveMix()) -> Workload:
    """``num_programs`` mixed agent programs arriving as a Poisson process of ``rate``/s.

    The program contents depend only on ``seed`` (not on ``rate``), so the same programs
    can be replayed at several rates."""
    content_rng = np.random.default_rng([seed, 1])
    arrivals = poisson_arrival_times(num_programs, rate, np.random.default_rng([seed, 2]))
    kinds = ("react", "mapreduce", "lats")
    p = np.asarray(mix.weights, dtype=float) / sum(mix.weights)
    programs = []
    for n, t in enumerate(arrivals):
        kind = kinds[int(content_rng.choice(3, p=p))]
        programs.append(live_program(f"{kind}-{seed}-{n:04d}", kind, content_rng, mix, t))
    return Workload("live-mixed", tuple(programs), rate if math.isfinite(rate) else math.inf, seed, True,
                    "ReAct / map-reduce / LATS agent programs for the live benchmark "
                    "(autellix_ray.bench.workloads.live.LiveMix)")


def with_rate(workload: Workload, rate: float, seed: int) -> Workload:
    """The same programs with fresh Poisson arrivals of ``rate`` programs/s."""
    arrivals = poisson_arrival_times(workload.num_programs, rate, np.random.default_rng([seed, 2]))
    return replace(workload, programs=tuple(replace(p, arrival_s=t) for p, t in zip(workload.programs, arrivals)),
                   rate=rate)
