"""Every reach of ``autellix_ray.serve`` into private Ray internals, checked at import.

Ray Serve LLM's public API (``ray.serve.llm``) covers the engine deployment, the
server and ingress classes and the OpenAI request models; the serve package uses
those directly. What it needs beyond them lives here, pinned to ``ray==2.60.0``:

- from Ray Serve LLM: the ingress's default endpoint map and FastAPI app
  (``DEFAULT_ENDPOINTS``, ``ingress_app``), its HTTP error type
  (``OpenAIHTTPException``) and model cards (``to_model_metadata``);
- the session id of the request being served (``request_session_id``: Ray Serve's
  private request context carries the ``x-session-id`` header and handle option);
- the GCS key-value store (``internal_kv_get``/``_put``/``_del``) for the program
  table's checkpoints;
- the report tap (``tap_output_processor``): the replica wraps the
  ``process_outputs`` of the vLLM frontend that Ray's vLLM engine holds
  (``LLMServer.engine._engine_client.output_processor``) to see every finished
  call's report. If any link is missing the replica fails to start
  (RuntimeError), rather than serve on with program reports silently stopped.

Importing this module on another Ray version raises ImportError; the Ray Serve LLM
internals load on first use (they import vLLM, which the program-table actor does not need).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import ray

from autellix_ray._versions import require_release

RAY_VERSION = "2.60.0"


def check_ray_version(version: str) -> None:
    """Raise ImportError unless ``version`` is the pinned Ray release."""
    require_release(
        version, RAY_VERSION, "autellix_ray.serve",
        f"ray=={RAY_VERSION} (pip install 'ray[serve]=={RAY_VERSION}')",
        "it relies on private Ray Serve LLM internals",
    )


check_ray_version(ray.__version__)

from ray.experimental import internal_kv  # after the version check
from ray.serve import context as _serve_context

if not hasattr(_serve_context, "_get_serve_request_context") or not hasattr(
    getattr(_serve_context, "_RequestContext", None), "session_id"
):
    raise ImportError(
        f"ray {ray.__version__} lacks ray.serve.context._get_serve_request_context() or its "
        f"session_id (autellix_ray.serve is written against ray=={RAY_VERSION})"
    )

# Ray Serve LLM internals, imported on first use: they import vLLM (seconds of CPU), which
# processes that only need the light helpers below (the program-table actor) never pay.
_LLM_INTERNALS = {
    "DEFAULT_ENDPOINTS": ("ray.llm._internal.serve.core.ingress.ingress", "DEFAULT_ENDPOINTS"),
    "ingress_app": ("ray.llm._internal.serve.core.ingress.ingress", "init"),
    "OpenAIHTTPException": ("ray.llm._internal.serve.core.configs.openai_api_models", "OpenAIHTTPException"),
    "to_model_metadata": ("ray.llm._internal.serve.core.configs.openai_api_models", "to_model_metadata"),
}

def __getattr__(name: str) -> Any:
    if name not in _LLM_INTERNALS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _LLM_INTERNALS[name]
    try:
        value = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ImportError(
            f"ray {ray.__version__} lacks {module}.{attr} (autellix_ray.serve is written against "
            f"ray=={RAY_VERSION})"
        ) from e
    globals()[name] = value
    return value


def request_session_id() -> str | None:
    """The session id Ray Serve carries for the request being served (None: none given)."""
    return _serve_context._get_serve_request_context().session_id or None


def internal_kv_get(key: bytes, namespace: str) -> bytes | None:
    return internal_kv._internal_kv_get(key, namespace=namespace)


def internal_kv_put(key: bytes, value: bytes, namespace: str) -> None:
    internal_kv._internal_kv_put(key, value, overwrite=True, namespace=namespace)


def internal_kv_del(key: bytes, namespace: str) -> None:
    internal_kv._internal_kv_del(key, namespace=namespace)


def tap_output_processor(server: Any, on_output: Callable[[Any], None]) -> None:
    """Call ``on_output(engine_core_output)`` for every output the replica's vLLM frontend processes.

    ``server`` is a started ``LLMServer``. Raises RuntimeError naming the first missing
    link of ``server.engine._engine_client.output_processor.process_outputs``.
    """
    from autellix_ray.vllm._compat import VLLM_VERSION  # the replica runs vLLM anyway

    target: Any = server
    path = type(server).__name__
    for name in ("engine", "_engine_client", "output_processor", "process_outputs"):
        target = getattr(target, name, None)
        path += f".{name}"
        if target is None:
            raise RuntimeError(
                f"cannot tap vLLM's output processor: {path} is missing, so program reports "
                f"would never reach the program table (autellix_ray.serve needs ray=={RAY_VERSION} "
                f"and vllm=={VLLM_VERSION}, found ray {ray.__version__})"
            )
    processor, original = server.engine._engine_client.output_processor, target

    def process_outputs(engine_core_outputs, *args, **kwargs):
        for out in engine_core_outputs:
            on_output(out)
        return original(engine_core_outputs, *args, **kwargs)

    processor.process_outputs = process_outputs
