"""ATLAS: Adaptive Thread-Level Attained Service (Autellix, multi-threaded programs).

Algorithm: a call's priority is the service along the critical path leading to it.
Paper mode (no parents named): one scalar per program, the longest critical path
seen so far; a new call inherits it, and on completion the scalar becomes
max(scalar, inherited + call service). Concurrent calls of a program share a
priority, so they are gang-scheduled. Exact mode (ours): when a call names parent
threads, or its thread has finished calls, its priority is the max end value over
those threads: the exact longest path in the thread DAG.
Queues, demotion and program-level anti-starvation as in PLAS, with the critical
path as the program's service (``base.ProgramLevelPolicy``).
Parameters: ``QueueConfig`` (boundaries, quanta, beta, reevaluate_every_steps,
order_within_queue, queue_order).
"""

from __future__ import annotations

from autellix_ray.core.program_table import ProgramRow
from autellix_ray.core.scheduling.base import Call, ProgramLevelPolicy


class ATLASPolicy(ProgramLevelPolicy):
    name = "atlas"

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return critical_path_start_s

    def program_service_s(self, row: ProgramRow) -> float:
        return row.critical_path_s
