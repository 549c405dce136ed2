"""The replay engine: vLLM's scheduler on a simulated clock driven by the cost model."""

import math

import pytest

from autellix_ray.bench.cost_model import get_preset
from autellix_ray.bench.replay.config import EngineConfig, get_policy
from autellix_ray.bench.replay.engine import call_work_s, replay
from autellix_ray.bench.replay.metrics import summarize
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload
from autellix_ray.core import ServiceModel

pytestmark = pytest.mark.vllm

SMALL = EngineConfig(max_num_seqs=8, max_num_batched_tokens=2048, max_model_len=4096, num_gpu_blocks=2000)
CM = get_preset(SMALL.preset)


def workload(*programs: ProgramSpec, name: str = "test") -> Workload:
    return Workload(name, tuple(sorted(programs, key=lambda p: p.arrival_s)))


def chain(pid: str, arrival: float, turns: list[tuple[int, int]]) -> ProgramSpec:
    """A chat: each turn's prompt is the previous prompt + reply + ``new`` tokens."""
    calls, context = [], 0
    for i, (new, decode) in enumerate(turns):
        prompt = context + new
        calls.append(CallSpec("main", prompt, decode, reuse_call=i - 1 if i else -1, reuse_tokens=context))
        context = prompt + decode
    return ProgramSpec(pid, arrival, tuple(calls))


def test_one_call_takes_exactly_the_cost_model_time(tiny_model_path):
    w = workload(ProgramSpec("p", 0.0, (CallSpec("main", 100, 5),)))
    result = replay(w, "vllm-opt", engine_config=SMALL, model_path=tiny_model_path)
    # one prefill step (samples the first token), then 4 decode steps at contexts 101..104
    expected = CM.step_time_s([100]) + sum(CM.step_time_s([], [k]) for k in range(101, 105))
    assert result.sim_time_s == pytest.approx(expected, rel=1e-9)
    assert result.programs[0].latency_s == pytest.approx(expected, rel=1e-9)
    assert result.engines[0]["num_steps"] == 5
    assert result.engines[0]["busy_s"] == pytest.approx(expected, rel=1e-9)
    # alone, it was scheduled in every step and never waited
    assert result.programs[0].service_s == pytest.approx(expected, rel=1e-9)
    assert result.programs[0].wait_s == pytest.approx(0.0, abs=1e-9)


def test_every_call_completes_and_prefix_reuse_hits_the_cache(tiny_model_path):
    tree = ProgramSpec("tree", 0.5, (
        CallSpec("root", 64, 8, shared_prefix_key="sys", shared_prefix_tokens=48),
        CallSpec("a", 80, 6, parent_thread_ids=("root",), reuse_call=0, reuse_tokens=72,
                 shared_prefix_key="sys", shared_prefix_tokens=48),
        CallSpec("b", 80, 6, parent_thread_ids=("root",), reuse_call=0, reuse_tokens=72,
                 shared_prefix_key="sys", shared_prefix_tokens=48, think_time_s=0.2),
        CallSpec("c", 120, 4, parent_thread_ids=("a", "b")),
    ))
    w = workload(chain("chat", 0.0, [(200, 20), (50, 30), (40, 10)]), tree)
    results = {}
    for policy in ("vllm", "vllm-opt", "plas", "atlas"):
        r = replay(w, policy, engine_config=SMALL, model_path=tiny_model_path)
        assert r.num_calls == 7
        assert all(math.isfinite(p.finish_s) for p in r.programs)
        results[policy] = summarize(r)
        # the simulated clock only moves by the cost model's step times (no idle gap after 0.5 s)
        assert r.engines[0]["busy_s"] <= r.sim_time_s + 1e-9
        assert r.engines[0]["decode_tokens"] == 20 + 30 + 10 + 8 + 6 + 6 + 4 - 7  # first tokens come from prefill
    assert results["vllm"]["prefix_hit_rate"] == 0.0
    assert results["vllm-opt"]["prefix_hit_rate"] > 0.4
    tree_call_c = [p for p in replay(w, "vllm-opt", engine_config=SMALL, model_path=tiny_model_path).programs
                   if p.program_id == "tree"][0]
    assert tree_call_c.num_calls == 4 and tree_call_c.decode_tokens == 24


# Head-of-line blocking: two heavy chats at t=0 fill both slots, six one-call programs arrive
# at 0.2 s. Queue boundaries scaled to this small engine's service times, no anti-starvation.
HOL_CONFIG = EngineConfig(max_num_seqs=2, max_num_batched_tokens=2048, max_model_len=4096, num_gpu_blocks=2000)
HOL_SETTINGS = {"boundaries_s": (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6), "beta": None}


def head_of_line_workload(heavy_prompt: int, heavy_reply: int):
    heavy = [chain(f"heavy{i}", 0.0, [(heavy_prompt, heavy_reply), (32, heavy_reply)]) for i in range(2)]
    light = [chain(f"light{i}", 0.2 + 0.01 * i, [(32, 10)]) for i in range(6)]
    return workload(*heavy, *light)


