"""Program context of a vLLM request: which program and thread a call belongs to.

Where it comes from (first match wins):
- program id: ``request.session_id`` (OpenAI body ``session_id``), else
  ``extra_args["program_id"]`` (OpenAI ``vllm_xargs``), else the request id, so a
  call nobody labelled is a one-call program;
- thread id: ``extra_args["thread_id"]``, else the call is its own thread (the serve
  replica always sets one: the id it registered with the program table);
- parents: ``extra_args["parent_thread_ids"]`` (a list, or one comma-separated string);
- program state from a cluster-wide table: ``extra_args["program_service_s"]``,
  ``"program_critical_path_s"``, ``"program_wait_s"``.

The engine must never fail on a label: malformed values are ignored here (and
counted); the HTTP layer is where bad input gets a 4xx.
"""

from __future__ import annotations

import math
from typing import Any

from autellix_ray.core import Call
from autellix_ray.core.ids import MAX_PARENTS, split_parent_ids
from autellix_ray.core.ids import clean_id as _clean_id


def _clean_seconds(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
        if math.isfinite(value) and value >= 0:
            return value
    return None


def _clean_parents(value: Any) -> tuple[str, ...]:
    value = split_parent_ids(value)
    if not isinstance(value, (list, tuple)):
        return ()
    parents = [p for p in (_clean_id(v) for v in value[:MAX_PARENTS]) if p is not None]
    return tuple(dict.fromkeys(parents))


def thread_labels(extra: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """A call's thread id (None: unlabelled) and parent threads from its ``extra_args``."""
    thread_id = _clean_id(extra.get("thread_id"))
    parents = tuple(p for p in _clean_parents(extra.get("parent_thread_ids")) if p != thread_id)
    return thread_id, parents


def call_from_request(request: Any) -> Call:
    """Build the core's ``Call`` from a ``vllm.v1.request.Request``."""
    params = getattr(request, "sampling_params", None)
    extra = getattr(params, "extra_args", None) or {}
    if not isinstance(extra, dict):
        extra = {}
    program_id = (
        _clean_id(getattr(request, "session_id", None))
        or _clean_id(extra.get("program_id"))
        or request.request_id
    )
    thread_id, parents = thread_labels(extra)
    return Call(
        call_id=request.request_id,
        program_id=program_id,
        thread_id=thread_id,
        parent_thread_ids=parents,
        program_service_s=_clean_seconds(extra.get("program_service_s")),
        program_critical_path_s=_clean_seconds(extra.get("program_critical_path_s")),
        program_wait_s=_clean_seconds(extra.get("program_wait_s")),
        remaining_s=_clean_seconds(extra.get("remaining_s")),
    )
