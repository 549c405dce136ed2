"""Programs and threads over Ray Serve deployment handles (for Ray-native agent actors).

The agent calls the engine deployment directly (no HTTP hop): requests are vLLM's
OpenAI request models, sent with ``handle.options(stream=True)``; the engine
deployment's Autellix request router still sees the program id (``session_id``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest

from autellix_ray.client.program import Program, Thread, program_fields
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME


def engine_handle(app_name: str = "autellix", model_id: str = "tiny"):
    """The handle of the app's engine deployment (named ``<ServerClass>:<model_id>``)."""
    deployments = serve.status().applications[app_name].deployments
    names = [d for d in deployments if d.endswith(f":{model_id}")]
    if len(names) != 1:
        raise ValueError(f"no single engine deployment for model {model_id!r} in {sorted(deployments)}")
    return serve.get_deployment_handle(names[0], app_name=app_name)


def _first_error(item: Any) -> None:
    error = getattr(item, "error", None)
    if error is not None and getattr(item, "object", "") == "error":
        raise RuntimeError(f"{error.type}: {error.message}")


@dataclass
class HandleProgram(Program):
    """A program over the engine deployment's handle; ``start`` registers it with the table."""

    handle: Any = None  # the engine deployment's DeploymentHandle (``engine_handle``)

    @classmethod
    async def start(
        cls, *, app_name: str = "autellix", model: str = "tiny", program_id: str | None = None, handle=None
    ) -> HandleProgram:
        table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
        row = await table.start_program.remote(program_id, None)
        return cls(program_id=row["program_id"], model=model, handle=handle or engine_handle(app_name, model))

    async def end(self) -> dict:
        table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
        return await table.end_program.remote(self.program_id, None)

    def _body(self, thread: Thread, **fields: Any) -> dict[str, Any]:
        # ``extra_body`` (the openai client's way to send vLLM fields such as ``ignore_eos``)
        # holds request fields: merge them, as the HTTP server would see them.
        fields.update(fields.pop("extra_body", None) or {})
        return {"model": self.model, **fields, **program_fields(self.program_id, thread.thread_id, thread.parents)}

    async def _call(self, method: str, request: Any) -> AsyncIterator[Any]:
        async for item in getattr(self.handle.options(stream=True), method).remote(request):
            for part in item if isinstance(item, list) else [item]:
                _first_error(part)
                yield part

    async def _chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> Any:
        request = ChatCompletionRequest(**self._body(thread, messages=messages, **kwargs))
        async for response in self._call("chat", request):
            return response

    async def _complete(self, thread: Thread, prompt: Any, **kwargs: Any) -> Any:
        request = CompletionRequest(**self._body(thread, prompt=prompt, **kwargs))
        async for response in self._call("completions", request):
            return response

    async def _stream_chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> AsyncIterator[str]:
        request = ChatCompletionRequest(**self._body(thread, messages=messages, stream=True, **kwargs))
        async for chunk in self._call("chat", request):
            for line in str(chunk).splitlines():
                if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                    continue
                delta = json.loads(line[len("data: "):])["choices"]
                if delta and delta[0].get("delta", {}).get("content"):
                    yield delta[0]["delta"]["content"]