def test_plas_beats_fcfs_on_head_of_line_blocking(tiny_model_path):
    w = head_of_line_workload(64, 400)
    plas = get_policy("plas").with_settings(**HOL_SETTINGS)
    fcfs = summarize(replay(w, "vllm-opt", engine_config=HOL_CONFIG, model_path=tiny_model_path))
    ours = replay(w, plas, engine_config=HOL_CONFIG, model_path=tiny_model_path)
    summary = summarize(ours)
    assert summary["plugin"]["num_proactive_preemptions"] >= 1
    assert summary["mean_ms_per_token"] < 0.5 * fcfs["mean_ms_per_token"]
    light_latency = max(p.latency_s for p in ours.programs if p.program_id.startswith("light"))
    assert light_latency < 1.0  # the light calls no longer wait for 400-token heavy calls
    for p in ours.programs:  # no think time: every second of a program is service or wait
        assert p.wait_s + p.service_s == pytest.approx(p.latency_s, rel=1e-6, abs=1e-9)


def test_srpt_calls_carry_the_programs_remaining_work_in_service_units(tiny_model_path):
    """The oracle's remaining work is in the units the plugin credits as service (no unit mixing)."""
    service = ServiceModel()
    program = chain("p", 0.0, [(100, 20), (30, 40), (10, 5)])
    work = [call_work_s(c, service) for c in program.calls]
    # call 1: one prefill chunk of 100 prompt tokens (it yields the first output token), 19 decode steps
    assert work[0] == pytest.approx(service.step_service_s(100, 0) + 19 * service.step_service_s(1, 0))
    # call 2 reuses call 1's 120-token context: only its 30 new prompt tokens are computed
    assert work[1] == pytest.approx(30 * service.prefill_token_s + 39 * service.decode_token_s)
    short = chain("short", 0.1, [(16, 4)])
    w = workload(program, short)
    # the SRPT policy refuses calls without remaining_s, so finishing proves every call carried it
    r = replay(w, "srpt", engine_config=SMALL, model_path=tiny_model_path)
    assert all(math.isfinite(p.finish_s) for p in r.programs)
    assert r.plugin_counters[0]["policy"] == "srpt"


def test_routers_place_calls_and_pins_keep_prefix_locality(tiny_model_path):
    # 5 programs on 3 engines with different reply lengths: round robin scatters each chat
    programs = [chain(f"c{i}", 0.01 * i, [(300, 8 + i), (20, 8), (20, 8 + 2 * i), (20, 8)]) for i in range(5)]
    w = workload(*programs)
    hits = {}
    for router, params in (("round_robin", {}), ("autellix", {"short_prompt_tokens": 0}), ("kv_cost", {})):
        r = replay(w, "plas", num_engines=3, router=router, router_params=params, engine_config=SMALL,
                   model_path=tiny_model_path)
        assert r.num_calls == 20 and len(r.engines) == 3
        assert all(e["num_steps"] > 0 for e in r.engines)
        hits[router] = summarize(r)["prefix_hit_rate"]
    assert hits["autellix"] > hits["round_robin"] + 0.2
    assert hits["kv_cost"] > hits["round_robin"] + 0.2


def test_engines_report_waiting_tokens_past_their_prefix_cache_hits(tiny_model_path):
    """What the kv_cost router weighs: a waiting call counts only the prompt tokens its engine lacks."""
    from autellix_ray.bench.replay.engine import SimEngine, build_scheduler, token_block_keys
    from autellix_ray.vllm.offline import make_request

    config = SMALL
    engine = SimEngine("e0", build_scheduler(tiny_model_path, get_policy("vllm-opt"), config), config.cost_model,
                       kv_capacity_tokens=config.blocks * 16, track_waiting_tokens=True)
    prompt = list(range(1000, 1000 + 160))
    engine.add(make_request(prompt=prompt, max_tokens=2, request_id="a"), [7, 8], 0.0)
    assert engine.load().waiting_tokens == 160 and engine.load().kv_capacity_tokens == config.blocks * 16
    while engine.has_work:  # run it to the end: its 10 blocks stay cached
        engine.start_step(0.0)
        engine.finish_step()
    assert engine.load().waiting_tokens == 0
    engine.add(make_request(prompt=prompt + [5] * 40, max_tokens=2, request_id="b"), [7, 8], 0.0)
    assert engine.load().waiting_tokens == 200 - 160  # the first 160 tokens hit the prefix cache
    keys = token_block_keys(prompt + [5] * 40)
    assert len(keys) == 12 and keys[:10] == token_block_keys(prompt)


def test_swap_policy_resumes_preempted_calls_without_recomputing_and_pays_pcie_time(tiny_model_path):
    w = head_of_line_workload(512, 300)
    runs = {name: replay(w, get_policy(name).with_settings(**HOL_SETTINGS), engine_config=HOL_CONFIG,
                         model_path=tiny_model_path) for name in ("plas", "plas-swap")}
    recompute, swap = runs["plas"].engines[0], runs["plas-swap"].engines[0]
    assert recompute["num_preemptions"] >= 1 and swap["num_preemptions"] >= 1
    assert recompute["swapped_blocks"] == 0 and swap["swapped_blocks"] > 0 and swap["swap_s"] > 0
    admitted = 2 * (512 + 812 + 32) + 6 * 32  # every prompt once (heavy turn 2 = turn 1 + reply + 32)
    assert swap["prefill_tokens"] < recompute["prefill_tokens"]
    assert swap["prefill_tokens"] <= admitted  # nothing recomputed (prefix hits only lower it)
    generated = {name: sum(p.decode_tokens for p in r.programs) for name, r in runs.items()}
    assert generated["plas"] == generated["plas-swap"]  # the same tokens, only the KV's path differs
    assert all(math.isfinite(p.finish_s) for p in runs["plas-swap"].programs)
