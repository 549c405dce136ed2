"""Programs and threads over the OpenAI-compatible HTTP API (the ``openai`` client).

A ``Program`` names every call it makes with its program id (``session_id``); a
``Thread`` adds its thread id and parent threads (``vllm_xargs``), which ATLAS uses
for the exact critical path. Threads are cheap labels: create one per branch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from openai import AsyncOpenAI


def program_fields(program_id: str, thread_id: str | None, parents: Sequence[str] = ()) -> dict[str, Any]:
    """The request-body fields that tie a call to its program and thread."""
    xargs: dict[str, Any] = {}
    if thread_id is not None:
        xargs["thread_id"] = thread_id
    if parents:
        xargs["parent_thread_ids"] = list(parents)
    body: dict[str, Any] = {"session_id": program_id}
    if xargs:
        body["vllm_xargs"] = xargs
    return body


async def _programs_api(base_url: str, api_key: str, method: str, path: str, body: dict | None = None) -> Any:
    """One request to the program endpoints; raises ``httpx.HTTPStatusError`` on an error status."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        r = await http.request(method, path, json=body, headers={"authorization": f"Bearer {api_key}"})
        r.raise_for_status()
        return r.json()


@dataclass
class Thread:
    """A label for a sequential chain of a program's calls; make one with ``Program.thread``."""

    program: Program  # the program whose calls it makes
    thread_id: str  # sent as vllm_xargs["thread_id"]
    parents: tuple[str, ...] = ()  # threads this one waits on, sent as vllm_xargs["parent_thread_ids"]

    async def chat(self, messages: list[dict], **kwargs: Any) -> Any:
        return await self.program._chat(self, messages, **kwargs)

    async def complete(self, prompt: str | list[int], **kwargs: Any) -> Any:
        return await self.program._complete(self, prompt, **kwargs)

    async def stream_chat(self, messages: list[dict], **kwargs: Any) -> AsyncIterator[str]:
        async for text in self.program._stream_chat(self, messages, **kwargs):
            yield text


@dataclass
class Program:
    """Base: a program id and thread bookkeeping; transports implement the calls."""

    program_id: str  # sent as every call's session_id
    model: str = "tiny"  # the served model's id
    threads: dict[str, Thread] = field(default_factory=dict)  # by thread id, as made by ``thread``

    def thread(self, thread_id: str, parents: Sequence[str] = ()) -> Thread:
        unknown = [p for p in parents if p not in self.threads]
        if unknown:
            raise ValueError(f"unknown parent thread(s) {unknown}; known: {sorted(self.threads)}")
        if thread_id in parents:
            raise ValueError(f"thread {thread_id!r} cannot be its own parent")
        t = Thread(self, thread_id, tuple(parents))
        self.threads[thread_id] = t
        return t

    async def _chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> Any:
        raise NotImplementedError

    async def _complete(self, thread: Thread, prompt: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def _stream_chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> AsyncIterator[str]:
        raise NotImplementedError
        yield  # pragma: no cover


@dataclass
class HTTPProgram(Program):
    """A program over the HTTP API; ``start`` registers it, ``end`` (or leaving ``async with``) ends it."""

    base_url: str = "http://127.0.0.1:8000"  # the app's address (no /v1)
    api_key: str = "none"  # sent as Bearer token; the program belongs to this key
    client: AsyncOpenAI | None = None  # the calls' client (``start`` makes one)

    @classmethod
    async def start(
        cls, base_url: str, *, model: str = "tiny", api_key: str = "none", program_id: str | None = None
    ) -> HTTPProgram:
        """POST /v1/programs (the server assigns an unguessable id unless one is given)."""
        body = {"program_id": program_id} if program_id else None
        pid = (await _programs_api(base_url, api_key, "POST", "/v1/programs", body))["program_id"]
        client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=api_key)
        return cls(program_id=pid, model=model, base_url=base_url, api_key=api_key, client=client)

    async def end(self) -> dict:
        """DELETE /v1/programs/{id}: the program's final row."""
        return await _programs_api(self.base_url, self.api_key, "DELETE", f"/v1/programs/{self.program_id}")

    async def row(self) -> dict:
        """GET /v1/programs/{id}: the program's row in the program table."""
        return await _programs_api(self.base_url, self.api_key, "GET", f"/v1/programs/{self.program_id}")

    async def __aenter__(self) -> HTTPProgram:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.end()

    def _extra(self, thread: Thread, kwargs: dict) -> dict:
        extra = dict(kwargs.pop("extra_body", None) or {})
        extra.update(program_fields(self.program_id, thread.thread_id, thread.parents))
        return extra

    async def _chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> Any:
        extra = self._extra(thread, kwargs)
        return await self.client.chat.completions.create(
            model=self.model, messages=messages, extra_body=extra, **kwargs
        )

    async def _complete(self, thread: Thread, prompt: Any, **kwargs: Any) -> Any:
        extra = self._extra(thread, kwargs)
        return await self.client.completions.create(model=self.model, prompt=prompt, extra_body=extra, **kwargs)

    async def _stream_chat(self, thread: Thread, messages: list[dict], **kwargs: Any) -> AsyncIterator[str]:
        extra = self._extra(thread, kwargs)
        stream = await self.client.chat.completions.create(
            model=self.model, messages=messages, extra_body=extra, stream=True, **kwargs
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
