"""The agent-facing client: over HTTP (openai) and from a Ray actor over deployment handles."""

import asyncio
import time

import pytest
import ray

from autellix_ray.client import HTTPProgram

pytestmark = pytest.mark.serve


def test_http_program_with_a_thread_tree(serve_app):
    async def agent():
        program = await HTTPProgram.start(serve_app, api_key="tree-key")
        root = program.thread("root")
        await root.complete("think", max_tokens=4)
        kids = [program.thread(f"kid{i}", parents=["root"]) for i in range(3)]
        await asyncio.gather(*(k.complete(f"branch {i}", max_tokens=4) for i, k in enumerate(kids)))
        judge = program.thread("judge", parents=[k.thread_id for k in kids])
        streamed = [t async for t in judge.stream_chat([{"role": "user", "content": "pick"}], max_tokens=6,
                                                      extra_body={"ignore_eos": True})]
        deadline = time.monotonic() + 120  # bounds a failure only
        while (row := await program.row())["num_calls"] < 5 or row["num_active_calls"]:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        final = await program.end()
        return streamed, final

    streamed, final = asyncio.run(agent())
    assert "".join(streamed)
    assert final["threads"]["judge"]["parent_thread_ids"] == ["kid0", "kid1", "kid2"]
    assert final["threads"]["kid1"]["parent_thread_ids"] == ["root"]
    # critical path: root then one kid (then the judge) -- never the sum of the three kids
    kids_service = sum(final["threads"][f"kid{i}"]["service_s"] for i in range(3))
    assert final["critical_path_s"] < final["threads"]["root"]["service_s"] + kids_service + final["threads"]["judge"]["service_s"]


@ray.remote
class ReActAgent:
    """A Ray-native agent: calls the engine deployment through its handle."""

    async def run(self, steps: int) -> dict:
        from autellix_ray.client import HandleProgram

        program = await HandleProgram.start(app_name="autellix", model="tiny")
        main = program.thread("main")
        outputs = []
        for step in range(steps):
            reply = await main.complete(f"observation {step}", max_tokens=5)
            outputs.append(reply.choices[0].text)
            await asyncio.sleep(0.01)  # a tool call
        streamed = [t async for t in main.stream_chat([{"role": "user", "content": "answer"}],
                                                     max_tokens=8, ignore_eos=True)]
        return {"program_id": program.program_id, "outputs": outputs, "streamed": streamed}


def test_ray_actor_agent_calls_handles_with_streaming(serve_app):
    result = ray.get(ReActAgent.remote().run.remote(3), timeout=120)
    assert len(result["outputs"]) == 3 and all(result["outputs"])
    assert len(result["streamed"]) >= 2
    table = ray.get_actor("autellix-program-table", namespace="autellix")
    deadline = time.monotonic() + 120  # bounds a failure only
    while ray.get(table.get_program.remote(result["program_id"]))["num_calls"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    row = ray.get(table.get_program.remote(result["program_id"]))
    assert row["threads"]["main"]["num_calls"] == 4


def test_client_rejects_unknown_parents(serve_app):
    from autellix_ray.client.program import Program

    program = Program("p")
    program.thread("a")
    with pytest.raises(ValueError, match="unknown parent"):
        program.thread("b", parents=["nope"])


def test_shipped_agent_actor_runs_a_scripted_tree_search_over_handles(serve_app):
    """The examples' AgentActor (``--via actor``): a scripted LATS program over deployment handles
    issues exactly its trace's calls, with the trace's thread tree, and ends the program."""
    from autellix_ray.bench.agents import agent_actor_class
    from autellix_ray.bench.workloads.live import live_workload
    from autellix_ray.bench.workloads.trace import program_to_json

    spec = next(p for p in live_workload(20, 1.0, seed=0).programs if p.workload == "lats")
    actor = agent_actor_class().remote()
    ray.get(actor.warm_up.remote(app_name="autellix"), timeout=120)
    result = ray.get(actor.run.remote("lats", app_name="autellix", spec=program_to_json(spec)), timeout=180)
    assert result["agent"] == "lats" and result["latency_s"] > 0
    final = result["final"]  # the program table's row, returned by end()
    expected: dict[str, list[str]] = {}
    for call in spec.calls:  # a thread's parents are named by its first call
        expected.setdefault(call.thread_id, list(call.parent_thread_ids))
    assert {t: list(v["parent_thread_ids"]) for t, v in final["threads"].items()} == expected
    assert final["num_calls"] == spec.num_calls
