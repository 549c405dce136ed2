"""The HTTP guard (API keys, admission bound, Retry-After) and call validation, without Ray.

The same middleware runs in the real app in tests/serve/test_reliability.py; here a small
Starlette app stands in for the ingress so each rule is checked in milliseconds.
"""

import asyncio

import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from autellix_ray.serve.guard import GuardMiddleware, key_digests
from autellix_ray.serve.ingress import RESERVED_XARGS, check_call


def make_app(keys=None, max_pending=None, gate=None, entered=None):
    async def call(request):
        if entered is not None:
            entered()  # past the guard: counted as pending
        if gate is not None:
            await gate.wait()
        return JSONResponse({"ok": True})

    async def models(request):
        return JSONResponse({"data": []})

    async def unavailable(request):
        return JSONResponse({"error": {}}, status_code=503)

    app = Starlette(routes=[Route("/v1/completions", call, methods=["POST"]),
                            Route("/v1/models", models), Route("/down", unavailable)])
    app.add_middleware(GuardMiddleware, key_digests=key_digests(keys or []), max_pending_calls=max_pending)
    return app


def test_api_keys_guard_every_endpoint_with_openai_style_401():
    client = TestClient(make_app(keys=["k1", "k2"]))
    for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "k1"}, {"authorization": "Basic k1"}):
        r = client.get("/v1/models", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
    for key in ("k1", "k2"):
        assert client.get("/v1/models", headers={"authorization": f"Bearer {key}"}).status_code == 200


def test_keys_come_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("AUTELLIX_API_KEYS", "a, b,")
    assert len(key_digests(None)) == 2 and "a" not in key_digests(None)  # digests, not keys
    monkeypatch.delenv("AUTELLIX_API_KEYS")
    assert key_digests(None) == ()  # no keys: no check
    assert TestClient(make_app()).get("/v1/models").status_code == 200


def test_calls_past_the_bound_get_429_with_retry_after_and_the_count_recovers():
    async def scenario():
        import httpx

        gate, both_held, inside = asyncio.Event(), asyncio.Event(), []

        def entered():
            inside.append(1)
            if len(inside) == 2:
                both_held.set()

        app = make_app(max_pending=2, gate=gate, entered=entered)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            held = [asyncio.create_task(client.post("/v1/completions")) for _ in range(2)]
            await both_held.wait()  # both calls are inside the app, held at the gate
            rejected = await client.post("/v1/completions")
            other = await client.get("/v1/models")  # not a call: never counted or rejected
            gate.set()
            done = await asyncio.gather(*held)
            after = await client.post("/v1/completions")
        return rejected, other, done, after, len(inside)

    rejected, other, done, after, reached_app = asyncio.run(scenario())
    assert rejected.status_code == 429 and rejected.headers["retry-after"] == "1"
    assert rejected.json()["error"]["type"] == "RateLimitError"
    assert other.status_code == 200 and [r.status_code for r in done] == [200, 200]
    assert after.status_code == 200 and reached_app == 3  # the rejected call never reached the app


def test_503_responses_carry_retry_after():
    r = TestClient(make_app()).get("/down")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"


class Body:
    def __init__(self, session_id=None, vllm_xargs=None):
        self.session_id, self.vllm_xargs = session_id, vllm_xargs


@pytest.mark.parametrize("body, header", [
    (Body(session_id="x" * 257), None),
    (Body(session_id=""), None),
    (Body(), "h" * 300),
    (Body(vllm_xargs={"thread_id": "t" * 257}), None),
    (Body(vllm_xargs={"thread_id": 1.5}), None),
    (Body(vllm_xargs={"thread_id": "t", "parent_thread_ids": ["t"]}), None),
    (Body(vllm_xargs={"parent_thread_ids": [str(i) for i in range(65)]}), None),
    (Body(vllm_xargs={"parent_thread_ids": 3}), None),
    (Body(vllm_xargs={"parent_thread_ids": [""]}), None),
])
def test_malformed_program_and_thread_ids_are_rejected(body, header):
    with pytest.raises(ValueError):
        check_call(body, header)


def test_valid_calls_are_normalised_and_reserved_scheduler_inputs_stripped():
    body = Body("prog", {"thread_id": 7, "parent_thread_ids": "a,b", "program_service_s": -1e9,
                         "remaining_s": 0.0, "temperature_hint": "kept"})
    check_call(body, "prog")
    assert body.vllm_xargs == {"thread_id": "7", "parent_thread_ids": ["a", "b"], "temperature_hint": "kept"}
    assert not set(RESERVED_XARGS) & set(body.vllm_xargs)


def test_error_bodies_that_are_not_openai_shaped_are_rewritten():
    client = TestClient(make_app())
    r = client.get("/no-such-route")  # Starlette's plain-text 404
    assert r.status_code == 404 and r.json()["error"]["type"] == "NotFoundError"
    assert int(r.headers["content-length"]) == len(r.content)
    r = client.get("/down")  # {"error": {}} is already OpenAI-shaped: kept as is
    assert r.json() == {"error": {}}


def test_chat_messages_without_a_role_are_rejected():
    body = Body()
    body.messages = [{"role": "user", "content": "hi"}, {"author": "x", "content": "no role"}]
    with pytest.raises(ValueError, match=r"messages\[1\]"):
        check_call(body, None)
    body.messages = [{"role": "user", "content": "hi"}]
    check_call(body, None)
