"""HTTP guard in front of the ingress: API keys, admission bound, Retry-After.

An ASGI middleware (outermost, so it runs before Ray Serve LLM's own middleware):

- **API keys.** When keys are configured (``AppArgs.api_keys`` or the
  ``AUTELLIX_API_KEYS`` environment variable, comma-separated), every request needs
  ``Authorization: Bearer <key>`` with one of them, as OpenAI's API does; otherwise 401 in
  OpenAI's error format. Keys are compared as SHA-256 digests (the app's config holds
  digests only) in constant time. Ray-native callers (deployment handles) are inside the
  cluster's trust boundary and are not checked.
- **Admission bound.** At most ``max_pending_calls`` chat/completion calls are in flight
  per ingress replica (running or queued in the engines); a call past the bound gets
  429 ``RateLimitError`` with ``Retry-After`` at once, so memory stays bounded and no
  engine is pushed past its queue.
- **Retry-After** is added to every 429 and 503 (replica failed, program table away,
  Ray Serve back-pressure), so the ``openai`` client's built-in retries back off.

Why a hand-written middleware: Ray Serve's ``max_queued_requests`` answers 503 without
Retry-After at the handle level and knows nothing about API keys; a FastAPI dependency
would have to be declared on each of Ray Serve LLM's endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

API_KEYS_ENV = "AUTELLIX_API_KEYS"
CALL_PATHS = ("/v1/chat/completions", "/v1/completions")
RETRY_AFTER_S = 1


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_digests(keys: Iterable[str] | None) -> tuple[str, ...]:
    """Digests of the configured keys: ``keys`` if given, else ``$AUTELLIX_API_KEYS``."""
    if keys is None:
        keys = [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",")]
    return tuple(digest(k) for k in keys if k)


def error_body(status: int, message: str, kind: str) -> bytes:
    """An error in OpenAI's format (the one builder: this guard's rejections and the ingress's errors)."""
    return json.dumps({"error": {"message": message, "type": kind, "param": None, "code": status}}).encode()


class GuardMiddleware:
    def __init__(self, app: Any, key_digests: tuple[str, ...] = (), max_pending_calls: int | None = None) -> None:
        self.app = app
        self.key_digests = tuple(key_digests)
        self.max_pending_calls = max_pending_calls
        self.pending_calls = 0
        self.num_rejected = {"unauthorized": 0, "overloaded": 0}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.key_digests and not self._authorized(scope):
            self._rejected("unauthorized")
            await _respond(send, 401, "invalid or missing API key (Authorization: Bearer <key>)",
                           "AuthenticationError", {"www-authenticate": "Bearer"})
            return
        is_call = scope.get("method") == "POST" and scope.get("path", "").rstrip("/") in CALL_PATHS
        if is_call and self.max_pending_calls is not None and self.pending_calls >= self.max_pending_calls:
            self._rejected("overloaded")
            await _respond(send, 429, f"server at capacity ({self.max_pending_calls} calls pending); retry later",
                           "RateLimitError", {"retry-after": str(RETRY_AFTER_S)})
            return
        if is_call:
            self.pending_calls += 1
        try:
            await self.app(scope, receive, _with_retry_after(send))
        finally:
            if is_call:
                self.pending_calls -= 1

    def _rejected(self, reason: str) -> None:
        from autellix_ray.serve.metrics import count_ingress

        self.num_rejected[reason] += 1
        count_ingress("rejected", reason)

    def _authorized(self, scope: dict) -> bool:
        auth = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                auth = value.decode("latin-1")
                break
        scheme, _, key = auth.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            return False
        d = digest(key.strip())
        return any(hmac.compare_digest(d, k) for k in self.key_digests)


def _with_retry_after(send: Any) -> Any:
    """Add Retry-After to 429/503 and give every error body OpenAI's shape.

    FastAPI's own errors (unknown route 404, 405, some validation paths) answer
    ``{"detail": ...}``; clients of an OpenAI API expect ``{"error": {...}}``.
    """
    held: dict[str, Any] = {}

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            if message["status"] in (429, 503) and not any(n.lower() == b"retry-after" for n, _ in headers):
                headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
            message = {**message, "headers": headers}
            if message["status"] >= 400:
                held["start"], held["body"] = message, b""  # hold until the body is known
                return
        elif message["type"] == "http.response.body" and "start" in held:
            held["body"] += message.get("body", b"")
            if message.get("more_body"):
                return
            start = held.pop("start")
            body = _openai_error_body(start["status"], held.pop("body"))
            headers = [(n, v) for n, v in start["headers"] if n.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return wrapped


def _openai_error_body(status: int, body: bytes) -> bytes:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        return body
    detail = parsed.get("detail") if isinstance(parsed, dict) else None
    message = detail if isinstance(detail, str) else json.dumps(detail) if detail else body.decode("utf-8", "replace")
    kind = {400: "BadRequestError", 401: "AuthenticationError", 403: "PermissionDeniedError",
            404: "NotFoundError", 405: "MethodNotAllowed", 422: "BadRequestError", 429: "RateLimitError"}
    return error_body(status, message or f"HTTP {status}", kind.get(status, "ServiceUnavailable" if status == 503
                                                                  else "APIError"))


async def _respond(send: Any, status: int, message: str, kind: str, headers: dict[str, str]) -> None:
    body = error_body(status, message, kind)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
