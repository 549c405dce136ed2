"""Engine arguments that turn a vLLM 0.32 engine into an Autellix engine."""

from __future__ import annotations

from typing import Any

from autellix_ray.vllm.settings import CONFIG_KEY, PluginSettings

SYNC_SCHEDULER = "autellix_ray.vllm.AutellixScheduler"
ASYNC_SCHEDULER = "autellix_ray.vllm.AutellixAsyncScheduler"


def autellix_engine_kwargs(policy: str = "plas", *, async_scheduling: bool = False, **settings: Any) -> dict:
    """kwargs for ``vllm.LLM``, ``AsyncEngineArgs`` or Ray Serve's ``engine_kwargs``.

    ``settings`` are the plugin's (see ``settings.py``); they are validated here,
    so a typo fails before an engine starts. Use ``async_scheduling=True`` on GPU
    engines (vLLM's default there).
    """
    raw = {"policy": policy, **settings}
    PluginSettings.from_mapping(raw)
    return {
        "scheduler_cls": ASYNC_SCHEDULER if async_scheduling else SYNC_SCHEDULER,
        "scheduling_policy": "fcfs",
        "additional_config": {CONFIG_KEY: raw},
    }
