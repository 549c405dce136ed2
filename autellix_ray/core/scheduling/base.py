"""The scheduling-policy interface and the multi-level queue machinery.

Caller's contract (the vLLM plugin, the replay simulator and the tests all follow it):
- ``add(call, now_s)`` when a call arrives;
- ``on_step(served, now_s, step_wall_s)`` after every engine step, with the service
  each scheduled call received in that step;
- ``order()`` yields every active call, highest priority first (the batch is formed
  by walking it and stopping at the first call that does not fit): by queue, then
  inside a queue by call arrival or by program (``QueueConfig.order_within_queue``).
  Queues are served Q1 first (least attained service) or, with
  ``QueueConfig.queue_order="gittins"``, in the order of their Gittins index learned from
  the programs that finished (``gittins.py``); ``ranks_version`` changes when that order
  does, and then every call's ``key`` may have changed;
- ``finish(call_id, now_s)`` when a call completes or is aborted; the returned
  ``FinishedCall`` carries the call's service and wait for the program table.

A policy owns its ``ProgramTable`` (an engine-local one unless one is passed in)
and keeps it up to date. Time is always passed in. Nothing here is thread-safe:
one policy instance belongs to one scheduler loop.

Waiting time of a call = time since arrival minus the wall time of the steps it
was scheduled in. Service is whatever the caller reports per step (the vLLM plugin
reports the step's wall time for every call in the batch; see its module header).
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

from sortedcontainers import SortedDict

from autellix_ray.core.program_table import ProgramRow, ProgramTable
from autellix_ray.core.scheduling.gittins import GittinsRanker
from autellix_ray.core.scheduling.queues import QueueConfig


@dataclass(frozen=True)
class Call:
    """One LLM call as the scheduler sees it."""

    call_id: str
    program_id: str
    thread_id: str | None = None  # None: the call is its own thread
    parent_thread_ids: tuple[str, ...] = ()
    # Program state supplied by a cluster-wide table at submission (optional).
    program_service_s: float | None = None
    program_critical_path_s: float | None = None
    program_wait_s: float | None = None
    # Clairvoyant hint, used only by the SRPT oracle: work left in the program.
    remaining_s: float | None = None

    @property
    def thread(self) -> str:
        return self.thread_id if self.thread_id is not None else self.call_id


@dataclass(slots=True)  # slots: on_step and the starvation sweep touch these every step
class CallState:
    call: Call
    arrival_s: float
    level: int
    priority_s: float  # the policy's priority value at arrival (lower runs first)
    critical_path_start_s: float  # exact/scalar ATLAS start, recorded for every policy
    arrival_seq: int  # call arrival order (unique per policy instance)
    order_key: tuple  # position inside its queue: (arrival_seq,) or (program start, program, arrival_seq)
    quantum_left_s: float
    promoted: bool = False  # by anti-starvation, until its next demotion: served in the first slot
    service_s: float = 0.0  # attained service of this call
    busy_s: float = 0.0  # wall time of the steps this call was scheduled in
    num_promotions: int = 0
    num_demotions: int = 0

    def wait_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.arrival_s - self.busy_s)


@dataclass(frozen=True)
class FinishedCall:
    """A finished or aborted call, as ``finish`` folded it into its program's row (the plugin
    reports it in ``kv_transfer_params["autellix"]``; the cluster table reads it)."""

    call_id: str  # the engine's request id
    program_id: str  # session_id, else extra_args["program_id"], else the request id
    thread_id: str  # its thread (its own call id when unlabelled)
    service_s: float  # service it attained, in the caller's unit (ServiceModel: wall or work)
    wait_s: float  # time since arrival not spent in steps it was scheduled in
    priority_s: float  # the policy's priority at arrival (lower runs first)
    critical_path_start_s: float  # ATLAS start: max end of its thread's previous call and its parents
    final_level: int  # queue it was in when it finished (0 = Q1)
    num_promotions: int  # anti-starvation promotions
    num_demotions: int  # demotions by quantum


class SchedulingPolicy(ABC):
    """K FCFS queues with demotion by quantum and optional anti-starvation.

    Subclasses choose a call's priority at arrival (``initial_priority_s``) and the
    totals that anti-starvation compares (``starvation_totals``).
    """

    name: ClassVar[str]
    default_order_within_queue: ClassVar[str] = "call"
    default_queue_order: ClassVar[str] = "attained"

    def __init__(self, config: QueueConfig | None = None, table: ProgramTable | None = None) -> None:
        self.config = config if config is not None else self.default_config()
        self.table = table if table is not None else ProgramTable()
        self.order_within_queue = self.config.order_within_queue or self.default_order_within_queue
        self.queue_order = self.config.queue_order or self.default_queue_order
        self._ranker: GittinsRanker | None = None
        if self.queue_order == "gittins":
            if type(self).program_service_s is SchedulingPolicy.program_service_s:
                raise ValueError(f"queue_order='gittins' needs program-level service (plas, atlas), not {self.name}")
            self._ranker = GittinsRanker(self.config.boundaries_s)
        # The slot each queue is served in (0 first): Q1 first, or the Gittins order.
        self._slot_of_level: tuple[int, ...] = tuple(range(self.config.num_levels))
        # One sorted map per slot: a call's order key -> call (see ``_order_key``), so a
        # promoted or demoted call takes its place in the new slot by the same key.
        self._levels: list[SortedDict] = [SortedDict() for _ in range(self.config.num_levels)]
        self._calls: dict[str, CallState] = {}
        self._keys: dict[str, tuple] = {}  # call id -> sort key, kept current on queue moves
        self._seq = itertools.count()
        self._num_steps = 0
        self.num_promotions = 0
        self.num_demotions = 0

    @classmethod
    def default_config(cls) -> QueueConfig:
        return QueueConfig()

    # -- what subclasses decide --------------------------------------------
    @abstractmethod
    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        """Priority value of a new call (its queue is the one containing it)."""

    def program_service_s(self, row: ProgramRow) -> float:
        """The program's service in the anti-starvation ratio (0 for call-level policies)."""
        return 0.0

    def program_wait_s(self, row: ProgramRow) -> float:
        """The program's wait in the anti-starvation ratio (0 for call-level policies)."""
        return 0.0

    def starvation_totals(self, state: CallState, now_s: float) -> tuple[float, float]:
        """(W, T) of the anti-starvation rule: program totals plus the call's counters."""
        program_wait, program_service = self._program_totals(state.call.program_id)
        return (
            program_wait + state.wait_s(now_s),
            program_service + state.service_s,
        )

    def _program_totals(self, program_id: str) -> tuple[float, float]:
        """The program's (wait, service) in the anti-starvation ratio (0, 0 without a row)."""
        row = self.table.find(program_id)
        if row is None:
            return 0.0, 0.0
        return self.program_wait_s(row), self.program_service_s(row)

    # -- the interface ------------------------------------------------------
    def __contains__(self, call_id: object) -> bool:
        return call_id in self._calls

    def __len__(self) -> int:
        return len(self._calls)

    def state(self, call_id: str) -> CallState:
        return self._calls[call_id]

    def level(self, call_id: str) -> int:
        return self._calls[call_id].level

    def key(self, call_id: str) -> tuple:
        """Sort key: smaller runs first. Consistent with ``order()``."""
        return self._keys[call_id]

    def outranks(self, call_id: str, other_id: str) -> bool:
        """True when ``call_id`` should displace a running ``other_id``: a strictly better queue.

        Calls in the same queue never preempt each other (FCFS inside a queue), which
        is what keeps preemption from thrashing.
        """
        return self._keys[call_id][0] < self._keys[other_id][0]

    @property
    def ranks_version(self) -> int:
        """Changes whenever the order of the queues changes (every key may have moved)."""
        return self._ranker.version if self._ranker is not None else 0

    def live_keys(self) -> Mapping[str, tuple] | None:
        """The call id -> ``key`` mapping, kept current, for sorting many calls fast.

        None when keys drift with service between queue moves (the SRPT oracle);
        callers then use ``key``.
        """
        return self._keys

    def order(self) -> Iterator[str]:
        for queue in self._levels:
            for st in queue.values():
                yield st.call.call_id

    def add(self, call: Call, now_s: float) -> CallState:
        if call.call_id in self._calls:
            raise ValueError(f"call {call.call_id!r} is already active")
        thread_id = call.thread
        prior = self.table.find(call.program_id)
        exact = prior.critical_path_start_s(thread_id, call.parent_thread_ids) if prior else None
        if self._ranker is not None and prior is not None and prior.idle and prior.last_completion_s is not None:
            self._ranker.program_called_again(prior.last_completion_s, now_s)
        row = self.table.call_arrived(call.program_id, thread_id, call.parent_thread_ids, now_s)
        self.table.merge_remote_state(
            call.program_id, call.program_service_s, call.program_critical_path_s, call.program_wait_s
        )
        cp_start = exact if exact is not None else row.critical_path_s
        priority = self.initial_priority_s(call, row, cp_start)
        level = self.config.level_for(priority)
        seq = next(self._seq)
        state = CallState(
            call=call,
            arrival_s=now_s,
            level=level,
            priority_s=priority,
            critical_path_start_s=cp_start,
            arrival_seq=seq,
            order_key=self._order_key(row, seq),
            quantum_left_s=self.config.entry_quantum_s(level, priority),
        )
        self._calls[call.call_id] = state
        self._place(state)
        return state

    def _order_key(self, row: ProgramRow, arrival_seq: int) -> tuple:
        """Position inside a queue: call arrival, or program first arrival then call arrival.

        The program's start time (then its id) is the same for all its calls and never
        changes while its row lives, so calls of older programs go first at every step.
        """
        if self.order_within_queue == "program":
            return (row.started_s, row.program_id, arrival_seq)
        return (arrival_seq,)

    def on_step(
        self, served: Mapping[str, float], now_s: float, step_wall_s: float | None = None
    ) -> list[str]:
        """Account one engine step; return the calls anti-starvation promoted (if it ran).

        Unknown call ids are ignored (a finished call's late report).
        """
        calls = self._calls
        for call_id, service in served.items():
            st = calls.get(call_id)
            if st is None:
                continue
            st.service_s += service
            st.busy_s += service if step_wall_s is None else step_wall_s
            st.quantum_left_s -= service
            if st.quantum_left_s <= 0:
                self._demote(st)
        self._num_steps += 1
        if self._num_steps % self.config.reevaluate_every_steps:
            return []
        if self._ranker is not None and self._ranker.collect(now_s, self._idle_since, self._recent_services):
            self._reslot()
        return self.promote_starved(now_s)

    def promote_starved(self, now_s: float) -> list[str]:
        """Anti-starvation sweep: promote every call with W / T >= beta to Q1 (and, with
        ``beta_vs_median``, W / T >= that factor x the median W / T of the active calls that have
        had service, when there are two or more)."""
        beta = self.config.beta
        if beta is None:
            return []
        floor = self._ranker.typical_size_s() if self._ranker is not None else 0.0  # see gittins.py
        starved: list[tuple[float, CallState]] = []  # (W / T, call) of the calls past the absolute rule
        totals: dict[str, tuple[float, float]] = {}  # program id -> _program_totals (fixed during a sweep)
        for queue in self._levels[1:]:
            for st in queue.values():
                # _wait_and_service, inlined: this runs over every queued call
                program_id = st.call.program_id
                program = totals.get(program_id)
                if program is None:
                    program = totals[program_id] = self._program_totals(program_id)
                wait = program[0] + max(0.0, now_s - st.arrival_s - st.busy_s)
                service = max(program[1] + st.service_s, floor)
                if wait > 0 and wait >= beta * service:
                    starved.append((wait / service if service > 0 else math.inf, st))
        if starved and self.config.beta_vs_median is not None:
            # second pass only when someone is past beta (rare below capacity): the median of all
            ratios = []
            for queue in self._levels:
                for st in queue.values():
                    wait, service = self._wait_and_service(st, now_s, floor, totals)
                    if service > 0:  # no service yet: no ratio to compare
                        ratios.append(wait / service)
            if len(ratios) > 1:  # alone: the absolute rule decides
                ratios.sort()
                bar = self.config.beta_vs_median * ratios[(len(ratios) - 1) // 2]  # the lower median
                starved = [(ratio, st) for ratio, st in starved if ratio >= bar]
        promoted = []
        for _, st in starved:
            self._promote(st, now_s)
            promoted.append(st.call.call_id)
        return promoted

    def _wait_and_service(
        self, st: CallState, now_s: float, floor: float, totals: dict[str, tuple[float, float]]
    ) -> tuple[float, float]:
        """(W, max(T, floor)) of ``starvation_totals``, with the program's totals cached in ``totals``."""
        program_id = st.call.program_id
        program = totals.get(program_id)
        if program is None:
            program = totals[program_id] = self._program_totals(program_id)
        return program[0] + max(0.0, now_s - st.arrival_s - st.busy_s), max(program[1] + st.service_s, floor)

    def finish(self, call_id: str, now_s: float) -> FinishedCall:
        """Remove a completed or aborted call and fold it into its program's row."""
        st = self._calls.pop(call_id)
        del self._levels[self._keys.pop(call_id)[0]][st.order_key]
        wait = st.wait_s(now_s)
        call = st.call
        row = self.table.call_finished(
            call.program_id, call.thread, st.service_s, wait, st.critical_path_start_s, now_s
        )
        if self._ranker is not None and row is not None and row.idle:
            self._ranker.program_went_idle(call.program_id, now_s)
        return FinishedCall(
            call_id=call_id,
            program_id=call.program_id,
            thread_id=call.thread,
            service_s=st.service_s,
            wait_s=wait,
            priority_s=st.priority_s,
            critical_path_start_s=st.critical_path_start_s,
            final_level=st.level,
            num_promotions=st.num_promotions,
            num_demotions=st.num_demotions,
        )

    # -- internals ----------------------------------------------------------
    def _place(self, st: CallState) -> None:
        slot = 0 if st.promoted else self._slot_of_level[st.level]
        self._levels[slot][st.order_key] = st
        self._keys[st.call.call_id] = (slot, *st.order_key)

    def _move(self, st: CallState, level: int, promoted: bool = False) -> None:
        del self._levels[self._keys[st.call.call_id][0]][st.order_key]
        st.level = level
        st.promoted = promoted
        self._place(st)

    def _idle_since(self, program_id: str) -> tuple[float, float] | None:
        row = self.table.find(program_id)
        if row is None or not row.idle or row.last_completion_s is None:
            return None
        return row.last_completion_s, self.program_service_s(row)

    def _recent_services(self) -> list[tuple[str, float]]:
        return [(row.program_id, self.program_service_s(row)) for row in self.table.recent_rows(self._ranker.window)]

    def _reslot(self) -> None:
        """Apply a new queue order: every call takes its queue's new slot."""
        self._slot_of_level = self._ranker.slots
        for queue in self._levels:
            queue.clear()
        for st in self._calls.values():
            self._place(st)

    def _demote(self, st: CallState) -> None:
        last = self.config.num_levels - 1
        level = st.level
        while st.quantum_left_s <= 0 and level < last:
            level += 1
            st.quantum_left_s += self.config.quantum_s(level)
            st.num_demotions += 1
            self.num_demotions += 1
        if level != st.level:
            self._move(st, level)

    def _promote(self, st: CallState, now_s: float) -> None:
        self._move(st, 0, promoted=True)
        st.quantum_left_s = self.config.quantum_s(0)
        st.num_promotions += 1
        self.num_promotions += 1


class ProgramLevelPolicy(SchedulingPolicy):
    """PLAS and ATLAS: a program's totals decide, and inside a queue calls run in their
    program's first-arrival order by default (``order_within_queue="program"``: a working set
    keeps its prefix cache hot; the paper's FCFS by call is ``"call"``). What counts as service
    is the caller's (the vLLM plugin credits load-invariant work by default,
    ``core.ServiceModel``). Anti-starvation is program-level: W = program wait + call wait,
    T = program service + call service. Parameters: ``QueueConfig``."""

    default_order_within_queue = "program"
    default_queue_order = "gittins"  # LAS (Q1 first) until 10 programs have finished: gittins.py

    def program_wait_s(self, row: ProgramRow) -> float:
        return row.wait_s


class SingleQueuePolicy(SchedulingPolicy):
    """One queue, no anti-starvation, no queue parameters (FCFS and the SRPT oracle)."""

    SINGLE_QUEUE: ClassVar[QueueConfig] = QueueConfig(boundaries_s=(0.0,), beta=None)
    why_no_parameters: ClassVar[str] = "it has one queue"

    def __init__(self, config: QueueConfig | None = None, table: ProgramTable | None = None) -> None:
        if config is not None and config not in (QueueConfig(), self.SINGLE_QUEUE):
            raise ValueError(f"{self.name} takes no queue parameters ({self.why_no_parameters})")
        super().__init__(self.SINGLE_QUEUE, table)

    @classmethod
    def default_config(cls) -> QueueConfig:
        return cls.SINGLE_QUEUE

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return 0.0
