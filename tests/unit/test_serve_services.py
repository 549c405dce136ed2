"""The program-table and router services as plain objects (their Ray actors run in tests/serve)."""

import pytest

from autellix_ray.core import UnknownProgram
from autellix_ray.serve.program_table import ProgramTableService
from autellix_ray.core.routing import text_block_keys
from autellix_ray.serve.router import AutellixRequestRouter, RouterService, estimate_prompt_tokens, prompt_text


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def report(pid, thread="main", service=1.0, wait=0.5, start=0.0):
    return {"program_id": pid, "thread_id": thread, "service_s": service, "wait_s": wait,
            "critical_path_start_s": start}


def test_begin_and_report_update_the_row_and_return_program_state():
    clock = Clock()
    svc = ProgramTableService(clock=clock)
    assert svc.begin_call("p", "main") == {
        "program_service_s": 0.0, "program_critical_path_s": 0.0, "program_wait_s": 0.0}
    clock.now = 2.0
    assert svc.report_calls([report("p")]) == 1
    state = svc.begin_call("p", "main")
    assert state == {"program_service_s": 1.0, "program_critical_path_s": 1.0, "program_wait_s": 0.5}
    row = svc.get_program("p")
    assert row["num_calls"] == 2 and row["num_active_calls"] == 1 and row["threads"]["main"]["num_calls"] == 2


def test_exact_critical_path_start_for_a_call_naming_parents():
    svc = ProgramTableService(clock=Clock())
    for t in ("a", "b"):
        svc.begin_call("p", t)
    svc.report_calls([report("p", "a", service=3.0), report("p", "b", service=1.0)])
    assert svc.begin_call("p", "join", ["b"])["program_critical_path_s"] == 1.0
    assert svc.begin_call("p", "other")["program_critical_path_s"] == 3.0  # no parents: the scalar


def test_server_assigned_ids_are_unguessable_and_owned():
    svc = ProgramTableService(clock=Clock())
    ids = {svc.start_program(owner="k1")["program_id"] for _ in range(100)}
    assert len(ids) == 100 and all(len(i) >= 20 for i in ids)
    pid = next(iter(ids))
    with pytest.raises(PermissionError):
        svc.get_program(pid, owner="k2")
    with pytest.raises(PermissionError):
        svc.end_program(pid, owner="k2")
    assert svc.end_program(pid, owner="k1")["program_id"] == pid
    with pytest.raises(UnknownProgram):
        svc.get_program(pid, owner="k1")
    with pytest.raises(ValueError, match="program_id"):
        svc.start_program("x" * 1000)


def test_idle_programs_are_collected_on_report_batches():
    clock = Clock()
    svc = ProgramTableService(idle_timeout_s=10.0, clock=clock)
    svc.begin_call("old", "t")
    svc.report_calls([report("old", "t")])
    clock.now = 100.0
    svc.begin_call("new", "t")
    svc.report_calls([report("new", "t")])
    assert svc.stats()["num_programs"] == 1 and svc.stats()["num_collected"] == 1


def test_pins_set_before_the_first_call_reach_the_row():
    svc = ProgramTableService(clock=Clock())
    svc.set_pin("p", "engine-1")
    svc.begin_call("p", "t")
    assert svc.get_program("p")["pinned_engines"] == ["engine-1"]
    svc.set_pin("p", None)
    assert svc.get_program("p")["pinned_engines"] == []


def test_router_pins_long_programs_and_moves_pins_off_dead_engines():
    router = RouterService(short_prompt_tokens=100)
    first = router.route("p", 500, [("e0", 3), ("e1", 0)])
    assert first[0] == "e1" and router.pin_of("p") == "e1"
    assert router.route("p", 500, [("e0", 0), ("e1", 9)])[0] == "e1"  # sticks to its KV
    assert router.remove_engine("e1") == 1 and router.pin_of("p") is None
    assert router.route("p", 500, [("e0", 5), ("e2", 1)])[0] == "e2"  # re-pinned
    assert router.route("p", 500, [("e0", 0)])[0] == "e0"  # e2 vanished from the candidates
    assert router.stats()["decisions"] == {"new-pin": 3, "pinned": 1}


class Remote:
    """An actor handle's stand-in: ``handle.method.remote(...)`` calls ``target.method(...)``."""

    def __init__(self, target):
        self._target = target

    def __getattr__(self, name):
        method = getattr(self._target, name)
        return type("Method", (), {"remote": staticmethod(method)})


def test_router_tells_its_injected_table_about_pins():
    table = ProgramTableService(clock=Clock())
    router = RouterService(short_prompt_tokens=100, table=Remote(table))
    router.route("p", 500, [("e0", 3), ("e1", 0)])  # pinned before the first call: a pending pin
    table.begin_call("p", "t")
    assert table.get_program("p")["pinned_engines"] == ["e1"]
    router.remove_engine("e1")
    assert table.get_program("p")["pinned_engines"] == []


