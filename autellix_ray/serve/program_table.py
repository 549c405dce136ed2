"""The cluster-wide program table: one named, detached Ray actor.

``ProgramTableService`` is a plain class (tested without Ray); ``ProgramTableActor``
is the same class as a Ray actor. Replicas talk to it twice per call:
- ``begin_calls`` when calls arrive (a replica batches the arrivals of a few ms into
  one RPC): registers each call's thread and returns its program's state (service,
  critical path, wait), which the replica hands to its engine's scheduler;
- ``report_calls`` with finished calls, batched (a replica flushes its buffer every
  ``REPORT_FLUSH_S``), so the table is never on a token's path.
Programs start explicitly (``start_program``, which may assign an unguessable id
and records the owner) or implicitly on their first call; they end explicitly or
by idle timeout (``collect_idle``, also run on every report batch).
It is one actor, not sharded: docs/program_table.md measures what it sustains
(below the 20k calls/s target at the batch sizes replicas send, and falling as the
whole-state checkpoint grows with the rows).

Failure. The actor restarts when it dies (``max_restarts=-1``) and restores its last
checkpoint: the whole state (rows, owners, pending pins) pickled into Ray's GCS key-value
store, written at most every ``CHECKPOINT_INTERVAL_S`` after calls change it and at once
when a program starts or ends (so ownership is never lost). Loss bound: the calls
begun or reported in the last ``CHECKPOINT_INTERVAL_S`` before the crash; reports the
actor did not acknowledge stay buffered in the replicas and are sent again. Meanwhile
replicas schedule with engine-local state (``server.TABLE_TIMEOUT_S``) and program
endpoints answer 503 with Retry-After.
"""

from __future__ import annotations

import pickle
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import ray

from autellix_ray.core import ProgramTable, UnknownProgram
from autellix_ray.serve.metrics import table_metrics

PROGRAM_TABLE_NAME = "autellix-program-table"
NAMESPACE = "autellix"
REPORT_FLUSH_S = 0.05
MAX_ID_CHARS = 256
MAX_PENDING_PINS = 100_000
CHECKPOINT_KEY = b"program-table-checkpoint"
CHECKPOINT_INTERVAL_S = 1.0


class MemoryStore:
    """Checkpoint store for tests and single-process use."""

    def __init__(self) -> None:
        self.data: bytes | None = None

    def get(self) -> bytes | None:
        return self.data

    def put(self, data: bytes) -> None:
        self.data = data


class GcsStore:
    """Checkpoint store in Ray's GCS key-value store: survives the actor, not the cluster."""

    def get(self) -> bytes | None:
        from ray.experimental.internal_kv import _internal_kv_get

        return _internal_kv_get(CHECKPOINT_KEY, namespace=NAMESPACE)

    def put(self, data: bytes) -> None:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(CHECKPOINT_KEY, data, overwrite=True, namespace=NAMESPACE)


def _row_view(row) -> dict[str, Any]:
    view = asdict(row)
    view["threads"] = {
        tid: {k: v for k, v in t.items() if k != "thread_id"} for tid, t in view["threads"].items()
    }
    view.pop("explicit", None)
    return view


