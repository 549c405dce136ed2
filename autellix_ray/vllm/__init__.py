"""Autellix inside vLLM: the scheduler plugin (the only package that imports vllm).

    from autellix_ray.vllm import autellix_engine_kwargs
    llm = vllm.LLM(model=..., **autellix_engine_kwargs("plas", beta=8.0))

or, for ``vllm serve``:

    vllm serve MODEL --scheduler-cls autellix_ray.vllm.AutellixScheduler \\
        --additional-config '{"autellix": {"policy": "plas"}}'

Importing it checks that vLLM is the pinned release and still has the private
scheduler members the plugin relies on (``_compat.py``); otherwise ImportError.
"""

from autellix_ray.vllm import _compat  # noqa: F401 - first: checks the vLLM version and members
from autellix_ray.vllm.engine_args import autellix_engine_kwargs
from autellix_ray.vllm.scheduler import (
    REPORT_KEY,
    AutellixAsyncScheduler,
    AutellixScheduler,
    AutellixSchedulerMixin,
)
from autellix_ray.vllm.settings import PluginSettings

__all__ = [
    "REPORT_KEY",
    "AutellixAsyncScheduler",
    "AutellixScheduler",
    "AutellixSchedulerMixin",
    "PluginSettings",
    "autellix_engine_kwargs",
]
