"""The engine replica: Ray Serve LLM's ``LLMServer`` with program context around each call.

One replica hosts one vLLM engine whose scheduler is Autellix's (the engine kwargs
come from ``autellix_engine_kwargs``). Around each chat/completion call it:
1. names the call's program and thread: body ``session_id`` (or the ``x-session-id``
   header, which Ray Serve carries as the request's session id), thread and parent
   threads from ``vllm_xargs`` (``thread_id``, ``parent_thread_ids``); a call with no
   program is a one-call program; a call of a program with no thread gets a fresh
   thread id, written into ``vllm_xargs`` so the engine reports it under that id;
2. asks the program-table actor for the program's state (``begin_calls``) and passes it to
   the scheduler in ``vllm_xargs``; if the actor does not answer within ``TABLE_TIMEOUT_S``
   the call goes on with the engine-local state only. Begins are group-committed
   (``group_commit.py``): at most one ``begin_calls`` RPC in flight per replica, a
   ``BEGIN_BATCH_S`` window at an idle replica, at most ``MAX_BEGIN_BATCH`` calls per RPC;
   a failed RPC fails the calls of its batch only (they run with engine-local state);
3. collects every finished call's report from the engine (a tap on vLLM's output
   processor sees ``kv_transfer_params["autellix"]`` for streaming and non-streaming
   calls alike) and sends them to the table in batches every ``REPORT_FLUSH_S`` (and once
   more when the replica shuts down, after which the flusher has stopped).
   If the tap cannot be installed (a renamed Ray or vLLM internal, see ``_compat.py``)
   the replica fails to start instead of serving without reports.
It publishes routing stats: calls in flight, KV usage, prefix-cache hit rate, totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import ray
from ray import serve
from ray.serve.llm import LLMServer

from autellix_ray.serve._compat import request_session_id, tap_output_processor
from autellix_ray.serve.group_commit import GroupCommit
from autellix_ray.serve.metrics import record_call
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME, REPORT_FLUSH_S
from autellix_ray.vllm import REPORT_KEY
from autellix_ray.vllm.context import thread_labels

logger = logging.getLogger(__name__)

TABLE_TIMEOUT_S = 0.5
BEGIN_BATCH_S = 0.002  # a call arriving at an idle replica waits 2 ms for others to share its RPC
MAX_BEGIN_BATCH = 512  # calls per begin_calls RPC; more wait for the next one
MAX_BUFFERED_REPORTS = 10_000


class AutellixLLMServer(LLMServer):
    async def start(self):
        await super().start()
        self._in_flight = 0
        self._reports: list[dict[str, Any]] = []
        self._finished: dict[str, int] = {"calls": 0, "preemptions": 0, "promotions": 0}
        self._kv_usage = 0.0
        self._prompt_tokens = self._cached_tokens = 0  # for the prefix-cache hit rate
        self._table = None
        self._init_begins()
        self._engine_id = serve.get_replica_context().replica_id.unique_id
        tap_output_processor(self, self._on_engine_output)  # RuntimeError: the replica does not start
        self._stopping = asyncio.Event()  # set on shutdown: the flusher's last flush, then it returns
        self._flusher = asyncio.get_running_loop().create_task(self._flush_reports_forever())

    # -- calls --------------------------------------------------------------
    async def chat(self, request, raw_request_info=None):
        await self._attach_program(request)
        return self._counted(await super().chat(request, raw_request_info))

    async def completions(self, request, raw_request_info=None):
        await self._attach_program(request)
        return self._counted(await super().completions(request, raw_request_info))

    async def _counted(self, stream):
        self._in_flight += 1
        try:
            async for item in stream:
                yield item
        finally:
            self._in_flight -= 1

    async def _attach_program(self, request) -> None:
        program_id = getattr(request, "session_id", None) or request_session_id()
        if not program_id:
            return  # a one-call program: the engine schedules it as such
        request.session_id = program_id
        xargs = dict(getattr(request, "vllm_xargs", None) or {})
        thread_id, parents = thread_labels(xargs)  # read as the engine's scheduler reads them
        # an unlabelled call is its own thread: the engine must report it under the id the
        # table was told, or the table's row for that thread stays active forever
        thread_id = thread_id or f"call-{uuid.uuid4().hex}"
        xargs["thread_id"] = thread_id
        state = await self._program_state(program_id, thread_id, list(parents))
        xargs.update(state)
        request.vllm_xargs = xargs

    def _init_begins(self) -> None:
        self._begin_group = GroupCommit(self._send_begin_calls, BEGIN_BATCH_S, MAX_BEGIN_BATCH,
                                        on_failure=self._forget_table)

    async def _program_state(self, program_id: str, thread_id: str, parents: list) -> dict:
        """The program's state from the table (group commit: see the module docstring)."""
        try:
            return await asyncio.wait_for(
                self._begin_group.submit((program_id, thread_id, [str(p) for p in parents])), TABLE_TIMEOUT_S
            )
        except Exception as e:  # noqa: BLE001 - table dead or slow: engine-local state only
            logger.warning("program table unavailable (%s); engine-local state", type(e).__name__)
            return {}

    async def _send_begin_calls(self, calls: list) -> list:
        table = self._table or ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
        self._table = table
        return await asyncio.wait_for(table.begin_calls.remote(calls), TABLE_TIMEOUT_S)

    def _forget_table(self, error: BaseException) -> None:
        self._table = None  # reconnect by name for the next RPC

    # -- reports ------------------------------------------------------------
    def _on_engine_output(self, out) -> None:
        """Every engine-core output passes here (``tap_output_processor``); finished ones carry a report."""
        params = out.kv_transfer_params
        if params and out.finish_reason is not None and REPORT_KEY in params:
            params[REPORT_KEY]["engine_id"] = self._engine_id  # also shown to the client
            self._collect(params[REPORT_KEY])

    def _collect(self, report: dict[str, Any]) -> None:
        record_call(report)
        self._finished["calls"] += 1
        self._finished["preemptions"] += int(report.get("num_preemptions", 0))
        self._finished["promotions"] += int(report.get("num_promotions", 0))
        self._kv_usage = float(report.get("engine_kv_usage", self._kv_usage))
        self._prompt_tokens += int(report.get("num_prompt_tokens", 0))
        self._cached_tokens += int(report.get("num_cached_tokens", 0))
        if len(self._reports) < MAX_BUFFERED_REPORTS:
            self._reports.append(dict(report))

    async def _flush_reports_forever(self) -> None:
        """Flush every ``REPORT_FLUSH_S``; once ``_stopping`` is set, flush once more and return."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), REPORT_FLUSH_S)
            await self._flush_reports()
            if self._stopping.is_set():
                return

    async def _flush_reports(self) -> None:
        if not self._reports:
            return
        batch, self._reports = self._reports, []
        try:
            table = self._table or ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
            await asyncio.wait_for(table.report_calls.remote(batch), 5.0)
        except Exception as e:  # noqa: BLE001 - the flusher must outlive any table failure
            self._table = None
            # keep the batch for the next flush (bounded), so a restarting table loses nothing
            self._reports = (batch + self._reports)[:MAX_BUFFERED_REPORTS]
            logger.warning("could not report %d calls (%s); will retry", len(batch), type(e).__name__)

    async def __del__(self) -> None:
        """Ray Serve's replica shutdown (after in-flight calls drained): the flusher sends what
        it holds and stops, then the engine shuts down (``LLMServer.__del__``)."""
        if getattr(self, "_flusher", None) is not None:
            self._stopping.set()
            await self._flusher
        await super().__del__()

    async def record_routing_stats(self) -> dict[str, Any]:
        """What the request router sees of this replica (``replica.routing_stats``)."""
        stats = await super().record_routing_stats()
        hits = self._cached_tokens / self._prompt_tokens if self._prompt_tokens else 0.0
        return {
            **(stats or {}),
            "num_calls": self._in_flight,  # calls in this engine now, running + waiting
            "kv_usage": self._kv_usage,  # KV cache fraction in use, as of the last finished call
            "prefix_cache_hit_rate": hits,  # prompt tokens found in the prefix cache / prompt tokens
            "finished": dict(self._finished),  # totals over finished calls: calls, preemptions, promotions
        }

