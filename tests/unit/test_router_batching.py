"""Group-committed and sharded routing: ``GroupCommit`` with no window, ``RouterService.route_batch``
and the request router's shards (fakes for the actors; their Ray versions run in tests/serve).

The fake actors answer an RPC only when the test releases it, so which call goes in which RPC does
not depend on timing; waits are bounded only to turn a hang into an error.
"""

import asyncio
import zlib
from collections import namedtuple
from types import SimpleNamespace

import pytest

from autellix_ray.serve.group_commit import GroupCommit
from autellix_ray.serve.router import AutellixRequestRouter, RouterService, route_batch_args, shard_of


async def until(condition, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + 30
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


class HeldRpcs:
    """``send(batch)`` for a GroupCommit: logs each batch; it answers when the test releases it."""

    def __init__(self) -> None:
        self.batches: list[list] = []
        self.gates: list[asyncio.Future] = []

    async def send(self, batch: list) -> list:
        self.batches.append(list(batch))
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        await gate
        return [f"answer-{x}" for x in batch]

    def release(self, i: int, error: Exception | None = None) -> None:
        if error is None:
            self.gates[i].set_result(None)
        else:
            self.gates[i].set_exception(error)


def test_without_a_window_the_calls_of_one_loop_turn_share_an_rpc_and_later_ones_the_next():
    async def scenario():
        rpcs, failures = HeldRpcs(), []
        group = GroupCommit(rpcs.send, 0.0, max_batch=100, on_failure=failures.append)
        loop = asyncio.get_running_loop()
        first = [loop.create_task(group.submit(i)) for i in range(3)]  # one turn: one RPC
        await until(lambda: len(rpcs.batches) == 1, "the first RPC is sent")
        later = [loop.create_task(group.submit(i)) for i in range(3, 7)]
        await until(lambda: group.num_queued == 4, "the later calls queue behind the RPC in flight")
        rpcs.release(0, RuntimeError("actor died"))
        with pytest.raises(RuntimeError):
            await first[0]
        await until(lambda: len(rpcs.batches) == 2, "the queued calls go in the next RPC")
        rpcs.release(1)
        answers = await asyncio.gather(*later)
        await until(lambda: not group.busy, "the group goes idle")
        return rpcs.batches, answers, failures, [t.exception() for t in first]

    batches, answers, failures, first_errors = asyncio.run(scenario())
    assert batches == [[0, 1, 2], [3, 4, 5, 6]]
    assert answers == [f"answer-{i}" for i in range(3, 7)]
    assert len(failures) == 1 and all(isinstance(e, RuntimeError) for e in first_errors)  # only its batch failed


def test_group_commit_rejects_an_empty_batch_bound():
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(HeldRpcs().send, 0.0, max_batch=0)


def test_a_batch_of_new_programs_spreads_over_engines_instead_of_herding_onto_the_least_used():
    router = RouterService(short_prompt_tokens=0)  # Algorithm 2: every call is long, new pins go least used
    loads = [("e0", 0), ("e1", 1), ("e2", 1), ("e3", 1)]
    ranked = router.route_batch([loads], [(f"p{i}", 500, 0, ()) for i in range(4)])
    assert ranked[0][0] == "e0"  # the least used, as one call alone would be
    assert sorted(r[0] for r in ranked) == ["e0", "e1", "e2", "e3"]  # then it counts one call more
    assert router.stats()["decisions"] == {"new-pin": 4}
    again = router.route_batch([loads], [(f"p{i}", 500, 0, ()) for i in range(4)])
    assert [r[0] for r in again] == [r[0] for r in ranked]  # pinned calls follow their pins, bumped loads or not
    assert router.stats()["decisions"] == {"new-pin": 4, "pinned": 4}


def test_route_batch_args_send_each_distinct_loads_vector_once():
    a, b = [("e0", 1), ("e1", 0)], [("e0", 2), ("e1", 0)]
    vectors, calls = route_batch_args([("p", 10, a, ()), ("q", 20, list(a), (7,)), ("r", 30, b, ())])
    assert vectors == [a, b]
    assert calls == [("p", 10, 0, ()), ("q", 20, 0, (7,)), ("r", 30, 1, ())]
    ranked = RouterService(policy="kv_cost").route_batch(vectors, calls)
    assert len(ranked) == 3 and all(sorted(r) == ["e0", "e1"] for r in ranked)
    assert ranked[0][0] == "e1" and ranked[2][0] == "e1"  # each call ranks over its own vector's loads


def test_a_programs_shard_is_stable_across_processes_and_shards_share_the_programs():
    assert shard_of("program-42", 4) == zlib.crc32(b"program-42") % 4  # not hash(): that differs per process
    assert shard_of(None, 4) == 0 and shard_of("p", 1) == 0
    counts = [0] * 4
    for i in range(4000):
        counts[shard_of(f"program-{i}", 4)] += 1
    assert all(850 < c < 1150 for c in counts)


class FakeShard:
    """A router actor shard: ``route_batch.remote(loads, calls)`` logs the RPC and answers its
    calls with the loads' engines in reverse order (so the answer is visibly this shard's)."""

    def __init__(self, fail: bool = False) -> None:
        self.rpcs: list[list] = []
        self.fail = fail
        self.route_batch = self

    def remote(self, loads, calls):
        self.rpcs.append([c[0] for c in calls])

        async def answer():
            if self.fail:
                raise RuntimeError("shard died")
            return [[e for e, _ in reversed(loads[which])] for _, _, which, _ in calls]

        return answer()


ReplicaId = namedtuple("ReplicaId", "unique_id")


def replica(name: str, calls: int):
    return SimpleNamespace(replica_id=ReplicaId(name), routing_stats={"num_calls": calls})


def pending(program_id: str, prompt: str):
    return SimpleNamespace(metadata=SimpleNamespace(session_id=program_id), args=[SimpleNamespace(prompt=prompt)])


def test_the_request_router_sends_each_program_to_its_shard_and_falls_back_when_a_shard_fails(monkeypatch):
    fallbacks = []
    # Patched in the method's own globals: once a Serve app has run in this process (tests/serve),
    # Ray Serve has pickled the request router class by value and unpickling it replaced its methods
    # with copies whose globals are no longer this module's.
    monkeypatch.setitem(AutellixRequestRouter.choose_replicas.__globals__, "router_metrics",
                        lambda: {"fallbacks": SimpleNamespace(inc=lambda: fallbacks.append(1))})
    shards = [FakeShard(), FakeShard(fail=True)]
    request_router = object.__new__(AutellixRequestRouter)
    request_router.initialize_state(router=list(shards), policy="kv_cost", shards=2)
    request_router._replica_queue_len_cache = {}
    replicas = [replica("a", 0), replica("b", 5), replica("c", 1)]
    programs = [f"program-{i}" for i in range(12)]

    async def route_all():
        return await asyncio.gather(*(request_router.choose_replicas(replicas, pending(p, "x" * 300)) for p in programs))

    ranked = asyncio.run(route_all())
    for shard, fake in enumerate(shards):  # all of a shard's calls of that loop turn: one RPC
        assert fake.rpcs == [[p for p in programs if shard_of(p, 2) == shard]]
    for p, r in zip(programs, ranked):
        names = [rs[0].replica_id.unique_id for rs in r]
        # shard 0 answers (reversed); shard 1 failed, so those calls are ranked locally: least used first
        assert names == (["c", "b", "a"] if shard_of(p, 2) == 0 else ["a", "c", "b"])
    assert len(fallbacks) == request_router.num_fallbacks == sum(shard_of(p, 2) == 1 for p in programs)
    assert request_router._actors[0] is shards[0] and request_router._actors[1] is None  # looked up again next time
    with pytest.raises(ValueError, match="shards must be >= 1"):
        object.__new__(AutellixRequestRouter).initialize_state(shards=0)
