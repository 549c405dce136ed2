"""MLFQ: FastServe-style multi-level feedback queue over calls (a baseline).

Algorithm: every new call enters Q1 whatever its program has received; a call that
uses up its queue's quantum is demoted to the next queue; FCFS inside a queue.
Anti-starvation is call-level (FastServe promotes a job that waited too long):
W = the call's wait, T = the call's service, promote to Q1 when W / T >= beta.
Parameters: ``QueueConfig`` (boundaries, quanta, beta, reevaluate_every_steps).
"""

from __future__ import annotations

from autellix_ray.core.program_table import ProgramRow
from autellix_ray.core.scheduling.base import Call, SchedulingPolicy


class MLFQPolicy(SchedulingPolicy):
    name = "mlfq"

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return 0.0