def test_router_pin_table_is_bounded():
    router = RouterService(short_prompt_tokens=0, max_pins=10)
    for i in range(100):
        router.route(f"p{i}", 50, [("e0", 0), ("e1", 0)])
    assert router.stats()["num_pins"] == 10


class Body:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def test_kv_cost_router_service_follows_the_prompts_cached_text_and_moves_when_loaded():
    router = RouterService(policy="kv_cost")
    context = "You are a coding agent. " * 200  # ~4,800 characters: ~1,200 tokens, 75 keys
    keys = text_block_keys(context)
    home = router.route("p", 1200, [("e0", 0), ("e1", 0)], keys)[0]
    other = "e1" if home == "e0" else "e0"
    loads = lambda h, o: [(home, h), (other, o)]
    grown = text_block_keys(context + "tool output " * 20)
    for _ in range(3):  # calls outside programs, 100 tokens each: the mean prompt is now 375 tokens
        router.route(None, 100, [("e0", 0), ("e1", 0)])
    assert router.route("p", 1260, loads(2, 0), grown)[0] == home  # two calls more there (~750): still cheaper
    assert router.route("p", 1260, loads(4, 0), grown)[0] == other  # four more (~2,200): moving pays
    assert router.pin_of("p") == other
    assert router.route("q", 1200, [("e0", 0), ("e1", 0)], ())[0] in ("e0", "e1")  # no keys: load only
    with pytest.raises(ValueError, match="unknown router policy 'fastest'"):
        RouterService(policy="fastest")


def test_request_router_sends_every_program_call_to_a_kv_cost_actor_and_only_long_ones_to_algorithm_2():
    from autellix_ray.core import RouteRequest

    kv, alg2 = object.__new__(AutellixRequestRouter), object.__new__(AutellixRequestRouter)
    kv.initialize_state(short_prompt_tokens=100, router=object(), policy="kv_cost")
    alg2.initialize_state(short_prompt_tokens=100, router=object())
    assert kv._asks_actor(RouteRequest("p", 10)) and not kv._asks_actor(RouteRequest(None, 10_000))
    assert not alg2._asks_actor(RouteRequest("p", 10)) and alg2._asks_actor(RouteRequest("p", 101))
    with pytest.raises(ValueError, match="unknown router policy"):
        object.__new__(AutellixRequestRouter).initialize_state(policy="nope")


def test_prompt_text_keeps_the_prefix_of_a_growing_chat():
    turn1 = Body(prompt=None, messages=[{"role": "system", "content": "s" * 100}, {"role": "user", "content": "u"}])
    turn2 = Body(prompt=None, messages=turn1.messages + [{"role": "assistant", "content": "a" * 50},
                                                         {"role": "user", "content": "v"}])
    assert prompt_text(turn2).startswith(prompt_text(turn1))
    assert prompt_text(Body(prompt=[1, 2])) == "1 2" and prompt_text(Body(prompt="hi")) == "hi"


def test_prompt_token_estimates():
    assert estimate_prompt_tokens(Body(prompt=[1, 2, 3])) == 3
    assert estimate_prompt_tokens(Body(prompt="x" * 400)) == 100
    assert estimate_prompt_tokens(Body(prompt=None, messages=[{"role": "user", "content": "y" * 80}])) == 20


def test_begin_calls_batches_arrivals():
    svc = ProgramTableService(clock=Clock())
    states = svc.begin_calls([("a", "t", []), ("b", "t", []), ("a", "u", ["t"])])
    assert len(states) == 3 and svc.get_program("a")["num_calls"] == 2


def test_a_restarted_table_restores_rows_owners_and_pins_from_its_checkpoint():
    from autellix_ray.core.checkpoint import MemoryStore

    clock, store = Clock(), MemoryStore()
    svc = ProgramTableService(clock=clock, store=store, checkpoint_interval_s=1.0)
    pid = svc.start_program(owner="alice")["program_id"]  # lifecycle ops checkpoint at once
    svc.begin_calls([(pid, "main", [])])
    svc.set_pin("later", "engine-1")
    clock.now = 0.5
    svc.report_calls([report(pid, service=2.0)])  # inside the interval: not yet written
    restarted = ProgramTableService(clock=clock, store=store)
    assert restarted.restored_programs == 1 and restarted.get_program(pid, "alice")["service_s"] == 0.0
    with pytest.raises(PermissionError):
        restarted.get_program(pid, "mallory")  # ownership survives the restart
    clock.now = 1.5
    svc.report_calls([report(pid, "t2", service=1.0)])  # interval passed: written
    restarted = ProgramTableService(clock=clock, store=store)
    assert restarted.get_program(pid, "alice")["service_s"] == 3.0
    assert restarted.pending_pins == {"later": "engine-1"}
    assert restarted.stats()["restored_programs"] == 1 and svc.stats()["num_checkpoints"] >= 2


def test_a_table_without_a_store_never_checkpoints():
    svc = ProgramTableService(clock=Clock())
    svc.start_program("p")
    assert svc.checkpoint() == 0 and svc.num_checkpoints == 0
