"""PLAS: Program-Level Attained Service (Autellix, single-threaded programs).

Algorithm: a call's priority is the total service its program's finished calls
received; it enters the queue whose range contains that value (not Q1), and is
demoted when its quantum runs out. The program's service is the sum of its calls'
service (for a single-threaded program this equals the paper's
max(service, start + call service) update). Anti-starvation is program-level:
W = program wait + call wait, T = program service + call service; when
W / T >= beta the call is promoted to Q1 (see queues.py for why counters never reset).
Inside a queue, calls run in their program's first-arrival order by default
(``order_within_queue="program"``: a working set keeps its prefix cache hot); the paper's
FCFS by call is ``order_within_queue="call"``. What counts as service is the caller's
(the vLLM plugin credits load-invariant work by default, ``core.ServiceModel``).
Parameters: ``QueueConfig`` (boundaries, quanta, beta, reevaluate_every_steps,
order_within_queue).
"""

from __future__ import annotations

from autellix_ray.core.program_table import ProgramRow
from autellix_ray.core.scheduling.base import Call, SchedulingPolicy


class PLASPolicy(SchedulingPolicy):
    name = "plas"
    default_order_within_queue = "program"

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return row.service_s

    def program_service_s(self, row: ProgramRow) -> float:
        return row.service_s

    def program_wait_s(self, row: ProgramRow) -> float:
        return row.wait_s
