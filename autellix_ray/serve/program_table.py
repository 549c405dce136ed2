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
It is one actor, not sharded: docs/program_table.md measures what it sustains against
the 20k calls/s target at the batch sizes replicas send.

Failure. The actor restarts when it dies (``max_restarts=-1``) and restores its last
checkpoint from Ray's GCS key-value store. Checkpoints are incremental
(``serve/checkpoint.py``): one key per program, written only when the program's row,
owner or pending pin changed since the last checkpoint (deletions delete the key), at
most ``MAX_KEYS_PER_CHECKPOINT`` keys per checkpoint, at most every
``CHECKPOINT_INTERVAL_S`` after calls change the table, and at once for a program that
starts or ends (so ownership is never lost). Its cost follows the programs that changed,
not the table's size. Loss bound: the calls begun or reported in the last
``CHECKPOINT_INTERVAL_S`` before the crash (longer only if more than
``MAX_KEYS_PER_CHECKPOINT`` programs change per interval: the oldest changes go first);
reports the actor did not acknowledge stay buffered in the replicas and are sent again.
Meanwhile replicas schedule with engine-local state (``server.TABLE_TIMEOUT_S``) and
program endpoints answer 503 with Retry-After.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import ray

from autellix_ray.core import ProgramTable, UnknownProgram
from autellix_ray.core.ids import MAX_ID_CHARS
from autellix_ray.serve.checkpoint import (
    MAX_KEYS_PER_CHECKPOINT,
    Entry,
    KeyValueStore,
    MemoryStore,
    TableCheckpoint,
)
from autellix_ray.serve.metrics import table_metrics

PROGRAM_TABLE_NAME = "autellix-program-table"
NAMESPACE = "autellix"
REPORT_FLUSH_S = 0.05
MAX_PENDING_PINS = 100_000
CHECKPOINT_INTERVAL_S = 1.0
GAUGE_INTERVAL_S = 1.0
SCAN_CHUNK = 10_000

