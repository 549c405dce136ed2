import pytest

from autellix_ray.core import ROUTERS, EngineLoad, ProgramRouter, RouteRequest, make_router

ALL = sorted(ROUTERS)


def engines(*calls):
    return [EngineLoad(f"e{i}", num_running=n) for i, n in enumerate(calls)]


@pytest.mark.parametrize("name", ALL)
def test_ranking_is_a_permutation_of_the_live_engines(name):
    router = make_router(name)
    pool = engines(3, 0, 5, 1)
    for tokens in (10, 5000):
        for _ in range(5):
            decision = router.route(RouteRequest("p", tokens), pool)
            assert sorted(decision.ranked) == ["e0", "e1", "e2", "e3"]
            assert decision.pin in (None, *decision.ranked)


@pytest.mark.parametrize("name", ALL)
def test_no_engines_is_an_error(name):
    with pytest.raises(ValueError, match="no engines"):
        make_router(name).route(RouteRequest("p", 10), [])


@pytest.mark.parametrize("name", ALL)
def test_single_engine_always_wins(name):
    assert make_router(name).route(RouteRequest(None, 10), engines(7)).ranked == ("e0",)


def test_round_robin_rotates_regardless_of_load():
    router = make_router("round_robin")
    firsts = [router.route(RouteRequest("p", 1), engines(9, 0, 0)).ranked[0] for _ in range(6)]
    assert firsts == ["e0", "e1", "e2", "e0", "e1", "e2"]


def test_least_used_prefers_fewest_calls_and_rotates_ties():
    router = make_router("least_used")
    pool = [EngineLoad("a", 2, 2), EngineLoad("b", 1, 0), EngineLoad("c", 0, 1)]
    assert router.route(RouteRequest("p", 1), pool).ranked[2] == "a"
    firsts = {router.route(RouteRequest("p", 1), pool).ranked[0] for _ in range(4)}
    assert firsts == {"b", "c"}  # b and c tie at one call each


def test_autellix_short_prompts_spread_to_least_used_without_pinning():
    router = make_router("autellix", short_prompt_tokens=100)
    decision = router.route(RouteRequest("p", 100, pinned_engine_id="e0"), engines(5, 0))
    assert decision.ranked[0] == "e1" and decision.pin is None and decision.reason == "short"


def test_autellix_long_prompts_pin_then_stick():
    router = make_router("autellix", short_prompt_tokens=100)
    first = router.route(RouteRequest("p", 101), engines(5, 0, 3))
    assert first.pin == "e1" and first.ranked[0] == "e1" and first.reason == "new-pin"
    # later the pinned engine is the busiest, but the program's KV lives there
    again = router.route(RouteRequest("p", 500, pinned_engine_id="e1"), engines(0, 9, 0))
    assert again.ranked[0] == "e1" and again.pin is None and again.reason == "pinned"


def test_autellix_repins_when_the_pinned_engine_is_gone():
    router = make_router("autellix", short_prompt_tokens=100)
    decision = router.route(RouteRequest("p", 500, pinned_engine_id="dead"), engines(4, 1))
    assert decision.pin == "e1" and decision.reason == "new-pin"


def test_autellix_calls_without_a_program_are_never_pinned():
    decision = make_router("autellix").route(RouteRequest(None, 10_000), engines(1, 0))
    assert decision.pin is None


def test_unknown_router_and_bad_parameters():
    with pytest.raises(ValueError, match=r"valid: \['autellix', 'least_used', 'round_robin'\]"):
        make_router("random")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['threshold'\].*valid: \['short_prompt_tokens'\]"):
        make_router("autellix", threshold=5)
    with pytest.raises(ValueError, match="short_prompt_tokens must be"):
        make_router("autellix", short_prompt_tokens=-1)
    with pytest.raises(ValueError, match=r"valid: \[\]"):
        make_router("round_robin", short_prompt_tokens=5)


def test_autellix_follows_pins_only_for_long_prompts_of_programs():
    router = make_router("autellix", short_prompt_tokens=100)
    assert router.follows_pin(RouteRequest("p", 101))
    assert not router.follows_pin(RouteRequest("p", 100))
    assert not router.follows_pin(RouteRequest(None, 10**6))


def test_program_router_keeps_pins_drops_dead_ones_and_tells_its_hooks():
    told, reasons = [], []
    router = ProgramRouter(make_router("autellix", short_prompt_tokens=100),
                           on_pin=lambda p, e: told.append((p, e)), on_decision=reasons.append)
    assert router.route("p", 500, engines(3, 0)).ranked[0] == "e1" and router.pin_of("p") == "e1"
    assert router.route("p", 500, engines(0, 9)).ranked[0] == "e1"  # sticks to its KV
    assert router.route("p", 50, engines(0, 9)).ranked[0] == "e0"  # short: least used, pin kept
    assert router.route("p", 500, [EngineLoad("e0")]).ranked[0] == "e0"  # e1 gone: re-pinned
    assert router.remove_engine("e0") == 1 and router.pin_of("p") is None
    assert told == [("p", "e1"), ("p", None), ("p", "e0"), ("p", None)]
    assert reasons == ["new-pin", "pinned", "short", "new-pin"]
    assert router.stats() == {"num_pins": 0, "decisions": {"new-pin": 2, "pinned": 1, "short": 1}}


def test_program_router_bounds_its_pins_and_never_pins_calls_without_a_program():
    router = ProgramRouter(make_router("autellix", short_prompt_tokens=0), max_pins=10)
    for i in range(100):
        router.route(f"p{i}", 50, engines(0, 0))
    router.route(None, 50, engines(0, 0))
    assert router.stats()["num_pins"] == 10
    assert router.pin_of("p99") is not None and router.pin_of("p0") is None
    with pytest.raises(ValueError, match="max_pins"):
        ProgramRouter(make_router("autellix"), max_pins=0)
