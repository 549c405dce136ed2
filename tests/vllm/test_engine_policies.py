"""The plugin inside real vLLM engines (CPU build, tiny model), through AsyncLLM.

Assertions are about order and counts, not absolute times, and no scenario races a
wall-clock delay against the engine: later calls are sent when earlier ones have
produced output (so they are known to be running), and where a call's queue matters
its program's state comes in ``extra_args`` (as the cluster-wide table sends it), so
the outcome holds at any engine speed. How waiting turns into a promotion over time
is tested with an injected clock in test_scheduler_direct.py.
"""

import asyncio

import pytest

from autellix_ray.core import QueueConfig
from tests.vllm.engine_runner import EngineRunner, Running, prompt

pytestmark = pytest.mark.vllm

FAST_QUEUES = {"boundaries_s": (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)}
BETA = 3.0
# A program far down the queues (and never starved: W / T stays far below beta)
DEEP = {"program_service_s": 100.0, "program_critical_path_s": 100.0}


def engine_fixture(policy, **settings):
    @pytest.fixture(scope="module")
    def fixture(tiny_model_path):
        runner = EngineRunner(tiny_model_path, policy, max_num_seqs=2, **settings)
        yield runner
        runner.shutdown()

    return fixture


stock = engine_fixture(None)
fcfs = engine_fixture("fcfs")
plas = engine_fixture("plas", beta=BETA, reevaluate_every_steps=1, **FAST_QUEUES)
atlas = engine_fixture("atlas", beta=None, **FAST_QUEUES)


def finished_before(calls, call):
    return [c for c in calls if c.finished_s < call.finished_s]


async def hol_scenario(engine, tag):
    """A program with service behind it holds both slots and queues two more calls; then a
    new program sends one short call."""
    running = Running(2)
    longs = [
        asyncio.create_task(engine.call(prompt(1001 + i), 200, program=f"{tag}-L", state=DEEP, on_output=running))
        for i in range(4)
    ]
    await running.wait()  # two long calls are running (each has ~200 steps to go)
    short = await engine.call(prompt(1999), 8, program=f"{tag}-S")
    return await asyncio.gather(*longs), short


def test_plas_removes_head_of_line_blocking_that_fcfs_has(plas, stock):
    longs, short = plas.run(hol_scenario(plas, "plas"))
    assert finished_before(longs, short) == []  # the short call overtakes every long one
    assert max(c.report["num_preemptions"] for c in longs) >= 1  # a slot was taken back
    assert short.report["num_preemptions"] == 0

    stock_longs, stock_short = stock.run(hol_scenario(stock, "stock"))
    assert len(finished_before(stock_longs, stock_short)) >= 2  # it queued behind the running ones


def test_demotion_of_a_long_call(plas):
    result = plas.run(plas.call(prompt(2000), 200, program="demote-me"))
    report = result.report
    assert report["num_promotions"] == 0  # it ran alone: nothing starved it
    # it entered Q1 and was demoted queue by queue as its attained service grew
    assert report["final_level"] == QueueConfig(**FAST_QUEUES).level_for(report["service_s"])
    assert report["num_demotions"] == report["final_level"] >= 2
    assert len(result.token_ids) == 200


def test_anti_starvation_promotes_a_starved_call(plas):
    """A call whose program has waited beta times its service is promoted to Q1 at the next
    sweep, ahead of the newer programs' calls that outranked it."""
    starved_state = {"program_service_s": 1.0, "program_wait_s": 4.0}  # Q6 by service; W / T = 4 >= beta

    async def scenario():
        running = Running(2)
        blockers = [
            asyncio.create_task(plas.call(prompt(3000 + i), 30, program=f"block{i}", on_output=running))
            for i in range(2)
        ]
        await running.wait()  # both slots taken: the starved call must wait
        # one token: once admitted it finishes in that step (no demotion can requeue it)
        starved = asyncio.create_task(plas.call(prompt(3050), 1, program="heavy", state=starved_state))
        lights = [asyncio.create_task(plas.call(prompt(3100 + i), 30, program=f"light{i}")) for i in range(8)]
        return await starved, await asyncio.gather(*blockers), await asyncio.gather(*lights)

    starved, blockers, lights = plas.run(scenario())
    assert starved.report["num_promotions"] >= 1
    # Without the promotion every light call (a fresh program, Q1) would be admitted first. With
    # it, only calls admitted in the step before the sweep can run ahead: the blockers and at
    # most two lights.
    assert len(finished_before(lights, starved)) <= 2
    assert len(finished_before(blockers + lights, starved)) <= 4


def test_atlas_runs_sibling_threads_together(atlas):
    async def scenario():
        await atlas.call(prompt(4000), 4, program="tree", thread="root")
        running = Running(2)
        background = [
            asyncio.create_task(atlas.call(prompt(4100 + i), 60, program=f"bg{i % 2}", state=DEEP, on_output=running))
            for i in range(6)
        ]
        await running.wait()  # both slots held by background calls far down the queues
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
    assert sum(c.report["num_preemptions"] for c in background) >= 1  # the siblings took their slots


LONGS = (300, 250, 200)  # max_tokens of the long calls
FRESH = (4, 12, 7, 9, 5, 11)  # max_tokens of the fresh programs' calls, one per round


async def preemption_rounds(engine, tag):
    """Long calls of a program far down the queues hold both slots; in each round, once both
    slots are held by long calls again, a new program sends a short call (PLAS: it preempts one)."""
    running = Running(2)
    longs = [
        asyncio.create_task(engine.call(prompt(5000 + i, 24 + 9 * i), n, program=f"{tag}-deep", state=DEEP,
                                   on_output=running))
        for i, n in enumerate(LONGS)
    ]
    fresh = []
    for i, n in enumerate(FRESH):
        await running.wait()
        fresh.append(await engine.call(prompt(5100 + i, 20 + i), n, program=f"{tag}-new{i}"))
        running.reset()  # the next round waits for two long calls to run again
    return await asyncio.gather(*longs), fresh


async def all_at_once(engine, tag):
    calls = [(prompt(5000 + i, 24 + 9 * i), n) for i, n in enumerate(LONGS)]
    calls += [(prompt(5100 + i, 20 + i), n) for i, n in enumerate(FRESH)]
    results = await asyncio.gather(*(engine.call(p, n, program=f"{tag}{i}") for i, (p, n) in enumerate(calls)))
    return results[: len(LONGS)], results[len(LONGS) :]


def test_preemption_loses_nothing_and_gives_stock_vllm_tokens(plas, stock):
    longs, fresh = plas.run(preemption_rounds(plas, "p"))
    ours = longs + fresh
    assert sum(r.report["num_preemptions"] for r in longs) == len(FRESH)  # one per round
    assert all(r.report["num_preemptions"] == 0 for r in fresh)
    assert len({r.request_id for r in ours}) == len(ours)
    assert [len(r.token_ids) for r in ours] == list(LONGS + FRESH)  # nothing truncated or duplicated
    assert all(r.finish_reason == "length" and r.num_streamed >= 1 for r in ours)

    stock_longs, stock_fresh = stock.run(all_at_once(stock, "s"))
    assert [r.token_ids for r in ours] == [r.token_ids for r in stock_longs + stock_fresh]


def test_n_greater_than_one_and_abort_keep_working(plas):
    async def scenario():
        both = await plas.call(prompt(7000), 12, program="multi", n=2)
        running = Running(1)
        task = asyncio.create_task(
            plas.call(prompt(7001), 500, program="aborted", request_id="to-abort", on_output=running)
        )
        await running.wait()  # it is generating (~500 steps to go)
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