class ProgramTableService:
    def __init__(
        self,
        idle_timeout_s: float = 600.0,
        max_programs: int = 1_000_000,
        clock: Callable[[], float] = time.time,  # wall clock: a restarted actor may be on another node
        store: MemoryStore | GcsStore | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.table = ProgramTable(idle_timeout_s=idle_timeout_s, max_programs=max_programs)
        self.clock = clock
        self.owners: dict[str, str | None] = {}
        self.pending_pins: dict[str, str] = {}
        self.num_reports = 0
        self.store = store
        self.checkpoint_interval_s = checkpoint_interval_s
        self.num_checkpoints = 0
        self.restored_programs = 0
        self._dirty = False
        self._last_checkpoint_s = self.clock()
        if store is not None:
            self._restore()

    # -- checkpoints ----------------------------------------------------------
    def _restore(self) -> None:
        data = self.store.get()
        if data:
            self.table, self.owners, self.pending_pins, self.num_reports = pickle.loads(data)
            self.restored_programs = len(self.table)

    def checkpoint(self) -> int:
        """Write the state to the store now; returns its size in bytes."""
        if self.store is None:
            return 0
        data = pickle.dumps((self.table, self.owners, self.pending_pins, self.num_reports))
        self.store.put(data)
        self.num_checkpoints += 1
        self._dirty = False
        self._last_checkpoint_s = self.clock()
        return len(data)

    def checkpoint_if_dirty(self) -> bool:
        if self._dirty and self.store is not None:
            self.checkpoint()
            return True
        return False

    def _changed(self, now: bool = False) -> None:
        self._dirty = True
        if self.store is not None and (now or self.clock() - self._last_checkpoint_s >= self.checkpoint_interval_s):
            self.checkpoint()

    # -- program lifecycle --------------------------------------------------
    def start_program(self, program_id: str | None = None, owner: str | None = None) -> dict[str, Any]:
        if program_id is None:
            program_id = "prog-" + secrets.token_urlsafe(16)
        elif not isinstance(program_id, str) or not 0 < len(program_id) <= MAX_ID_CHARS:
            raise ValueError(f"program_id must be a string of 1-{MAX_ID_CHARS} characters")
        existing = self.owners.get(program_id)
        if program_id in self.table and existing is not None and existing != owner:
            raise PermissionError(f"program {program_id!r} belongs to another caller")
        row = self.table.start_program(program_id, self.clock())
        self.owners.setdefault(program_id, owner)
        self._changed(now=True)
        return _row_view(row)

    def end_program(self, program_id: str, owner: str | None = None) -> dict[str, Any]:
        self._check_owner(program_id, owner)
        row = self.table.end_program(program_id)
        self.owners.pop(program_id, None)
        self._changed(now=True)
        if ray.is_initialized():
            m = table_metrics()
            m["program_latency"].observe(max(0.0, self.clock() - row.started_s))
            m["programs"].set(len(self.table))
        return _row_view(row)

    def get_program(self, program_id: str, owner: str | None = None) -> dict[str, Any]:
        self._check_owner(program_id, owner)
        return _row_view(self.table.get(program_id))

    def _check_owner(self, program_id: str, owner: str | None) -> None:
        if program_id not in self.table:
            raise UnknownProgram(program_id)
        expected = self.owners.get(program_id)
        if expected is not None and expected != owner:
            raise PermissionError(f"program {program_id!r} belongs to another caller")

    # -- calls ----------------------------------------------------------------
    def begin_call(
        self, program_id: str, thread_id: str, parent_thread_ids: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Register a call's arrival; return the program state its engine should use."""
        parents = tuple(parent_thread_ids)
        row = self.table.find(program_id)
        critical_path_start = row.critical_path_start_s(thread_id, parents) if row else None
        row = self.table.call_arrived(program_id, thread_id, parents, self.clock())
        pin = self.pending_pins.pop(program_id, None)
        if pin is not None:
            row.pinned_engines = [pin]
        return {
            "program_service_s": row.service_s,
            "program_critical_path_s": row.critical_path_s
            if critical_path_start is None
            else critical_path_start,
            "program_wait_s": row.wait_s,
        }

    def begin_calls(self, calls: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
        """``begin_call`` for many calls in one RPC (replicas batch arrivals for a few ms)."""
        states = [self.begin_call(p, t, parents) for p, t, parents in calls]
        self._changed()
        return states

    def report_calls(self, reports: list[dict[str, Any]]) -> int:
        """Fold finished calls (the scheduler plugin's reports) into their programs."""
        now = self.clock()
        for r in reports:
            self.table.call_finished(
                r["program_id"],
                r["thread_id"],
                float(r.get("service_s", 0.0)),
                float(r.get("wait_s", 0.0)),
                float(r.get("critical_path_start_s", 0.0)),
                now,
            )
        self.num_reports += len(reports)
        if ray.is_initialized():
            table_metrics()["programs"].set(len(self.table))
        for program_id in self.table.collect_idle(now):
            self.owners.pop(program_id, None)
        self._changed()
        return len(reports)

    def set_pin(self, program_id: str, engine_id: str | None) -> None:
        """Record the engine the router pinned a program to (None: pin dropped).

        The router pins a program before its first call reaches a replica, so a pin
        for a program with no row yet waits in ``pending_pins`` for ``begin_call``.
        """
        row = self.table.find(program_id)
        if row is not None:
            row.pinned_engines = [] if engine_id is None else [engine_id]
        elif engine_id is None:
            self.pending_pins.pop(program_id, None)
        else:
            self.pending_pins[program_id] = engine_id
            while len(self.pending_pins) > MAX_PENDING_PINS:
                self.pending_pins.pop(next(iter(self.pending_pins)))

    def stats(self) -> dict[str, Any]:
        return {
            "num_programs": len(self.table),
            "num_reports": self.num_reports,
            "num_evicted": self.table.num_evicted,
            "num_collected": self.table.num_collected,
            "num_checkpoints": self.num_checkpoints,
            "restored_programs": self.restored_programs,
        }


@ray.remote(num_cpus=0)
class ProgramTableActor(ProgramTableService):
    """The service as a Ray actor, checkpointing into the GCS.

    A daemon thread asks the actor itself to write a dirty state every interval, so the
    last changes before a quiet period are saved too (the request goes through the
    actor's queue: it never runs while another method mutates the table).
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(store=GcsStore(), **options)
        me = ray.get_runtime_context().current_actor
        threading.Thread(target=self._tick, args=(me,), daemon=True, name="checkpoints").start()

    def _tick(self, me: Any) -> None:
        while True:
            time.sleep(self.checkpoint_interval_s)
            try:
                ray.get(me.checkpoint_if_dirty.remote(), timeout=30)
            except Exception:  # noqa: BLE001 - shutting down or restarting: the next tick retries
                pass


def get_or_create_program_table(**options: Any):
    """The named detached actor, created on first use (idempotent across processes)."""
    return ProgramTableActor.options(
        name=PROGRAM_TABLE_NAME,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=3,
    ).remote(**options)
