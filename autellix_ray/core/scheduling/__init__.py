"""Scheduling policies: FCFS, MLFQ, PLAS, ATLAS and the SRPT oracle."""

from autellix_ray.core.scheduling.atlas import ATLASPolicy
from autellix_ray.core.scheduling.base import Call, CallState, FinishedCall, SchedulingPolicy
from autellix_ray.core.scheduling.fcfs import FCFSPolicy
from autellix_ray.core.scheduling.mlfq import MLFQPolicy
from autellix_ray.core.scheduling.plas import PLASPolicy
from autellix_ray.core.scheduling.queues import QueueConfig
from autellix_ray.core.scheduling.registry import (
    SCHEDULING_POLICIES,
    make_queue_config,
    make_scheduling_policy,
)
from autellix_ray.core.scheduling.service import ServiceModel
from autellix_ray.core.scheduling.srpt import SRPTOraclePolicy

__all__ = [
    "ATLASPolicy",
    "Call",
    "CallState",
    "FCFSPolicy",
    "FinishedCall",
    "MLFQPolicy",
    "PLASPolicy",
    "QueueConfig",
    "SCHEDULING_POLICIES",
    "SRPTOraclePolicy",
    "ServiceModel",
    "SchedulingPolicy",
    "make_queue_config",
    "make_scheduling_policy",
]
