"""PLAS: Program-Level Attained Service (Autellix, single-threaded programs).

Algorithm: a call's priority is the total service its program's finished calls
received; it enters the queue whose range contains that value (not Q1), and is
demoted when its quantum runs out. The program's service is the sum of its calls'
service (for a single-threaded program this equals the paper's
max(service, start + call service) update). When W / T >= beta the call is promoted
to Q1 (see queues.py for why counters never reset). Order inside a queue, service and
program-level anti-starvation: ``base.ProgramLevelPolicy``; which queue runs first:
``QueueConfig.queue_order`` (Q1, or the learned Gittins order).
Parameters: ``QueueConfig`` (boundaries, quanta, beta, reevaluate_every_steps,
order_within_queue, queue_order).
"""

from __future__ import annotations

from autellix_ray.core.program_table import ProgramRow
from autellix_ray.core.scheduling.base import Call, ProgramLevelPolicy


class PLASPolicy(ProgramLevelPolicy):
    name = "plas"

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return row.service_s

    def program_service_s(self, row: ProgramRow) -> float:
        return row.service_s
