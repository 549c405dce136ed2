"""Scheduling policies by name: ``make_scheduling_policy("plas", beta=4.0)``."""

from __future__ import annotations

from typing import Any

from autellix_ray.core.program_table import ProgramTable
from autellix_ray.core.scheduling.atlas import ATLASPolicy
from autellix_ray.core.scheduling.base import SchedulingPolicy
from autellix_ray.core.scheduling.fcfs import FCFSPolicy
from autellix_ray.core.scheduling.mlfq import MLFQPolicy
from autellix_ray.core.scheduling.plas import PLASPolicy
from autellix_ray.core.scheduling.queues import QueueConfig
from autellix_ray.core.scheduling.srpt import SRPTOraclePolicy

SCHEDULING_POLICIES: dict[str, type[SchedulingPolicy]] = {
    "fcfs": FCFSPolicy,
    "mlfq": MLFQPolicy,
    "plas": PLASPolicy,
    "atlas": ATLASPolicy,
    "srpt": SRPTOraclePolicy,
}

_CONFIG_FIELDS = tuple(QueueConfig.__dataclass_fields__)


def make_queue_config(**params: Any) -> QueueConfig:
    unknown = sorted(set(params) - set(_CONFIG_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown scheduling parameter(s) {unknown}; valid: {list(_CONFIG_FIELDS)}"
        )
    for name in ("boundaries_s", "quanta_s"):
        if params.get(name) is not None:
            params[name] = tuple(params[name])
    return QueueConfig(**params)


def make_scheduling_policy(
    name: str, table: ProgramTable | None = None, **params: Any
) -> SchedulingPolicy:
    """Build a policy by name; bad names or parameters raise ValueError."""
    cls = SCHEDULING_POLICIES.get(str(name).lower())
    if cls is None:
        raise ValueError(
            f"unknown scheduling policy {name!r}; valid: {sorted(SCHEDULING_POLICIES)}"
        )
    config = make_queue_config(**params) if params else None
    return cls(config, table)
