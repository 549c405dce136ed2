"""Group commit: the calls of one process share batch RPCs to a central actor.

At most one RPC is in flight. A call arriving while none is in flight opens a ``window_s``
window (0: the current turn of the event loop) and goes with the calls of that window; calls
arriving while an RPC is in flight wait, and all go in the next RPC (at most ``max_batch``)
as soon as it returns. At low load that is one call per RPC; when the actor is slow its
latency grows, batches grow with it and its cost per call falls (the actor's per-RPC cost,
about 1 ms of CPU here, is paid once per batch).

Failures: ``send`` raising fails the calls of its batch only (the next batch goes on), and
calls ``on_failure``; a caller that stops waiting (``asyncio.wait_for`` around ``submit``, or
its task cancelled) before its RPC is sent is dropped from the queue, so a dead or stalled
actor cannot make the queue grow without bound. ``send`` must bound its own RPC's wait.

Used by the engine replica for the program table's ``begin_calls`` (``server.py``) and by the
request router for the router actor's ``route_batch`` (``router.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class GroupCommit:
    def __init__(self, send: Callable[[list], Awaitable[list]], window_s: float, max_batch: int,
                 on_failure: Callable[[BaseException], None] | None = None) -> None:
        """``send(batch)``: one RPC for the batch's call arguments, answering one result per call, in order."""
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._send = send
        self.window_s = window_s
        self.max_batch = max_batch
        self._on_failure = on_failure
        self._queue: list[tuple[Any, asyncio.Future]] = []
        self.busy = False  # a window is open or an RPC is in flight: new calls just queue
        self._task: asyncio.Task | None = None  # the RPC in flight (a reference keeps it alive)
        self.num_rpcs = 0

    @property
    def num_queued(self) -> int:
        return len(self._queue)

    async def submit(self, args: Any) -> Any:
        """The call's result from the next batch RPC (raises what that RPC raised)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((args, future))
        if not self.busy:  # nothing in flight: open the window, then send
            self.busy = True
            if self.window_s > 0:
                loop.call_later(self.window_s, self._send_next)
            else:
                loop.call_soon(self._send_next)
        try:
            return await asyncio.shield(future)
        finally:
            future.cancel()  # no-op once answered; a call still queued is then not sent

    def _send_next(self) -> None:
        """Send the waiting calls (at most ``max_batch``) in one RPC, or go idle if none wait."""
        waiting = [c for c in self._queue if not c[1].done()]  # drop calls that stopped waiting
        batch, self._queue = waiting[: self.max_batch], waiting[self.max_batch:]
        if not batch:
            self.busy, self._task = False, None  # the next arrival opens a window
            return
        self._task = asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list) -> None:
        try:
            await self._call(batch)
        except asyncio.CancelledError:  # the loop is shutting down: send nothing more
            for _, future in batch:
                future.cancel()
            self.busy, self._task = False, None
            raise
        self._send_next()  # what arrived meanwhile goes now, in one RPC

    async def _call(self, batch: list) -> None:
        self.num_rpcs += 1
        try:
            results = await self._send([args for args, _ in batch])
        except Exception as e:  # noqa: BLE001 - any failure goes to every call of this batch
            if self._on_failure is not None:
                self._on_failure(e)
            for _, future in batch:
                if not future.done():
                    future.set_exception(e)
            return
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)
