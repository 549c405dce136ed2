"""The cluster-wide program table service: one table for every engine of a cluster.

Shipped as the Serve tier's program-table actor (``serve/program_table.py``) and run by the
multi-engine replay (``bench/replay/engine.py``) on its simulated clock. Callers' contract:
- ``begin_calls`` when calls arrive (before their engine sees them): registers each call's
  thread and returns its program's state (``ProgramState``), which the engine's scheduler
  merges into its own table (it never lowers a value);
- ``report_calls`` with finished calls (the scheduler plugin's reports, any batch size);
- ``set_pin`` when the router pins a program to an engine (before its first call, too);
- programs start explicitly (``start_program``: an unguessable id unless given, and an owner
  who alone may read or end it) or implicitly on their first call; they end explicitly or
  by idle timeout (collected on every report batch).

Critical path across engines: a call's ATLAS start is the largest end value over its own
thread's previous call and its named parent threads, whichever engines ran them (the
table's thread DAG); with no DAG information, the program's longest critical path so far.

Checkpoints (with a ``store``; ``core/checkpoint.py``): a program that starts or ends is
written at once (ownership is never lost); other changes at most every
``checkpoint_interval_s``, and by ``checkpoint_if_dirty`` (the owner calls it periodically).

Injected: ``clock`` (seconds), ``store``, ``hooks`` (metrics), ``new_program_id``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any, TypedDict

from autellix_ray.core.checkpoint import MAX_KEYS_PER_CHECKPOINT, Entry, KeyValueStore, TableCheckpoint
from autellix_ray.core.ids import MAX_ID_CHARS
from autellix_ray.core.program_table import DEFAULT_IDLE_TIMEOUT_S, ProgramRow, ProgramTable, UnknownProgram

CLUSTER_MAX_PROGRAMS = 1_000_000  # the cluster table holds every engine's programs (an engine's: 100k)
MAX_PENDING_PINS = 100_000
CHECKPOINT_INTERVAL_S = 1.0
GAUGE_INTERVAL_S = 1.0

__all__ = ["ProgramService", "ProgramState", "TableHooks", "TableStats"]


class ProgramState(TypedDict):
    """A program's cluster-wide state for one arriving call (the engine plugin reads these
    keys from the call's ``vllm_xargs``)."""

    program_service_s: float  # attained service of the program's finished calls, all engines (PLAS)
    program_critical_path_s: float  # the call's ATLAS start (module header)
    program_wait_s: float  # cumulative waiting time of the program's finished calls


class TableStats(TypedDict):
    """``ProgramService.stats()``: counters for tests, benchmarks and operators."""

    num_programs: int  # rows in the table now
    num_reports: int  # finished calls reported, ever (survives restarts)
    num_evicted: int  # idle rows evicted to make room for a new program
    num_collected: int  # rows removed by the idle timeout
    num_checkpoints: int  # checkpoints written by this instance
    checkpoint_keys_written: int  # program entries written by this instance
    checkpoint_keys_deleted: int  # program entries deleted (ended, collected, evicted programs)
    checkpoint_backlog: int  # programs changed since their last checkpoint (0 without a store)
    restored_programs: int  # rows restored from the store at start-up


class TableHooks:
    """Metric hooks of the service: no-ops here (the Serve tier reports them to Prometheus)."""

    def num_programs(self, num_programs: int) -> None:
        """The table's size (at most every ``GAUGE_INTERVAL_S``, and when a program ends)."""

    def program_ended(self, latency_s: float) -> None:
        """An explicitly ended program's latency, from its start."""


def unguessable_program_id() -> str:
    return "prog-" + secrets.token_urlsafe(16)


def _row_view(row: ProgramRow) -> dict[str, Any]:
    view = asdict(row)
    view["threads"] = {
        tid: {k: v for k, v in t.items() if k != "thread_id"} for tid, t in view["threads"].items()
    }
    view.pop("explicit", None)
    return view


