"""The HTTP ingress: Ray Serve LLM's OpenAI ingress plus program endpoints.

OpenAI-compatible chat and completions (streaming included) come from Ray Serve
LLM's ``OpenAiIngress`` unchanged; a program is named by the body's ``session_id``
or the ``x-session-id`` header, threads by ``vllm_xargs``. Added routes:

    POST   /v1/programs              start a program  -> {"program_id": ..., ...}
           body (optional): {"program_id": "..."}; omitted -> an unguessable id
    GET    /v1/programs/{program_id} its row in the program table
    DELETE /v1/programs/{program_id} end it            -> its final row

Errors: unknown program 404, a program started by another API key 403, malformed
ids 400; all in OpenAI's error format.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import ray
from fastapi import Request
from fastapi.responses import JSONResponse
from ray.llm._internal.serve.core.ingress.ingress import DEFAULT_ENDPOINTS, OpenAiIngress

from autellix_ray.core import UnknownProgram
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME

TABLE_TIMEOUT_S = 5.0


def _error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": kind, "param": None, "code": status}},
    )


def _owner(request: Request) -> str | None:
    """Callers are told apart by their API key (hashed; never stored in clear)."""
    auth = request.headers.get("authorization", "")
    if not auth:
        return None
    return hashlib.sha256(auth.encode()).hexdigest()[:32]


class AutellixIngress(OpenAiIngress):
    async def _table_call(self, method: str, *args: Any) -> Any:
        table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
        return await asyncio.wait_for(getattr(table, method).remote(*args), TABLE_TIMEOUT_S)

    async def _program_op(self, method: str, *args: Any) -> JSONResponse:
        try:
            return JSONResponse(await self._table_call(method, *args))
        except UnknownProgram as e:
            return _error(404, f"unknown program {e.args[0]!r}", "NotFoundError")
        except PermissionError as e:
            return _error(403, str(e), "PermissionDeniedError")
        except ValueError as e:
            return _error(400, str(e), "BadRequestError")
        except (asyncio.TimeoutError, ray.exceptions.RayActorError) as e:
            return _error(503, f"program table unavailable ({type(e).__name__}); retry", "ServiceUnavailable")

    async def start_program(self, request: Request) -> JSONResponse:
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

    async def get_program(self, program_id: str, request: Request) -> JSONResponse:
        return await self._program_op("get_program", program_id, _owner(request))

    async def end_program(self, program_id: str, request: Request) -> JSONResponse:
        return await self._program_op("end_program", program_id, _owner(request))


PROGRAM_ENDPOINTS = {
    "start_program": lambda app: app.post("/v1/programs"),
    "get_program": lambda app: app.get("/v1/programs/{program_id}"),
    "end_program": lambda app: app.delete("/v1/programs/{program_id}"),
}
ENDPOINTS = {**DEFAULT_ENDPOINTS, **PROGRAM_ENDPOINTS}


