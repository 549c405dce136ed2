"""The replica group-commits its ``begin_calls``: at most one RPC in flight, the calls that
arrive meanwhile go together in the next one.

The replica is built without ``start()`` (no engine, no Ray) and talks to a fake table whose
every ``begin_calls`` RPC waits for the test to release it, so what goes in which RPC does not
depend on timing. Waits in the tests are bounded only to turn a failure into an error.
"""

import asyncio

import pytest

from autellix_ray.serve import server as server_module
from autellix_ray.serve.server import BEGIN_BATCH_S, MAX_BEGIN_BATCH, AutellixLLMServer

# Python's own __del__ at garbage collection makes an un-awaited coroutine of the replica's
# async destructor (Ray Serve awaits it; these replicas never started).
pytestmark = pytest.mark.filterwarnings("ignore:coroutine 'AutellixLLMServer.__del__' was never awaited")


class Rpc:
    """One ``begin_calls`` RPC the fake table received; it answers when released."""

    def __init__(self, calls: list) -> None:
        self.calls = calls
        self._released = asyncio.Event()
        self._error: Exception | None = None

    @property
    def threads(self) -> list[str]:
        return [thread for _, thread, _ in self.calls]

    def answer(self) -> None:
        self._released.set()

    def fail(self, error: Exception) -> None:
        self._error = error
        self._released.set()

    async def result(self) -> list[dict]:
        await self._released.wait()
        if self._error is not None:
            raise self._error
        return [{"program_service_s": 1.0, "state_of": thread} for thread in self.threads]


class FakeTable:
    """``table.begin_calls.remote(calls)``: logs the RPC and returns an awaitable of its answer."""

    def __init__(self) -> None:
        self.rpcs: list[Rpc] = []
        self.begin_calls = self

    def remote(self, calls: list) -> object:
        rpc = Rpc(list(calls))
        self.rpcs.append(rpc)
        return rpc.result()


@pytest.fixture
def long_timeout(monkeypatch):
    """A per-call wait that cannot expire during a test (the tests decide when RPCs answer)."""
    monkeypatch.setattr(server_module, "TABLE_TIMEOUT_S", 60.0)


def make_server(table: FakeTable) -> AutellixLLMServer:
    server = AutellixLLMServer.__new__(AutellixLLMServer)
    server._table = table
    server._init_begins()
    return server


async def until(condition, what: str) -> None:
    """Let the loop run until ``condition()``; the 30 s bound only turns a hang into an error."""
    deadline = asyncio.get_running_loop().time() + 30
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


def call(server: AutellixLLMServer, thread: str) -> asyncio.Task:
    return asyncio.get_running_loop().create_task(server._program_state("p", thread, []))


def test_a_lone_call_has_its_own_rpc_and_the_replica_goes_idle_after(long_timeout):
    async def scenario():
        table = FakeTable()
        server = make_server(table)
        first = call(server, "a")
        await until(lambda: len(table.rpcs) == 1, "the window closes and the RPC is sent")
        table.rpcs[0].answer()
        assert await first == {"program_service_s": 1.0, "state_of": "a"}
        await until(lambda: not server._begin_group.busy, "the replica goes idle")
        second = call(server, "b")  # a later call opens a new window and a new RPC
        await until(lambda: len(table.rpcs) == 2, "the second RPC is sent")
        table.rpcs[1].answer()
        assert (await second)["state_of"] == "b"
        return [rpc.threads for rpc in table.rpcs]

    assert asyncio.run(scenario()) == [["a"], ["b"]]


def test_calls_arriving_together_at_an_idle_replica_share_the_window_rpc(long_timeout):
    async def scenario():
        table = FakeTable()
        server = make_server(table)
        calls = [call(server, f"t{i}") for i in range(5)]  # all queued before the window closes
        await until(lambda: len(table.rpcs) == 1, "the window's RPC is sent")
        table.rpcs[0].answer()
        states = await asyncio.gather(*calls)
        return table, states

    table, states = asyncio.run(scenario())
    assert [rpc.threads for rpc in table.rpcs] == [[f"t{i}" for i in range(5)]]
    assert [s["state_of"] for s in states] == [f"t{i}" for i in range(5)]


