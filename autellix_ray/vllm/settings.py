"""Settings of the Autellix scheduler plugin, read from vLLM's ``additional_config``.

    engine args:  additional_config={"autellix": {"policy": "plas", "beta": 8.0}}
    vllm serve:   --additional-config '{"autellix": {"policy": "atlas"}}'

Keys: ``policy`` (fcfs | mlfq | plas | atlas | srpt), the queue parameters of
``autellix_ray.core.QueueConfig`` (boundaries_s, quanta_s, beta, beta_vs_median,
reevaluate_every_steps, order_within_queue, queue_order), the service accounting of
``autellix_ray.core.ServiceModel`` (service_unit, decode_token_s, prefill_token_s),
``max_preemptions_per_step`` (proactive preemption bound; 0 disables it) and its
cost guards ``preempt_max_victim_tokens`` (a running call with more computed tokens
is never preempted to admit another, unless the swap connector is on; default 2048;
None: no bound) and ``preempt_min_run_steps`` (steps a call runs after admission before it
can be preempted), and the engine-local program table's ``idle_timeout_s`` and
``max_programs``. Unknown keys and bad values raise ValueError at engine start.

The paper's PLAS/ATLAS exactly: ``{"service_unit": "wall", "queue_order": "attained",
"order_within_queue": "call", "preempt_max_victim_tokens": None, "beta_vs_median": None}`` (the replay's ``plas``/``atlas``, ``bench/replay/config.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from autellix_ray.core import ProgramTable, SchedulingPolicy, ServiceModel, make_scheduling_policy
from autellix_ray.core.program_table import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_PROGRAMS
from autellix_ray.core.scheduling.registry import make_queue_config

CONFIG_KEY = "autellix"
DEFAULT_POLICY = "plas"
DEFAULT_MAX_PREEMPTIONS_PER_STEP = 4
# A proactive victim's recompute fits in one step of `vllm serve`'s default token budget (2048):
# preempting a long context to admit a better call re-prefilled it again and again (replay,
# coding agent on an A100-40GB: 6.4x vLLM-opt's mean latency unbounded, 1.2x better with it).
DEFAULT_PREEMPT_MAX_VICTIM_TOKENS: int | None = 2048
DEFAULT_PREEMPT_MIN_RUN_STEPS = 0  # hysteresis off by default: not measured to help yet
_QUEUE_KEYS = ("boundaries_s", "quanta_s", "beta", "beta_vs_median", "reevaluate_every_steps", "order_within_queue", "queue_order")
_SERVICE_KEYS = {"service_unit": "unit", "decode_token_s": "decode_token_s", "prefill_token_s": "prefill_token_s"}


@dataclass(frozen=True)
class PluginSettings:
    """The plugin's settings, parsed once in the EngineCore process (see module header)."""

    # scheduling policy name: fcfs | mlfq | plas | atlas | srpt
    policy: str = DEFAULT_POLICY
    # QueueConfig overrides (boundaries_s, quanta_s, beta, ...); empty: the policy's defaults
    queue_params: dict[str, Any] = field(default_factory=dict)
    # how a call's attained service is counted (wall time, or tokens priced in seconds)
    service: ServiceModel = field(default_factory=ServiceModel)
    # running calls one step may preempt to admit better waiting ones (0: never proactively)
    max_preemptions_per_step: int = DEFAULT_MAX_PREEMPTIONS_PER_STEP
    # a running call with more computed tokens is not preempted to admit another (None: no bound)
    preempt_max_victim_tokens: int | None = DEFAULT_PREEMPT_MAX_VICTIM_TOKENS
    # steps a call runs after admission before it can be preempted (hysteresis)
    preempt_min_run_steps: int = DEFAULT_PREEMPT_MIN_RUN_STEPS
    # the engine-local program table forgets a program idle this long (s)
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    # ... and holds at most this many (a new program evicts the oldest idle one)
    max_programs: int = DEFAULT_MAX_PROGRAMS

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> PluginSettings:
        raw = dict(raw or {})
        valid = ("policy", "max_preemptions_per_step", "preempt_max_victim_tokens", "preempt_min_run_steps")
        valid += ("idle_timeout_s", "max_programs") + _QUEUE_KEYS
        valid += tuple(_SERVICE_KEYS)
        unknown = sorted(set(raw) - set(valid))
        if unknown:
            raise ValueError(f"unknown autellix setting(s) {unknown}; valid: {list(valid)}")
        queue_params = {k: raw.pop(k) for k in _QUEUE_KEYS if k in raw}
        service = ServiceModel(**{field_: raw.pop(k) for k, field_ in _SERVICE_KEYS.items() if k in raw})
        settings = cls(queue_params=queue_params, service=service, **raw)
        for name in ("max_preemptions_per_step", "preempt_min_run_steps", "preempt_max_victim_tokens"):
            value = getattr(settings, name)
            if name == "preempt_max_victim_tokens" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
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
