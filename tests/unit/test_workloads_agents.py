"""The coding-agent and Mixture-of-Agents workloads: shapes, caps, reuse and the DAG."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autellix_ray.bench.workloads import WORKLOADS, make_workload
from autellix_ray.bench.workloads.__main__ import main as cli_main
from autellix_ray.bench.workloads.coding import CodingParams, coding_program, fit_observations
from autellix_ray.bench.workloads.moa import AGGREGATOR, MoaParams, layer_threads, moa_program
from autellix_ray.bench.workloads.model import ProgramSpec
from autellix_ray.bench.workloads.trace import dumps_trace, loads_trace


@pytest.mark.parametrize("name", ["coding", "moa"])
def test_registered_reproducible_and_round_trips(name):
    assert name in WORKLOADS
    a = make_workload(name, 6, 0.5, 3)
    assert a == make_workload(name, 6, 0.5, 3) and a != make_workload(name, 6, 0.5, 4)
    assert a.synthetic and a.name == name and a.num_programs == 6
    assert loads_trace(dumps_trace(a)) == a
    with pytest.raises(ValueError, match="source"):
        make_workload(name, 2, 1.0, 0, source="dataset")
    with pytest.raises(ValueError, match="unknown .* options"):
        make_workload(name, 2, 1.0, 0, nope=1)


# -- coding ---------------------------------------------------------------------------
def test_coding_programs_grow_under_the_cap_and_reuse_the_previous_call():
    params = CodingParams()
    w = make_workload("coding", 40, 1.0, 0)
    assert {p.calls[0].prompt_tokens > params.system_tokens for p in w.programs} == {True}
    at_cap = 0
    for program in w.programs:
        calls = program.calls
        assert params.calls_min <= len(calls) <= params.calls_max
        assert {c.thread_id for c in calls} == {"main"}
        assert calls[0].reuse_call == -1 and calls[0].think_time_s == 0
        for k in range(1, len(calls)):
            prev, call = calls[k - 1], calls[k]
            assert call.reuse_call == k - 1 and call.reuse_tokens == prev.prompt_tokens + prev.decode_tokens
            assert call.prompt_tokens > call.reuse_tokens  # an observation was appended
            assert 0 < call.think_time_s <= params.tool_time_max_s
        assert all(c.prompt_tokens + c.decode_tokens <= params.max_context_tokens for c in calls)
        assert all(c.decode_tokens <= params.decode_max_tokens for c in calls)
        assert {(c.shared_prefix_key, c.shared_prefix_tokens) for c in calls} == {("coding-system", 3000)}
        assert program.dependencies() == ((), *((k - 1,) for k in range(1, len(calls))))
        at_cap += calls[-1].prompt_tokens + calls[-1].decode_tokens > params.max_context_tokens - 500
    assert 0 < at_cap < len(w.programs)  # some runs reach the context cap, not all
    final = [p.calls[-1].prompt_tokens for p in w.programs]
    assert np.median(final) > 20_000  # long context, not a few turns of chat


def test_coding_observation_fitting_and_small_caps():
    assert fit_observations([100, 200], 1000, 20) == [100, 200]
    fitted = fit_observations([1000, 3000, 500], 1000, 20)
    assert sum(fitted) <= 1000 and min(fitted) >= 20 and fitted[1] > fitted[0] > fitted[2]
    with pytest.raises(ValueError, match="cannot fit"):
        fit_observations([50, 50], 30, 20)
    small = CodingParams(calls_min=5, calls_max=8, system_tokens=100, issue_max_tokens=200,
                         decode_max_tokens=50, max_context_tokens=2000)
    program = coding_program("p", np.random.default_rng(1), small)
    assert max(c.prompt_tokens + c.decode_tokens for c in program.calls) <= 2000
    with pytest.raises(ValueError, match="max_context_tokens"):
        CodingParams(max_context_tokens=10_000)
    with pytest.raises(ValueError, match="calls_max"):
        CodingParams(calls_min=30, calls_max=20)
    with pytest.raises(ValueError, match="tool_time_mean_s"):
        CodingParams(tool_time_mean_s=-1)
    no_tools = coding_program("q", np.random.default_rng(1), CodingParams(tool_time_mean_s=0))
    assert all(c.think_time_s == 0 for c in no_tools.calls)


# -- Mixture-of-Agents ----------------------------------------------------------------
def _layer_of(program: ProgramSpec) -> list[int]:
    return [0 if c.thread_id == AGGREGATOR else int(c.thread_id[1:].split("P")[0]) for c in program.calls]


@pytest.mark.parametrize("layers, proposers", [(3, 6), (1, 4), (2, 1)])
def test_moa_dependencies_are_exactly_the_previous_layer(layers, proposers):
    params = MoaParams(layers=layers, proposers=proposers)
    program = moa_program("m", np.random.default_rng(0), params)
    assert program.num_calls == layers * proposers + 1
    layer = _layer_of(program)
    index = {c.thread_id: i for i, c in enumerate(program.calls)}
    for i, (call, deps) in enumerate(zip(program.calls, program.dependencies(), strict=True)):
        if layer[i] == 1:
            assert deps == () and call.parent_thread_ids == ()
            continue
        before = layer[i] - 1 if layer[i] else layers
        expected = tuple(index[t] for t in layer_threads(before, proposers))
        assert deps == expected, (call.thread_id, deps)
    agg = program.calls[-1]
    assert agg.thread_id == AGGREGATOR and agg.parent_thread_ids == layer_threads(layers, proposers)
    assert len(program.thread_ids) == program.num_calls  # one thread per call


def test_moa_prompts_read_the_previous_layer_and_share_the_system_prompt():
    params = MoaParams()
    w = make_workload("moa", 20, math.inf, 1)
    for program in w.programs:
        calls, p = program.calls, params.proposers
        assert all(c.shared_prefix_key == "moa-system" and c.shared_prefix_tokens == 150 for c in calls)
        assert all(c.decode_tokens <= params.decode_max_tokens for c in calls)
        head = calls[0].prompt_tokens  # system + query
        for layer in range(1, params.layers + 1):
            group = calls[(layer - 1) * p : layer * p]
            assert len({c.prompt_tokens for c in group}) == 1  # same prompt for every proposer
            assert all(c.reuse_call == (layer - 1) * p and c.reuse_tokens == c.prompt_tokens for c in group[1:])
            if layer > 1:
                previous = calls[(layer - 2) * p : (layer - 1) * p]
                assert group[0].prompt_tokens == head + sum(c.decode_tokens for c in previous)
        first = calls[(params.layers - 1) * p : params.layers * p]
        assert calls[-1].prompt_tokens == head + sum(c.decode_tokens for c in first)
        assert calls[p].reuse_call == 0 and calls[p].reuse_tokens == head + calls[0].decode_tokens
    with pytest.raises(ValueError, match="proposers"):
        MoaParams(proposers=0)
    with pytest.raises(ValueError, match="orchestration_time_s"):
        MoaParams(orchestration_time_s=-0.5)


def test_moa_orchestration_time_applies_after_the_first_layer():
    program = moa_program("m", np.random.default_rng(0), MoaParams(layers=2, proposers=3, orchestration_time_s=0.2))
    assert [c.think_time_s for c in program.calls] == [0.0] * 3 + [0.2] * 4


def test_cli_stats_include_the_new_workloads(capsys):
    assert cli_main(["--stats", "--workload", "coding", "--workload", "moa", "--num-programs", "3"]) == 0
    out = capsys.readouterr().out
    assert "coding (synthetic)" in out and "moa (synthetic)" in out and "think s/call" in out
    assert "19.00" in out  # MoA: 3 x 6 proposers + 1 aggregator