def test_calls_arriving_while_an_rpc_is_in_flight_go_in_exactly_one_next_rpc(long_timeout):
    waves, per_wave = 5, 10
    n = waves * per_wave

    async def scenario():
        table = FakeTable()
        server = make_server(table)
        first = call(server, "first")
        await until(lambda: len(table.rpcs) == 1, "the first RPC is sent")
        waiting = []
        for wave in range(waves):  # spread over several windows' worth of time
            waiting += [call(server, f"w{i}") for i in range(wave * per_wave, (wave + 1) * per_wave)]
            queued = len(waiting)
            await until(lambda q=queued: server._begin_group.num_queued == q, "the wave is queued")
            await asyncio.sleep(3 * BEGIN_BATCH_S)
        assert len(table.rpcs) == 1  # nothing else is sent while the first RPC is in flight
        table.rpcs[0].answer()
        assert (await first)["state_of"] == "first"
        await until(lambda: len(table.rpcs) == 2, "the queued calls are sent when the first RPC returns")
        table.rpcs[1].answer()
        states = await asyncio.gather(*waiting)
        await until(lambda: not server._begin_group.busy, "the replica goes idle")
        return table, states

    table, states = asyncio.run(scenario())
    assert [rpc.threads for rpc in table.rpcs] == [["first"], [f"w{i}" for i in range(n)]]
    assert [s["state_of"] for s in states] == [f"w{i}" for i in range(n)]  # each call its own state


def test_a_batch_holds_at_most_max_begin_batch_calls(long_timeout):
    extra = 10

    async def scenario():
        table = FakeTable()
        server = make_server(table)
        first = call(server, "first")
        await until(lambda: len(table.rpcs) == 1, "the first RPC is sent")
        waiting = [call(server, f"w{i}") for i in range(MAX_BEGIN_BATCH + extra)]
        await until(lambda: server._begin_group.num_queued == MAX_BEGIN_BATCH + extra, "every later call is queued")
        table.rpcs[0].answer()
        await until(lambda: len(table.rpcs) == 2, "a full batch is sent")
        table.rpcs[1].answer()
        await until(lambda: len(table.rpcs) == 3, "the rest is sent next")
        table.rpcs[2].answer()
        await asyncio.gather(first, *waiting)
        return table

    table = asyncio.run(scenario())
    assert [len(rpc.calls) for rpc in table.rpcs] == [1, MAX_BEGIN_BATCH, extra]
    assert table.rpcs[2].threads == [f"w{i}" for i in range(MAX_BEGIN_BATCH, MAX_BEGIN_BATCH + extra)]


def test_a_failed_rpc_fails_only_its_own_batch_and_the_replica_reconnects_by_name(long_timeout, monkeypatch):
    looked_up = []

    async def scenario():
        table = FakeTable()
        monkeypatch.setattr(server_module.ray, "get_actor", lambda name, namespace: looked_up.append(name) or table)
        server = make_server(table)
        first = call(server, "first")
        await until(lambda: len(table.rpcs) == 1, "the first RPC is sent")
        waiting = [call(server, f"w{i}") for i in range(3)]
        await until(lambda: server._begin_group.num_queued == 3, "the later calls are queued")
        table.rpcs[0].fail(RuntimeError("table died"))
        assert await first == {}  # its batch failed: engine-local state
        await until(lambda: len(table.rpcs) == 2, "the queued calls are sent in the next RPC")
        table.rpcs[1].answer()
        return table, await asyncio.gather(*waiting)

    table, states = asyncio.run(scenario())
    assert [rpc.threads for rpc in table.rpcs] == [["first"], ["w0", "w1", "w2"]]
    assert [s["state_of"] for s in states] == ["w0", "w1", "w2"]  # the next batch is unaffected
    assert looked_up == [server_module.PROGRAM_TABLE_NAME]  # the failure dropped the handle


def test_a_call_that_stopped_waiting_before_its_rpc_was_sent_is_not_sent(long_timeout):
    async def scenario():
        table = FakeTable()
        server = make_server(table)
        first = call(server, "first")
        await until(lambda: len(table.rpcs) == 1, "the first RPC is sent")
        waiting = {t: call(server, t) for t in ("a", "gone", "b")}
        await until(lambda: server._begin_group.num_queued == 3, "the later calls are queued")
        waiting["gone"].cancel()  # e.g. its client went away
        await asyncio.gather(waiting["gone"], return_exceptions=True)
        table.rpcs[0].answer()
        await until(lambda: len(table.rpcs) == 2, "the next RPC is sent")
        table.rpcs[1].answer()
        await asyncio.gather(first, waiting["a"], waiting["b"])
        return table

    table = asyncio.run(scenario())
    assert [rpc.threads for rpc in table.rpcs] == [["first"], ["a", "b"]]


def test_every_call_waits_at_most_the_table_timeout_when_the_table_never_answers(monkeypatch):
    monkeypatch.setattr(server_module, "TABLE_TIMEOUT_S", 0.05)

    async def scenario():
        table = FakeTable()  # its RPCs are never released
        server = make_server(table)
        first = call(server, "first")
        await until(lambda: len(table.rpcs) == 1, "the first RPC is sent")
        later = [call(server, f"w{i}") for i in range(5)]
        return await asyncio.wait_for(asyncio.gather(first, *later), 30), table

    states, table = asyncio.run(scenario())
    assert states == [{}] * 6  # every call goes on with engine-local state
    assert len(table.rpcs) <= 2 and table.rpcs[0].threads == ["first"]
