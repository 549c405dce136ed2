"""FCFS: first come, first served (vLLM's default order).

Algorithm: one queue, calls run in arrival order; no demotion, no anti-starvation.
Parameters: none (any ``QueueConfig`` passed in is replaced by a single queue).
"""

from __future__ import annotations

from autellix_ray.core.scheduling.base import SingleQueuePolicy


class FCFSPolicy(SingleQueuePolicy):
    name = "fcfs"
    why_no_parameters = "it has one queue and no anti-starvation"
