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
Past one actor's throughput the table shards by program id (hash(program_id) % N
actors, each its own name); no cross-program operation needs more than one shard.
"""

from __future__ import annotations

import secrets
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.table = ProgramTable(idle_timeout_s=idle_timeout_s, max_programs=max_programs)
        self.clock = clock
        self.owners: dict[str, str | None] = {}
        self.pending_pins: dict[str, str] = {}
        self.num_reports = 0

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
        return _row_view(row)

    def end_program(self, program_id: str, owner: str | None = None) -> dict[str, Any]:
        self._check_owner(program_id, owner)
        row = self.table.end_program(program_id)
        self.owners.pop(program_id, None)
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
        return [self.begin_call(p, t, parents) for p, t, parents in calls]

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
        }


ProgramTableActor = ray.remote(num_cpus=0)(ProgramTableService)


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
