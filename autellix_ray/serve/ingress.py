"""The HTTP ingress: Ray Serve LLM's OpenAI ingress plus program endpoints.

OpenAI-compatible chat and completions (streaming included) come from Ray Serve
LLM's ``OpenAiIngress`` unchanged; a program is named by the body's ``session_id``
or the ``x-session-id`` header, threads by ``vllm_xargs``. Added routes:

    POST   /v1/programs              start a program  -> {"program_id": ..., ...}
           body (optional): {"program_id": "..."}; omitted -> an unguessable id
    GET    /v1/programs/{program_id} its row in the program table
    DELETE /v1/programs/{program_id} end it            -> its final row

Calls are checked before they reach an engine (400 on failure): program and thread ids
are strings of 1-256 characters, at most 64 parent threads, none the thread itself (a
cycle through other threads is harmless: a call's critical-path start reads its parents'
stored values, never walks the graph). Scheduler inputs a client must not set
(``program_service_s``, ``program_critical_path_s``, ``program_wait_s``, ``remaining_s``,
``program_id``) are stripped from ``vllm_xargs``: only the program table sets them.

Failures: a call whose engine replica dies before its first byte reached the client is
retried on another replica (``MAX_ATTEMPTS``, backing off); past that, or mid-stream, or
under Ray Serve back-pressure, the client gets 503 with Retry-After (``guard.py`` adds the
header), which the ``openai`` client retries.

Errors: unknown program 404, a program started by another API key 403, malformed
ids 400; all in OpenAI's error format.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import ray
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError
from ray.serve.llm.ingress import OpenAiIngress
from ray.serve.llm.openai_api_models import ChatCompletionRequest, CompletionRequest

from autellix_ray.core import UnknownProgram
from autellix_ray.core.ids import MAX_ID_CHARS, MAX_PARENTS, split_parent_ids
from autellix_ray.serve._compat import DEFAULT_ENDPOINTS, OpenAIHTTPException
from autellix_ray.serve.guard import error_body
from autellix_ray.serve.metrics import count_ingress
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME

TABLE_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 6  # a call whose replica died is retried on another (backoff 0.25 s, doubling)
RESERVED_XARGS = ("program_id", "program_service_s", "program_critical_path_s", "program_wait_s", "remaining_s")
CLIENT_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError)
REPLICA_FAILURES = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


def _error(status: int, message: str, kind: str) -> Response:
    return Response(error_body(status, message, kind), status_code=status, media_type="application/json")


def _owner(request: Request) -> str | None:
    """Callers are told apart by their API key (hashed; never stored in clear)."""
    auth = request.headers.get("authorization", "")
    if not auth:
        return None
    return hashlib.sha256(auth.encode()).hexdigest()[:32]


def _check_id(value: Any, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ValueError(f"{what} must be a string of 1-{MAX_ID_CHARS} characters")
    return value


def check_call(body: Any, session_header: str | None) -> None:
    """Validate a call's program/thread fields in place (ValueError: a 400 for the client)."""
    for i, message in enumerate(getattr(body, "messages", None) or ()):
        role = message.get("role") if isinstance(message, dict) else getattr(message, "role", None)
        if not isinstance(role, str):  # the schema lets it through; vLLM's renderer would KeyError (a 500)
            raise ValueError(f"messages[{i}] needs a string 'role'")  # noqa: TRY004 - a 400
    session_id = getattr(body, "session_id", None)
    if session_id is not None:
        _check_id(session_id, "session_id")
    if session_header is not None:
        _check_id(session_header, "x-session-id")
    xargs = getattr(body, "vllm_xargs", None)
    if not xargs:
        return
    if not isinstance(xargs, dict):
        raise ValueError("vllm_xargs must be an object")  # noqa: TRY004 - ValueError: a 400
    xargs = {k: v for k, v in xargs.items() if k not in RESERVED_XARGS}
    thread_id = _check_id(xargs["thread_id"], "vllm_xargs.thread_id") if "thread_id" in xargs else None
    parents = xargs.get("parent_thread_ids")
    if parents is not None:
        parents = split_parent_ids(parents)
        if not isinstance(parents, list) or len(parents) > MAX_PARENTS:
            raise ValueError(f"vllm_xargs.parent_thread_ids must be a list of at most {MAX_PARENTS} thread ids")
        parents = [_check_id(p, "a parent thread id") for p in parents]
        if thread_id is not None and thread_id in parents:
            raise ValueError("a thread cannot be its own parent")
        xargs["parent_thread_ids"] = parents
    if thread_id is not None:
        xargs["thread_id"] = thread_id
    body.vllm_xargs = xargs


