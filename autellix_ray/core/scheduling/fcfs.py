"""FCFS: first come, first served (vLLM's default order).

Algorithm: one queue, calls run in arrival order; no demotion, no anti-starvation.
Parameters: none (any ``QueueConfig`` passed in is replaced by a single queue).
"""

from __future__ import annotations

from autellix_ray.core.program_table import ProgramRow, ProgramTable
from autellix_ray.core.scheduling.base import Call, SchedulingPolicy
from autellix_ray.core.scheduling.queues import QueueConfig

_SINGLE_QUEUE = QueueConfig(boundaries_s=(0.0,), beta=None)


class FCFSPolicy(SchedulingPolicy):
    name = "fcfs"

    def __init__(self, config: QueueConfig | None = None, table: ProgramTable | None = None) -> None:
        if config is not None and config != QueueConfig() and config != _SINGLE_QUEUE:
            raise ValueError("fcfs takes no queue parameters (it has one queue and no anti-starvation)")
        super().__init__(_SINGLE_QUEUE, table)

    @classmethod
    def default_config(cls) -> QueueConfig:
        return _SINGLE_QUEUE

    def initial_priority_s(self, call: Call, row: ProgramRow, critical_path_start_s: float) -> float:
        return 0.0