class ProgramService:
    def __init__(
        self,
        clock: Callable[[], float],
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        max_programs: int = CLUSTER_MAX_PROGRAMS,
        store: KeyValueStore | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
        max_keys_per_checkpoint: int = MAX_KEYS_PER_CHECKPOINT,
        hooks: TableHooks | None = None,
        new_program_id: Callable[[], str] = unguessable_program_id,
    ) -> None:
        self.table = ProgramTable(idle_timeout_s=idle_timeout_s, max_programs=max_programs)
        self.clock = clock
        self.hooks = hooks or TableHooks()
        self.new_program_id = new_program_id
        self.owners: dict[str, str | None] = {}
        self.pending_pins: dict[str, str] = {}
        self.num_reports = 0
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
        first = list(first)
        written = self._checkpoints.write(self._entry, counters, first)
        self.num_checkpoints += 1
        self._last_checkpoint_s = self.clock()
        if first:  # explicit starts, ends and owners are durable when the call returns
            flush = getattr(self._checkpoints.store, "flush", None)
            if flush is not None:
                flush()
        return written

    def _store_busy(self) -> bool:
        """A queued store still writing the previous checkpoint (see ``KeyValueStore``)."""
        backlog = getattr(self._checkpoints.store, "backlog", None)
        return backlog is not None and backlog() > 0

    def checkpoint_if_dirty(self) -> bool:
        """The periodic tick: update the size gauge, checkpoint if anything changed."""
        self._update_gauge(self.clock())
        if self._dirty and self._checkpoints is not None and not self._store_busy():
            self.checkpoint()
            return True
        return False

    def _changed(self, now: float, first: Iterable[str] = ()) -> None:
        if self._checkpoints is None:
            self._dirty.clear()
        elif first or (now - self._last_checkpoint_s >= self.checkpoint_interval_s and not self._store_busy()):
            self.checkpoint(first)

    def _update_gauge(self, now: float) -> None:
        if now - self._gauge_s >= GAUGE_INTERVAL_S:
            self._gauge_s = now
            self.hooks.num_programs(len(self.table))

    def _evicted(self, victim: str | None) -> None:
        if victim is not None and victim not in self.table:
            self.owners.pop(victim, None)
            self._dirty[victim] = None

    # -- program lifecycle --------------------------------------------------
    def start_program(self, program_id: str | None = None, owner: str | None = None) -> dict[str, Any]:
        if program_id is None:
            program_id = self.new_program_id()
        elif not isinstance(program_id, str) or not 0 < len(program_id) <= MAX_ID_CHARS:
            raise ValueError(f"program_id must be a string of 1-{MAX_ID_CHARS} characters")
        existing = self.owners.get(program_id)
        if program_id in self.table and existing is not None and existing != owner:
            raise PermissionError(f"program {program_id!r} belongs to another caller")
        victim = self.table.eviction_victim(program_id)
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
        self.hooks.program_ended(max(0.0, now - row.started_s))
        self.hooks.num_programs(len(self.table))
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
    def begin_call(self, program_id: str, thread_id: str,
                   parent_thread_ids: Iterable[str] = ()) -> ProgramState:
        """Register a call's arrival; return the program state its engine should use."""
        return self.begin_calls([(program_id, thread_id, list(parent_thread_ids))])[0]

    def begin_calls(self, calls: list[tuple[str, str, list[str]]]) -> list[ProgramState]:
        """Register arriving calls ``(program id, thread id, parent thread ids)``, in order.

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
                    victim = table.eviction_victim(program_id)
            row = table.call_arrived(program_id, thread_id, parents, now)
            if victim is not None:
                self._evicted(victim)
            if pins:
                pin = pins.pop(program_id, None)
                if pin is not None:
                    row.pinned_engines = [pin]
            dirty[program_id] = None
            if critical_path_start is None:
                critical_path_start = row.critical_path_s
            states.append({
                "program_service_s": row.service_s,
                "program_critical_path_s": critical_path_start,
                "program_wait_s": row.wait_s,
            })
        self._changed(now)
        return states

    def report_calls(self, reports: list[dict[str, Any]]) -> int:
        """Fold finished calls into their programs; returns how many were read.

        A report is the scheduler plugin's (``FinishedCall`` as a dict, and more); the table
        reads ``program_id``, ``thread_id``, ``service_s``, ``wait_s`` and
        ``critical_path_start_s``. Reports of programs with no row are ignored.
        """
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

        The router pins a program before its first call reaches an engine, so a pin
        for a program with no row yet waits in ``pending_pins`` for ``begin_calls``.
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

    def stats(self) -> TableStats:
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