class AutellixIngress(OpenAiIngress):
    async def chat(self, body: ChatCompletionRequest, request: Request):
        self._check(body, request)
        return await super().chat(body, request)

    async def completions(self, body: CompletionRequest, request: Request):
        self._check(body, request)
        return await super().completions(body, request)

    @staticmethod
    def _check(body: Any, request: Request) -> None:
        try:
            check_call(body, request.headers.get("x-session-id"))
        except ValueError as e:
            raise OpenAIHTTPException(400, str(e), "BadRequestError") from None

    async def _get_response(self, *, body: Any, call_method: str, raw_request: Request | None = None):
        """Ray Serve LLM's call path, retried on another replica if its replica died first."""
        for attempt in range(MAX_ATTEMPTS):
            started = False
            try:
                async for response in super()._get_response(
                    body=body, call_method=call_method, raw_request=raw_request
                ):
                    started = True
                    yield response
                return
            except ray.exceptions.RayTaskError as e:
                # vLLM's own OpenAI server answers 400 for ValueError/TypeError raised while it
                # prepares a request; some of its request checks raise KeyError/IndexError too
                if not started and isinstance(e.cause, CLIENT_ERRORS):
                    raise OpenAIHTTPException(
                        400, f"invalid request ({type(e.cause).__name__}: {e.cause})", "BadRequestError"
                    ) from None
                raise
            except BackPressureError as e:
                raise OpenAIHTTPException(503, f"engines at capacity ({e}); retry", "ServiceUnavailable") from None
            except (*REPLICA_FAILURES, DeploymentUnavailableError) as e:
                if started or attempt == MAX_ATTEMPTS - 1:
                    raise OpenAIHTTPException(
                        503, f"engine replica failed ({type(e).__name__}); retry", "ServiceUnavailable"
                    ) from None
                count_ingress("retried")
                await asyncio.sleep(0.25 * 2**attempt)

    async def _table_call(self, method: str, *args: Any) -> Any:
        table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
        return await asyncio.wait_for(getattr(table, method).remote(*args), TABLE_TIMEOUT_S)

    async def _program_op(self, method: str, *args: Any) -> Response:
        try:
            return JSONResponse(await self._table_call(method, *args))
        except UnknownProgram as e:
            return _error(404, f"unknown program {e.args[0]!r}", "NotFoundError")
        except PermissionError as e:
            return _error(403, str(e), "PermissionDeniedError")
        except ValueError as e:
            return _error(400, str(e), "BadRequestError")
        except (TimeoutError, ray.exceptions.RayActorError) as e:
            return _error(503, f"program table unavailable ({type(e).__name__}); retry", "ServiceUnavailable")

    async def start_program(self, request: Request) -> Response:
        program_id = None
        if await request.body():
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "body must be JSON", "BadRequestError")
            if not isinstance(body, dict):
                return _error(400, "body must be a JSON object", "BadRequestError")
            program_id = body.get("program_id")
            if program_id is not None and not isinstance(program_id, str):
                return _error(400, "program_id must be a string", "BadRequestError")
        return await self._program_op("start_program", program_id, _owner(request))

    async def get_program(self, program_id: str, request: Request) -> Response:
        return await self._program_op("get_program", program_id, _owner(request))

    async def end_program(self, program_id: str, request: Request) -> Response:
        return await self._program_op("end_program", program_id, _owner(request))


PROGRAM_ENDPOINTS = {
    "start_program": lambda app: app.post("/v1/programs"),
    "get_program": lambda app: app.get("/v1/programs/{program_id}"),
    "end_program": lambda app: app.delete("/v1/programs/{program_id}"),
}
ENDPOINTS = {**DEFAULT_ENDPOINTS, **PROGRAM_ENDPOINTS}


