"""The example agents in scripted mode follow their trace programs exactly (no engine needed)."""

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from autellix_ray.bench.agents import (
    AgentScript,
    KVStore,
    calculator,
    file_search,
    run_population,
    run_scripted,
)
from autellix_ray.bench.workloads.live import live_program, live_workload, with_rate
from autellix_ray.bench.workloads.trace import dumps_trace, loads_trace
from autellix_ray.client.program import Program


@dataclass
class FakeReply:
    text: str

    @property
    def choices(self):
        return [self]


@dataclass
class FakeProgram(Program):
    """Records every call: (thread, parents, prompt, max_tokens, ignore_eos, time)."""

    log: list = field(default_factory=list)

    async def _complete(self, thread, prompt, **kwargs):
        self.log.append((thread.thread_id, thread.parents, list(prompt), kwargs["max_tokens"],
                         kwargs["extra_body"]["ignore_eos"], asyncio.get_running_loop().time()))
        await asyncio.sleep(0)
        return FakeReply("x" * 5)


@pytest.mark.parametrize("kind", ["react", "mapreduce", "lats"])
def test_scripted_agent_issues_exactly_the_trace_calls(kind):
    spec = live_program("p", kind, np.random.default_rng(3))
    program = FakeProgram("p")
    result = asyncio.run(run_scripted(program, spec))
    assert result["calls"] == spec.num_calls == len(program.log)
    issued = sorted((t, len(prompt), mt) for t, _, prompt, mt, _, _ in program.log)
    wanted = sorted((c.thread_id, c.prompt_tokens, c.decode_tokens) for c in spec.calls)
    assert issued == wanted
    assert all(ignore for *_, ignore, _ in program.log)
    for thread, parents, *_ in program.log:  # parents as in the trace (threads carry them)
        trace_parents = {c.parent_thread_ids for c in spec.calls if c.thread_id == thread} - {()}
        assert parents in trace_parents | {()}


def test_scripted_tool_delays_are_respected():
    spec = live_program("p", "react", np.random.default_rng(0))
    program = FakeProgram("p")
    asyncio.run(run_scripted(program, spec))
    times = [t for *_, t in program.log]
    for i in range(1, spec.num_calls):
        assert times[i] - times[i - 1] >= spec.calls[i].think_time_s - 0.01


def test_script_prompts_are_deterministic_and_share_prefixes():
    spec = live_program("p", "react", np.random.default_rng(1))
    a, b = AgentScript(spec), AgentScript(spec)
    for i in range(spec.num_calls):
        assert a.prompt(i) == b.prompt(i)
        assert len(a.prompt(i)) == spec.calls[i].prompt_tokens
        assert all(16 <= t < 500 for t in a.prompt(i))
    assert a.prompt(1)[: spec.calls[1].reuse_tokens] == a.prompt(0)[: spec.calls[1].reuse_tokens]
    other = AgentScript(live_program("q", "react", np.random.default_rng(1)))
    sp = spec.calls[0].shared_prefix_tokens
    assert other.prompt(0)[:sp] == a.prompt(0)[:sp] and other.prompt(0) != a.prompt(0)


def test_live_workload_roundtrips_and_replays_at_other_rates():
    w = live_workload(25, 1.0, seed=4)
    assert loads_trace(dumps_trace(w)) == w
    assert {p.workload for p in w.programs} == {"react", "mapreduce", "lats"}
    w2 = with_rate(w, 3.0, seed=4)
    assert [p.calls for p in w2.programs] == [p.calls for p in w.programs]
    assert w2.programs[-1].arrival_s < w.programs[-1].arrival_s
    assert live_workload(25, 1.0, seed=4) == w


def test_run_population_records_latency_and_errors():
    w = live_workload(6, 50.0, seed=0)
    seen = []

    async def make(spec):
        if spec.program_id == w.programs[2].program_id:
            raise RuntimeError("boom")
        return FakeProgram(spec.program_id)

    records = asyncio.run(run_population(w, make, on_reply=lambda s, r: seen.append(s.program_id)))
    assert len(records) == 6 and sum(r["error"] is not None for r in records) == 1
    assert all(r["latency_s"] >= 0 for r in records)
    assert len(seen) == sum(p.num_calls for i, p in enumerate(w.programs) if i != 2)


def test_tools():
    assert calculator("2 * (3 + 4) - 1") == "13"
    assert calculator("__import__('os')").startswith("error")
    assert calculator("9 ** 99999").startswith("error")
    kv = KVStore()
    assert kv("set a=1") == "ok" and kv("get a") == "1" and kv("get b") == "missing"
    assert "test_agents_scripted.py" in file_search(__file__.rsplit("/", 1)[0], r"def test_tools", limit=50)
