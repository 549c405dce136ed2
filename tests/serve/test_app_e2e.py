"""End to end on a real local Ray cluster: 2 vLLM-CPU replicas, the real openai client."""

import asyncio
import time

import httpx
import pytest
import ray
from openai import AsyncOpenAI, OpenAI

from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME
from autellix_ray.serve.router import ROUTER_NAME

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def client(serve_app):
    return OpenAI(base_url=f"{serve_app}/v1", api_key="key-a")


def table():
    return ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)


def wait_for(predicate, timeout_s=120.0):  # a deadline only bounds a failure
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_openai_completion_with_session_reaches_the_program_table(client):
    r = client.completions.create(
        model="tiny", prompt="plan the next step", max_tokens=8, extra_body={"session_id": "e2e-a"}
    )
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 8
    report = r.model_extra["kv_transfer_params"]["autellix"]
    assert report["program_id"] == "e2e-a" and report["service_s"] > 0
    row = wait_for(lambda: ray.get(table().get_program.remote("e2e-a")) if _row_has_calls("e2e-a") else None)
    assert row["num_calls"] == 1 and row["service_s"] == pytest.approx(report["service_s"])


def _row_has_calls(pid):
    try:
        return ray.get(table().get_program.remote(pid))["service_s"] > 0
    except Exception:  # noqa: BLE001 - no row yet (UnknownProgram, raised through Ray)
        return False


def test_chat_streaming_and_header_session(client, serve_app):
    stream = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=12,
        stream=True,
        extra_headers={"x-session-id": "e2e-stream"},
        extra_body={"ignore_eos": True},
    )
    chunks = [c for c in stream if c.choices and c.choices[0].delta.content is not None]
    assert len(chunks) >= 2
    # streaming responses carry no report; the replica's output tap sent it to the table
    row = wait_for(lambda: _row_has_calls("e2e-stream") and ray.get(table().get_program.remote("e2e-stream")))
    assert row["num_calls"] == 1


def test_calls_without_a_thread_id_leave_no_active_thread_rows(client):
    """Each unlabelled call is its own thread; once it finishes its thread row is idle."""
    r = client.completions.create(
        model="tiny", prompt="no thread named", max_tokens=4, extra_body={"session_id": "e2e-unlabelled"}
    )
    reported_thread = r.model_extra["kv_transfer_params"]["autellix"]["thread_id"]
    stream = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "nor here"}], max_tokens=4, stream=True,
        extra_body={"session_id": "e2e-unlabelled"},
    )
    assert [c for c in stream]

    def settled():  # reports are flushed every REPORT_FLUSH_S (50 ms)
        row = ray.get(table().get_program.remote("e2e-unlabelled"))
        return row["num_active_calls"] == 0 and row["num_calls"] == 2 and row

    row = wait_for(settled)
    threads = row["threads"]
    assert len(threads) == 2 and reported_thread in threads  # the engine reported the table's id
    assert all(t["num_active_calls"] == 0 and t["num_calls"] == 1 and t["service_s"] > 0 for t in threads.values())


def test_program_start_inspect_end(serve_app):
    with httpx.Client(base_url=serve_app, timeout=30, headers={"authorization": "Bearer key-a"}) as http:
        started = http.post("/v1/programs").json()
        pid = started["program_id"]
        assert pid.startswith("prog-") and len(pid) > 20  # server-assigned, unguessable
        c = OpenAI(base_url=f"{serve_app}/v1", api_key="key-a")
        for step in range(3):
            c.completions.create(
                model="tiny", prompt=f"step {step}", max_tokens=4,
                extra_body={"session_id": pid, "vllm_xargs": {"thread_id": "main"}},
            )
        row = wait_for(lambda: (r := http.get(f"/v1/programs/{pid}").json()).get("num_calls") == 3
                       and r.get("service_s", 0) > 0 and r)
        assert list(row["threads"]) == ["main"] and row["threads"]["main"]["num_calls"] == 3
        ended = http.delete(f"/v1/programs/{pid}")
        assert ended.status_code == 200 and ended.json()["program_id"] == pid
        gone = http.get(f"/v1/programs/{pid}")
        assert gone.status_code == 404 and "unknown program" in gone.json()["error"]["message"]
        assert http.delete("/v1/programs/never-started").status_code == 404
        assert http.post("/v1/programs", json={"program_id": 5}).status_code == 400


def test_programs_are_bound_to_the_api_key_that_started_them(serve_app):
    with httpx.Client(base_url=serve_app, timeout=30) as http:
        mine = {"authorization": "Bearer key-a"}
        theirs = {"authorization": "Bearer key-b"}
        pid = http.post("/v1/programs", headers=mine).json()["program_id"]
        assert http.get(f"/v1/programs/{pid}", headers=theirs).status_code == 403
        assert http.delete(f"/v1/programs/{pid}", headers=theirs).status_code == 403
        assert http.get(f"/v1/programs/{pid}", headers=mine).status_code == 200


def test_long_context_program_stays_on_one_replica_while_short_calls_spread(serve_app):
    long_prompt = "context " * 60  # ~120 estimated tokens > short_prompt_tokens (64)

    async def run():
        c = AsyncOpenAI(base_url=f"{serve_app}/v1", api_key="key-a")
        longs = [
            c.completions.create(model="tiny", prompt=long_prompt + str(i), max_tokens=4,
                                 extra_body={"session_id": "pinned-prog"})
            for i in range(6)
        ]
        shorts = [
            c.completions.create(model="tiny", prompt=f"hi {i}", max_tokens=16, extra_body={"ignore_eos": True})
            for i in range(16)
        ]
        return await asyncio.gather(*longs), await asyncio.gather(*shorts)

    longs, shorts = asyncio.run(run())
    pinned_engine = ray.get(ray.get_actor(ROUTER_NAME, namespace=NAMESPACE).pin_of.remote("pinned-prog"))
    assert pinned_engine is not None
    row = wait_for(lambda: (r := ray.get(table().get_program.remote("pinned-prog")))["num_calls"] == 6 and r)
    assert row["pinned_engines"] == [pinned_engine]
    long_engines = {r.model_extra["kv_transfer_params"]["autellix"]["engine_id"] for r in longs}
    assert long_engines == {pinned_engine}  # every long call went where its KV is
    short_engines = [s.model_extra["kv_transfer_params"]["autellix"]["engine_id"] for s in shorts]
    assert len(set(short_engines)) == 2  # short calls spread over both replicas
    served = ray.get(table().stats.remote())
    assert served["num_reports"] >= 22


def test_prometheus_metrics_of_programs_and_router(serve_app, client):
    from tests.serve.conftest import METRICS_PORTS

    client.completions.create(model="tiny", prompt="metrics please", max_tokens=4, extra_body={"session_id": "m1"})

    def scrape():
        text = "".join(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text for port in METRICS_PORTS)
        wanted = ("ray_autellix_call_service_seconds", "ray_autellix_calls_by_final_queue_total",
                  "ray_autellix_router_decisions_total", "ray_autellix_programs")
        return text if all(name in text for name in wanted) else None

    text = wait_for(scrape, timeout_s=60)
    assert 'reason="pinned"' in text or 'reason="new-pin"' in text


def test_replicas_run_on_both_nodes_of_the_cluster(serve_app):
    actors = ray._private.state.actors().values()  # from the GCS (no dashboard in these tests)
    replicas = [a for a in actors if a["State"] == "ALIVE" and "AutellixLLMServer" in a["ActorClassName"]]
    assert len(replicas) == 2
    assert len({a["Address"]["NodeID"] for a in replicas}) == 2  # one engine per node
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
