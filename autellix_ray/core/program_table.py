"""Process table: one row per program (agent session), as in Autellix section 2.

A row records facts, not policy: total attained service (PLAS reads it), the
longest critical path seen so far (ATLAS reads it), cumulative waiting time, the
engines the program is pinned to, its threads (the thread DAG) and the times of
its last call arrival and last completion.

Threads: a thread is a sequential chain of calls inside a program. A call runs on
one thread and may name parent threads; its critical-path start is the largest
end value among its own thread's previous call and its parents' latest calls.

Bounds: rows live in an ``OrderedDict`` ordered by last activity, so idle-timeout
garbage collection and eviction of the oldest idle row are cheap. When the table
holds ``max_programs`` rows and none is idle, starting another program raises
``ProgramTableFull`` (callers turn it into a retryable overload error). Each row
keeps at most ``max(max_threads_per_program, its threads with calls in flight)``
threads: beyond that the oldest idle threads are dropped (a thread with calls in
flight, including the one a call just arrived on, is never dropped).

Time is always passed in (``now_s``); nothing here reads a clock.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field

DEFAULT_IDLE_TIMEOUT_S = 600.0
DEFAULT_MAX_PROGRAMS = 100_000
DEFAULT_MAX_THREADS_PER_PROGRAM = 4096


class ProgramTableFull(RuntimeError):
    """Every row is in use by a program with calls in flight."""


class UnknownProgram(KeyError):
    """No row for this program id (never started, ended, or collected)."""


@dataclass
class ThreadRow:
    """One thread of a program (checkpointed, and shown by ``GET /v1/programs/{id}``)."""

    thread_id: str  # the caller's label (or one the replica assigned to an unlabelled call)
    parent_thread_ids: tuple[str, ...] = ()  # parents named by the thread's first call
    num_active_calls: int = 0  # calls arrived and not finished
    num_calls: int = 0  # calls arrived, ever
    service_s: float = 0.0  # attained service of this thread's finished calls
    wait_s: float = 0.0  # waiting time of this thread's finished calls
    last_arrival_s: float = 0.0  # time its latest call arrived
    critical_path_s: float = 0.0  # largest end value (critical-path start + service) of its finished calls


@dataclass
class ProgramRow:
    """One program (checkpointed, and shown by ``GET /v1/programs/{id}``; times in the owner's clock)."""

    program_id: str  # the program (agent session) id
    started_s: float  # time of its explicit start or first call
    service_s: float = 0.0  # total attained service of finished calls (PLAS)
    critical_path_s: float = 0.0  # longest critical path seen so far (ATLAS scalar)
    wait_s: float = 0.0  # cumulative waiting time of finished calls
    num_calls: int = 0  # calls arrived, ever
    num_active_calls: int = 0  # calls arrived and not finished (0: the row may be evicted)
    last_arrival_s: float = 0.0  # time its latest call arrived
    last_completion_s: float | None = None  # time its latest call finished (None: none yet)
    pinned_engines: list[str] = field(default_factory=list)  # engines the router pinned it to (at most one)
    threads: OrderedDict[str, ThreadRow] = field(default_factory=OrderedDict)  # thread id -> row, oldest 1st
    explicit: bool = False  # started by start_program rather than by a first call

    @property
    def last_activity_s(self) -> float:
        if self.last_completion_s is None:
            return self.last_arrival_s
        return max(self.last_arrival_s, self.last_completion_s)

    @property
    def idle(self) -> bool:
        return self.num_active_calls == 0

    def critical_path_start_s(self, thread_id: str, parent_thread_ids: tuple[str, ...]) -> float | None:
        """Exact ATLAS start value from the thread DAG, or None if the DAG says nothing.

        The start is the max end value over the call's own thread (its previous
        call) and its named parent threads. Parents the table no longer knows
        contribute nothing.
        """
        own = self.threads.get(thread_id)
        if not parent_thread_ids and (own is None or own.num_calls == own.num_active_calls):
            return None
        values = [own.critical_path_s] if own is not None else []
        values += [self.threads[p].critical_path_s for p in parent_thread_ids if p in self.threads]
        return max(values, default=0.0)


class ProgramTable:
    def __init__(
        self,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        max_programs: int = DEFAULT_MAX_PROGRAMS,
        max_threads_per_program: int = DEFAULT_MAX_THREADS_PER_PROGRAM,
    ) -> None:
        if not idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s!r}")
        if max_programs < 1:
            raise ValueError(f"max_programs must be >= 1, got {max_programs!r}")
        if max_threads_per_program < 1:
            raise ValueError(f"max_threads_per_program must be >= 1, got {max_threads_per_program!r}")
        self.idle_timeout_s = idle_timeout_s
        self.max_programs = max_programs
        self.max_threads_per_program = max_threads_per_program
        self._rows: OrderedDict[str, ProgramRow] = OrderedDict()
        self.num_evicted = 0
        self.num_collected = 0

    # -- lookup -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._rows

    def get(self, program_id: str) -> ProgramRow:
        try:
            return self._rows[program_id]
        except KeyError:
            raise UnknownProgram(program_id) from None

    def find(self, program_id: str) -> ProgramRow | None:
        return self._rows.get(program_id)

    def rows(self) -> list[ProgramRow]:
        return list(self._rows.values())

    def recent_rows(self, n: int) -> list[ProgramRow]:
        """The ``n`` rows with the latest activity, latest first (without copying the table)."""
        return list(itertools.islice(reversed(self._rows.values()), n))

    def eviction_victim(self, program_id: str) -> str | None:
        """The row that inserting ``program_id`` would evict (the oldest idle one), if any."""
        if len(self._rows) < self.max_programs or program_id in self._rows:
            return None
        return next((pid for pid, row in self._rows.items() if row.idle), None)

    def load(self, rows: list[ProgramRow], num_evicted: int = 0, num_collected: int = 0) -> None:
        """Fill an empty table (a restore): rows in last-activity order, the order it keeps
        (rows with the same last activity, e.g. from one batch, in program-id order)."""
        if self._rows:
            raise ValueError("load needs an empty table")
        ordered = sorted(rows, key=lambda r: (r.last_activity_s, r.program_id))
        self._rows = OrderedDict((r.program_id, r) for r in ordered)
        self.num_evicted, self.num_collected = num_evicted, num_collected

    # -- program lifecycle --------------------------------------------------
    def start_program(self, program_id: str, now_s: float) -> ProgramRow:
        """Explicit start. Starting a program that exists returns its row."""
        row = self._rows.get(program_id)
        if row is None:
            row = self._insert(program_id, now_s)
        row.explicit = True
        return row

    def end_program(self, program_id: str) -> ProgramRow:
        """Explicit end: the row is removed and returned."""
        try:
            return self._rows.pop(program_id)
        except KeyError:
            raise UnknownProgram(program_id) from None

    def collect_idle(self, now_s: float) -> list[str]:
        """Remove rows idle for longer than the timeout; return their ids."""
        cutoff = now_s - self.idle_timeout_s
        removed = []
        for program_id, row in self._rows.items():
            if row.last_activity_s > cutoff:
                break  # ordered by last activity: the rest are newer
            if row.idle:
                removed.append(program_id)
        for program_id in removed:
            del self._rows[program_id]
        self.num_collected += len(removed)
        return removed

    # -- calls --------------------------------------------------------------
    def call_arrived(
        self,
        program_id: str,
        thread_id: str,
        parent_thread_ids: tuple[str, ...],
        now_s: float,
    ) -> ProgramRow:
        """Record a call's arrival; starts the program implicitly if needed."""
        row = self._rows.get(program_id)
        if row is None:
            row = self._insert(program_id, now_s)
        row.num_calls += 1
        row.num_active_calls += 1
        row.last_arrival_s = max(row.last_arrival_s, now_s)
        self._rows.move_to_end(program_id)
        thread = row.threads.get(thread_id)
        new_thread = thread is None
        if thread is None:
            thread = ThreadRow(thread_id, parent_thread_ids)
            row.threads[thread_id] = thread
        thread.num_calls += 1
        thread.num_active_calls += 1
        thread.last_arrival_s = now_s
        if new_thread:
            self._trim_threads(row)  # after counting the call, so its own thread is never dropped
        return row

    def call_finished(
        self,
        program_id: str,
        thread_id: str,
        service_s: float,
        wait_s: float,
        critical_path_start_s: float,
        now_s: float,
    ) -> ProgramRow | None:
        """Fold a finished (or aborted) call into its program; None if the row is gone."""
        row = self._rows.get(program_id)
        if row is None:
            return None
        end_s = critical_path_start_s + service_s
        row.service_s += service_s
        row.critical_path_s = max(row.critical_path_s, end_s)
        row.wait_s += wait_s
        row.num_active_calls = max(0, row.num_active_calls - 1)
        row.last_completion_s = now_s
        self._rows.move_to_end(program_id)
        thread = row.threads.get(thread_id)
        if thread is not None:
            thread.num_active_calls = max(0, thread.num_active_calls - 1)
            thread.service_s += service_s
            thread.wait_s += wait_s
            thread.critical_path_s = max(thread.critical_path_s, end_s)
            self._trim_threads(row)  # threads kept while active may be dropped now
        return row

    def merge_remote_state(
        self,
        program_id: str,
        service_s: float | None = None,
        critical_path_s: float | None = None,
        wait_s: float | None = None,
    ) -> None:
        """Raise a row's totals to what a cluster-wide table reported (never lowers them)."""
        row = self._rows.get(program_id)
        if row is None:
            return
        if service_s is not None:
            row.service_s = max(row.service_s, service_s)
        if critical_path_s is not None:
            row.critical_path_s = max(row.critical_path_s, critical_path_s)
        if wait_s is not None:
            row.wait_s = max(row.wait_s, wait_s)

    # -- internals ----------------------------------------------------------
    def _insert(self, program_id: str, now_s: float) -> ProgramRow:
        if len(self._rows) >= self.max_programs:
            self._evict_oldest_idle()
        row = ProgramRow(program_id=program_id, started_s=now_s, last_arrival_s=now_s)
        self._rows[program_id] = row
        return row

    def _evict_oldest_idle(self) -> None:
        for program_id, row in self._rows.items():
            if row.idle:
                del self._rows[program_id]
                self.num_evicted += 1
                return
        raise ProgramTableFull(
            f"program table holds {self.max_programs} programs, all with calls in flight"
        )

    def _trim_threads(self, row: ProgramRow) -> None:
        """Drop the oldest idle threads beyond the bound (active threads are always kept)."""
        excess = len(row.threads) - self.max_threads_per_program
        if excess <= 0:
            return
        idle = (t for t, th in row.threads.items() if th.num_active_calls == 0)
        for thread_id in list(itertools.islice(idle, excess)):
            del row.threads[thread_id]
