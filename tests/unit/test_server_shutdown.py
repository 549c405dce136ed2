"""The engine replica's report flusher stops when Ray Serve shuts the replica down.

Ray Serve ends a replica by awaiting its ``__del__`` (``LLMServer.__del__`` shuts the
engine down). The replica is built without ``start()`` (no engine, no Ray): only the
flusher's state, a fake program table and a fake engine.
"""

import asyncio

import pytest

from autellix_ray.serve.server import AutellixLLMServer


class Recorder:
    """The program table's ``report_calls.remote`` and the engine's ``shutdown``, logged in order."""

    def __init__(self) -> None:
        self.events: list = []
        self.report_calls = self  # table.report_calls.remote(batch)

    def remote(self, batch):
        self.events.append(("report", batch))
        return asyncio.sleep(0)

    async def shutdown(self) -> None:
        self.events.append(("engine shutdown",))


# Python's own __del__ at garbage collection makes an un-awaited coroutine of the async
# destructor (LLMServer's too); Ray Serve awaits it, as this test does.
@pytest.mark.filterwarnings("ignore:coroutine 'AutellixLLMServer.__del__' was never awaited")
def test_shutdown_flushes_held_reports_then_stops_the_flusher_and_the_engine():
    log = Recorder()

    async def scenario():
        server = AutellixLLMServer.__new__(AutellixLLMServer)
        server._reports, server._table, server.engine = [], log, log
        server._stopping = asyncio.Event()
        server._flusher = asyncio.get_running_loop().create_task(server._flush_reports_forever())
        server._reports.append({"program_id": "p"})  # finished before shutdown, not yet flushed
        await asyncio.wait_for(server.__del__(), 60)  # the deadline only bounds a failure
        return server._flusher, asyncio.all_tasks() - {asyncio.current_task()}

    flusher, still_running = asyncio.run(scenario())
    assert flusher.done() and not flusher.cancelled() and flusher.exception() is None
    assert still_running == set()
    assert log.events == [("report", [{"program_id": "p"}]), ("engine shutdown",)]