__all__ = ["GcsStore", "MemoryStore", "ProgramTableActor", "ProgramTableService", "get_or_create_program_table"]


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
        store: KeyValueStore | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        max_keys_per_checkpoint: int = MAX_KEYS_PER_CHECKPOINT,
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
        self._checkpoints = None if store is None else TableCheckpoint(store, max_keys_per_checkpoint)
        # program ids changed since the last checkpoint (without a store: cleared on every change)
        self._dirty: dict[str, None] = {} if self._checkpoints is None else self._checkpoints.dirty
        self._last_checkpoint_s = self._gauge_s = self.clock()
        if self._checkpoints is not None:
            self._restore()

    # -- checkpoints ----------------------------------------------------------
    def _restore(self) -> None:
        restored = self._checkpoints.restore()
        restored.load_into(self.table)
        self.owners, self.pending_pins = restored.owners, restored.pending_pins
        self.num_reports = restored.counters.get("num_reports", 0)
        self.restored_programs = len(self.table)

    def _entry(self, program_id: str) -> Entry | None:
        row, pin = self.table.find(program_id), self.pending_pins.get(program_id)
        has_owner = program_id in self.owners
        if row is None and pin is None and not has_owner:
            return None
        return program_id, row, has_owner, self.owners.get(program_id), pin

    def checkpoint(self, first: Iterable[str] = ()) -> int:
        """Write the programs changed since the last checkpoint (``first`` among them, then the
        oldest changes, at most ``max_keys_per_checkpoint`` in all); returns the bytes written."""
        if self._checkpoints is None:
            return 0
        counters = {"num_reports": self.num_reports, "num_evicted": self.table.num_evicted,
                    "num_collected": self.table.num_collected}
        written = self._checkpoints.write(self._entry, counters, first)
        self.num_checkpoints += 1
        self._last_checkpoint_s = self.clock()
        return written

    def checkpoint_if_dirty(self) -> bool:
        self._update_gauge(self.clock())
        if self._dirty and self._checkpoints is not None:
            self.checkpoint()
            return True
        return False

    def _changed(self, now: float, first: Iterable[str] = ()) -> None:
        if self._checkpoints is None:
            self._dirty.clear()
        elif first or now - self._last_checkpoint_s >= self.checkpoint_interval_s:
            self.checkpoint(first)

    def _update_gauge(self, now: float) -> None:
        if now - self._gauge_s >= GAUGE_INTERVAL_S and ray.is_initialized():
            self._gauge_s = now
            table_metrics()["programs"].set(len(self.table))

    def _room_for(self, program_id: str) -> str | None:
        """The row that inserting ``program_id`` will evict (the oldest idle one), if any."""
        table = self.table
        if len(table) < table.max_programs or program_id in table:
            return None
        return next((pid for pid, row in table._rows.items() if row.idle), None)  # core's eviction order

    def _evicted(self, victim: str | None) -> None:
        if victim is not None and victim not in self.table:
            self.owners.pop(victim, None)
            self._dirty[victim] = None

    # -- program lifecycle --------------------------------------------------
    def start_program(self, program_id: str | None = None, owner: str | None = None) -> dict[str, Any]:
        if program_id is None:
            program_id = "prog-" + secrets.token_urlsafe(16)
        elif not isinstance(program_id, str) or not 0 < len(program_id) <= MAX_ID_CHARS:
            raise ValueError(f"program_id must be a string of 1-{MAX_ID_CHARS} characters")
        existing = self.owners.get(program_id)
        if program_id in self.table and existing is not None and existing != owner:
            raise PermissionError(f"program {program_id!r} belongs to another caller")
        victim = self._room_for(program_id)
        now = self.clock()
        row = self.table.start_program(program_id, now)
        self._evicted(victim)
        self.owners.setdefault(program_id, owner)
        self._dirty[program_id] = None
        self._changed(now, first=(program_id,))
        return _row_view(row)

    def end_program(self, program_id: str, owner: str | None = None) -> dict[str, Any]:
        self._check_owner(program_id, owner)
        row = self.table.end_program(program_id)
        self.owners.pop(program_id, None)
        self._dirty[program_id] = None
        now = self.clock()
        self._changed(now, first=(program_id,))
        if ray.is_initialized():
            m = table_metrics()
            m["program_latency"].observe(max(0.0, now - row.started_s))
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
        return self.begin_calls([(program_id, thread_id, list(parent_thread_ids))])[0]

    def begin_calls(self, calls: list[tuple[str, str, list[str]]]) -> list[dict[str, Any]]:
        """Register arriving calls (a replica batches the arrivals of a few ms into one RPC).

        Returns, per call, the program state its engine should use.
        """
        table, pins, dirty, now = self.table, self.pending_pins, self._dirty, self.clock()
        full_at = table.max_programs
        states = []
        for program_id, thread_id, parents in calls:
            parents = tuple(parents)
            row = table.find(program_id)
            victim = None
            if row is not None:
                critical_path_start = row.critical_path_start_s(thread_id, parents)
            else:
                critical_path_start = None
                if len(table) >= full_at:
                    victim = self._room_for(program_id)
            row = table.call_arrived(program_id, thread_id, parents, now)
            if victim is not None:
                self._evicted(victim)
            if pins:
                pin = pins.pop(program_id, None)
                if pin is not None:
                    row.pinned_engines = [pin]
            dirty[program_id] = None
            states.append({
                "program_service_s": row.service_s,
                "program_critical_path_s": row.critical_path_s if critical_path_start is None else critical_path_start,
                "program_wait_s": row.wait_s,
            })
        self._changed(now)
        return states

    def report_calls(self, reports: list[dict[str, Any]]) -> int:
        """Fold finished calls (the scheduler plugin's reports) into their programs."""
        now, finished, dirty = self.clock(), self.table.call_finished, self._dirty
        for r in reports:
            program_id = r["program_id"]
            row = finished(
                program_id,
                r["thread_id"],
                float(r.get("service_s", 0.0)),
                float(r.get("wait_s", 0.0)),
                float(r.get("critical_path_start_s", 0.0)),
                now,
            )
            if row is not None:
                dirty[program_id] = None
        self.num_reports += len(reports)
        for program_id in self.table.collect_idle(now):
            self.owners.pop(program_id, None)
            dirty[program_id] = None
        self._update_gauge(now)
        self._changed(now)
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
                oldest = next(iter(self.pending_pins))
                del self.pending_pins[oldest]
                self._dirty[oldest] = None
        self._dirty[program_id] = None
        self._changed(self.clock())

    def stats(self) -> dict[str, Any]:
        ckpt = self._checkpoints
        return {
            "num_programs": len(self.table),
            "num_reports": self.num_reports,
            "num_evicted": self.table.num_evicted,
            "num_collected": self.table.num_collected,
            "num_checkpoints": self.num_checkpoints,
            "checkpoint_keys_written": ckpt.keys_written if ckpt else 0,
            "checkpoint_keys_deleted": ckpt.keys_deleted if ckpt else 0,
            "checkpoint_backlog": len(self._dirty) if ckpt else 0,
            "restored_programs": self.restored_programs,
        }


@ray.remote(num_cpus=0)
class ProgramTableActor(ProgramTableService):
    """The service as a Ray actor, checkpointing into the GCS.

    A daemon thread asks the actor itself to checkpoint the changed programs every
    interval, so the last changes before a quiet period are saved too (the request goes
    through the actor's queue: it never runs while another method mutates the table).
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
