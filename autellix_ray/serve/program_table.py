"""The cluster-wide program table: core's ``ProgramService`` as one named, detached Ray actor.

What the table does (owners, begin/report, critical path across engines, pins, checkpoints)
is ``core/program_service.py``; here it gets the wall clock, the GCS store and Prometheus
metrics. Replicas call it twice per call: ``begin_calls`` when calls arrive (group-committed:
at most one RPC in flight per replica, the calls that arrive meanwhile go together in the next)
and ``report_calls`` with finished calls (flushed every ``REPORT_FLUSH_S``), so the table is
never on a token's path. Checkpoint writes run on a background thread (``BackgroundWrites``).
It is one actor, not sharded: docs/program_table.md measures what it sustains.

Failure. The actor restarts when it dies (``max_restarts=-1``) and restores its last
checkpoint from Ray's GCS key-value store (``core/checkpoint.py``: one key per changed
program, at most ``MAX_KEYS_PER_CHECKPOINT`` per checkpoint, at most every
``CHECKPOINT_INTERVAL_S`` and not while the previous one is still being written, at once for
a program that starts or ends). Loss bound: the calls begun or reported in the last
``CHECKPOINT_INTERVAL_S`` before the crash plus a checkpoint being written (longer only if more
programs change per interval than a checkpoint writes: the oldest changes go first); reports
the actor did not acknowledge stay buffered in the replicas and are sent again. Meanwhile
replicas schedule with engine-local state (``server.TABLE_TIMEOUT_S``) and program endpoints
answer 503 with Retry-After.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import ray

from autellix_ray.core import ProgramService
from autellix_ray.serve.metrics import TableMetrics

logger = logging.getLogger(__name__)

PROGRAM_TABLE_NAME = "autellix-program-table"
NAMESPACE = "autellix"
REPORT_FLUSH_S = 0.05
SCAN_CHUNK = 10_000

__all__ = ["GcsStore", "ProgramTableActor", "ProgramTableService", "get_or_create_program_table"]


class GcsStore:
    """Ray's GCS key-value store (namespace ``NAMESPACE``): survives the actor, not the cluster.

    get/put/delete go through ``serve/_compat.py``; listing keys and reading many at once
    (restore) use the GCS client directly, which ``_compat`` does not wrap yet.
    """

    def __init__(self) -> None:
        from autellix_ray.serve import _compat

        self._kv = _compat

    def get(self, key: bytes) -> bytes | None:
        return self._kv.internal_kv_get(key, NAMESPACE)

    def put(self, key: bytes, value: bytes) -> None:
        self._kv.internal_kv_put(key, value, NAMESPACE)

    def delete(self, key: bytes) -> None:
        self._kv.internal_kv_del(key, NAMESPACE)

    def scan(self, prefix: bytes):
        from ray.experimental import internal_kv

        keys = internal_kv._internal_kv_list(prefix, namespace=NAMESPACE)
        client = internal_kv.internal_kv_get_gcs_client()
        for first in range(0, len(keys), SCAN_CHUNK):
            yield from client.internal_kv_multi_get(keys[first:first + SCAN_CHUNK], namespace=NAMESPACE.encode()).items()


class BackgroundWrites:
    """A store whose puts and deletes run in order on one writer thread.

    Why: a checkpoint of 1,000 changed programs is up to 1,000 synchronous GCS puts (0.5-0.7 s
    here); inside an actor method every begin_calls RPC waited behind them (docs/program_table.md).
    ``backlog()`` tells the service a checkpoint is still being written (it skips the next
    periodic one; the changes stay dirty and coalesce); ``flush()`` waits for every write queued
    so far (explicit starts and ends). Reads go straight to the store (restore runs before any
    write).
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, daemon=True, name="checkpoint-writes").start()

    def get(self, key: bytes) -> bytes | None:
        return self._store.get(key)

    def scan(self, prefix: bytes):
        return self._store.scan(prefix)

    def put(self, key: bytes, value: bytes) -> None:
        self._queue.put((self._store.put, (key, value)))

    def delete(self, key: bytes) -> None:
        self._queue.put((self._store.delete, (key,)))

    def backlog(self) -> int:
        return self._queue.unfinished_tasks

    def flush(self, timeout_s: float = 30.0) -> bool:
        done = threading.Event()
        self._queue.put((done.set, ()))
        return done.wait(timeout_s)

    def close(self) -> None:
        self._queue.put(None)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            write, args = item
            try:
                write(*args)
            except Exception:  # a lost write is re-done when the program changes again
                logger.exception("program table: checkpoint write failed")
            finally:
                self._queue.task_done()
        self._queue.task_done()


class ProgramTableService(ProgramService):
    """Core's service with the actor's clock and metrics (a plain class: tests, benchmarks)."""

    def __init__(self, clock: Callable[[], float] = time.time, **options: Any) -> None:
        # wall clock, not monotonic: a restarted actor may be on another node
        super().__init__(clock=clock, hooks=TableMetrics(), **options)


@ray.remote(num_cpus=0)
class ProgramTableActor(ProgramTableService):
    """The service as a Ray actor, checkpointing into the GCS.

    A thread asks the actor itself to checkpoint the changed programs every interval, so
    the last changes before a quiet period are saved too (the request goes through the
    actor's queue: it never runs while another method mutates the table). It stops when
    the actor exits.
    """

    def __init__(self, **options: Any) -> None:
        self._writes = BackgroundWrites(GcsStore())
        super().__init__(store=self._writes, **options)
        self._stopped = threading.Event()
        me = ray.get_runtime_context().current_actor
        threading.Thread(target=self._tick, args=(me,), daemon=True, name="checkpoints").start()

    def _tick(self, me: Any) -> None:
        while not self._stopped.wait(self.checkpoint_interval_s):
            try:
                ray.get(me.checkpoint_if_dirty.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - shutting down or restarting: the next tick retries
                pass

    def __ray_shutdown__(self) -> None:  # Ray calls it when the actor exits gracefully
        self._stopped.set()
        self._writes.flush(timeout_s=5.0)
        self._writes.close()


def get_or_create_detached(actor_cls: Any, name: str, **options: Any):
    """The named detached actor (restarted when it dies), created on first use (idempotent
    across processes: a second caller gets the first one's actor and its options)."""
    return actor_cls.options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=3,
    ).remote(**options)


def get_or_create_program_table(**options: Any):
    return get_or_create_detached(ProgramTableActor, PROGRAM_TABLE_NAME, **options)
