"""The plugin inside real vLLM engines (CPU build, tiny model), through AsyncLLM.

Assertions are about order and counts, not absolute times (the machine is shared).
"""

import asyncio

import pytest

from tests.vllm.engine_runner import EngineRunner, prompt

pytestmark = pytest.mark.vllm

FAST_QUEUES = {"boundaries_s": (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)}


def engine_fixture(policy, **settings):
    @pytest.fixture(scope="module")
    def fixture(tiny_model_path):
        runner = EngineRunner(tiny_model_path, policy, max_num_seqs=2, **settings)
        yield runner
        runner.shutdown()

    return fixture


stock = engine_fixture(None)
fcfs = engine_fixture("fcfs")
plas = engine_fixture("plas", beta=3.0, reevaluate_every_steps=1, **FAST_QUEUES)
atlas = engine_fixture("atlas", beta=None, **FAST_QUEUES)


async def hol_scenario(engine, tag):
    """A program with service behind it floods the engine; a new program sends one short call."""
    await engine.call(prompt(1000), 40, program=f"{tag}-L")
    longs = [
        asyncio.create_task(engine.call(prompt(1001 + i), 200, program=f"{tag}-L")) for i in range(4)
    ]
    short = asyncio.create_task(engine.call(prompt(1999), 8, program=f"{tag}-S", delay_s=0.3))
    done = await asyncio.gather(*longs, short)
    return done[:4], done[4]


def test_plas_removes_head_of_line_blocking_that_fcfs_has(plas, stock):
    longs, short = plas.run(hol_scenario(plas, "plas"))
    finished_before_short = [c for c in longs if c.finished_s < short.finished_s]
    assert finished_before_short == []  # the short call overtakes every long one
    assert max(c.report["num_preemptions"] for c in longs) >= 1  # a slot was taken back
    assert short.report["num_preemptions"] == 0

    stock_longs, stock_short = stock.run(hol_scenario(stock, "stock"))
    assert sum(c.finished_s < stock_short.finished_s for c in stock_longs) >= 2  # it queued
    assert short.latency_s < stock_short.latency_s


def test_demotion_of_a_long_call(plas):
    result = plas.run(plas.call(prompt(2000), 120, program="demote-me"))
    assert result.report["num_demotions"] >= 2
    assert result.report["final_level"] >= 2
    assert len(result.token_ids) == 120


def test_anti_starvation_promotes_a_starved_call(plas):
    async def scenario():
        first = await plas.call(prompt(3000), 60, program="heavy")  # heavy now has service
        starved = asyncio.create_task(plas.call(prompt(3001), 10, program="heavy", delay_s=0.05))
        stream = [
            asyncio.create_task(plas.call(prompt(3100 + i), 30, program=f"light{i}", delay_s=0.1 * i))
            for i in range(40)
        ]
        return first, await starved, await asyncio.gather(*stream)

    first, starved, stream = plas.run(scenario())
    assert starved.report["num_promotions"] >= 1
    assert starved.finished_s < max(c.finished_s for c in stream)  # it did not wait for the stream
    # the program-level bound: W / T stays near beta (3), slack for the sweep and a quantum
    wait = first.report["wait_s"] + starved.report["wait_s"]
    service = first.report["service_s"] + starved.report["service_s"]
    assert wait <= 3.0 * service * 1.5


def test_atlas_runs_sibling_threads_together(atlas):
    async def scenario():
        await atlas.call(prompt(4000), 20, program="tree", thread="root")
        background = [
            asyncio.create_task(atlas.call(prompt(4100 + i), 60, program=f"bg{i % 2}")) for i in range(6)
        ]
        await asyncio.sleep(0.2)
        siblings = [
            asyncio.create_task(
                atlas.call(prompt(4010 + i), 16, program="tree", thread=f"kid{i}", parents=["root"])
            )
            for i in range(2)
        ]
        return await asyncio.gather(*siblings), await asyncio.gather(*background)

    siblings, background = atlas.run(scenario())
    priorities = {round(c.report["priority_s"], 9) for c in siblings}
    assert len(priorities) == 1  # one critical-path priority for both
    first, last = sorted(c.finished_s for c in siblings)
    between = [c for c in background if first < c.finished_s < last]
    assert between == []  # no other program's call finished between the siblings


def test_heavy_preemption_loses_duplicates_and_truncates_nothing(plas):
    lengths = [10 + (i * 37) % 110 for i in range(36)]

    async def scenario():
        tasks = [
            asyncio.create_task(
                plas.call(prompt(5000 + i, 24 + i % 40), n, program=f"prog{i % 9}", delay_s=0.03 * i)
            )
            for i, n in enumerate(lengths)
        ]
        return await asyncio.gather(*tasks)

    results = plas.run(scenario())
    assert len({r.request_id for r in results}) == len(lengths)
    assert [len(r.token_ids) for r in results] == lengths
    assert all(r.finish_reason == "length" for r in results)
    assert sum(r.report["num_preemptions"] for r in results) >= 5  # it really was heavy
    assert all(r.num_streamed >= 1 for r in results)


def test_preempted_calls_produce_the_same_tokens_as_stock_vllm(plas, stock):
    specs = [(6000 + i, 20 + (i * 29) % 80) for i in range(12)]

    async def scenario(engine, tag):
        tasks = [
            asyncio.create_task(engine.call(prompt(seed), n, program=f"{tag}{i % 4}", delay_s=0.02 * i))
            for i, (seed, n) in enumerate(specs)
        ]
        return await asyncio.gather(*tasks)

    ours = plas.run(scenario(plas, "p"))
    theirs = stock.run(scenario(stock, "s"))
    assert sum(r.report["num_preemptions"] for r in ours) >= 1
    assert [r.token_ids for r in ours] == [r.token_ids for r in theirs]


def test_n_greater_than_one_and_abort_keep_working(plas):
    async def scenario():
        both = await plas.call(prompt(7000), 12, program="multi", n=2)
        task = asyncio.create_task(plas.call(prompt(7001), 500, program="aborted", request_id="to-abort"))
        await asyncio.sleep(0.3)
        await plas.engine.abort("to-abort")
        after = await plas.call(prompt(7002), 5, program="after")
        return both, await task, after

    both, aborted, after = plas.run(scenario())
    assert both.num_outputs == 2 and len(both.token_ids) == 12
    assert len(aborted.token_ids) < 500 and aborted.finish_reason == "abort"
    # (an abort from the client side gets no engine report: the caller knows already)
    assert len(after.token_ids) == 5  # the engine kept serving after the abort


def test_fcfs_plugin_matches_stock_vllm_outputs_and_completion_order(fcfs, stock):
    specs = [(8000 + i, 10 + (i * 13) % 50) for i in range(10)]

    async def scenario(engine):
        engine.completion_order.clear()
        tasks = [
            asyncio.create_task(engine.call(prompt(seed), n, request_id=f"same-{i}", delay_s=0.0))
            for i, (seed, n) in enumerate(specs)
        ]
        results = await asyncio.gather(*tasks)
        return results, list(engine.completion_order)

    ours, our_order = fcfs.run(scenario(fcfs))
    theirs, their_order = stock.run(scenario(stock))
    assert [r.token_ids for r in ours] == [r.token_ids for r in theirs]
    assert our_order == their_order
