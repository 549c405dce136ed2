"""Settings of the Autellix scheduler plugin, read from vLLM's ``additional_config``.

    engine args:  additional_config={"autellix": {"policy": "plas", "beta": 8.0}}
    vllm serve:   --additional-config '{"autellix": {"policy": "atlas"}}'

Keys: ``policy`` (fcfs | mlfq | plas | atlas | srpt), the queue parameters of
``autellix_ray.core.QueueConfig`` (boundaries_s, quanta_s, beta,
reevaluate_every_steps), ``max_preemptions_per_step`` (proactive preemption
bound; 0 disables it), and the engine-local program table's ``idle_timeout_s``
and ``max_programs``. Unknown keys and bad values raise ValueError at engine start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autellix_ray.core import ProgramTable, SchedulingPolicy, make_scheduling_policy
from autellix_ray.core.program_table import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_PROGRAMS
from autellix_ray.core.scheduling.registry import make_queue_config

CONFIG_KEY = "autellix"
DEFAULT_POLICY = "plas"
DEFAULT_MAX_PREEMPTIONS_PER_STEP = 4
_QUEUE_KEYS = ("boundaries_s", "quanta_s", "beta", "reevaluate_every_steps")


@dataclass(frozen=True)
class PluginSettings:
    policy: str = DEFAULT_POLICY
    queue_params: dict[str, Any] = field(default_factory=dict)
    max_preemptions_per_step: int = DEFAULT_MAX_PREEMPTIONS_PER_STEP
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_programs: int = DEFAULT_MAX_PROGRAMS

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> PluginSettings:
        raw = dict(raw or {})
        valid = ("policy", "max_preemptions_per_step", "idle_timeout_s", "max_programs") + _QUEUE_KEYS
        unknown = sorted(set(raw) - set(valid))
        if unknown:
            raise ValueError(f"unknown autellix setting(s) {unknown}; valid: {list(valid)}")
        queue_params = {k: raw.pop(k) for k in _QUEUE_KEYS if k in raw}
        settings = cls(queue_params=queue_params, **raw)
        max_pre = settings.max_preemptions_per_step
        if not isinstance(max_pre, int) or max_pre < 0:
            raise ValueError(f"max_preemptions_per_step must be an integer >= 0, got {max_pre!r}")
        settings.make_policy()  # validates the policy name and queue parameters
        return settings

    @classmethod
    def from_vllm_config(cls, vllm_config: Any) -> PluginSettings:
        additional = getattr(vllm_config, "additional_config", None) or {}
        return cls.from_mapping(additional.get(CONFIG_KEY) if isinstance(additional, dict) else None)

    def make_policy(self) -> SchedulingPolicy:
        table = ProgramTable(idle_timeout_s=self.idle_timeout_s, max_programs=self.max_programs)
        if self.queue_params:
            return make_scheduling_policy(self.policy, table=table, **self.queue_params)
        return make_scheduling_policy(self.policy, table=table)

    def queue_config_summary(self) -> str:
        return repr(make_queue_config(**self.queue_params)) if self.queue_params else "defaults"
