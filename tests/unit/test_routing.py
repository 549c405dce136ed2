import pytest

from autellix_ray.core import ROUTERS, EngineLoad, ProgramRouter, RouteRequest, make_router
from autellix_ray.core.routing import PrefixIndex, text_block_keys

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
    with pytest.raises(ValueError, match=r"valid: \['autellix', 'kv_cost', 'least_used', 'round_robin'\]"):
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


# -- KV-aware cost routing (kv_cost) and its prefix index -------------------------------------------

def kv_engines(*loads, capacity=10_000):
    """Engines reporting token loads: (kv tokens in use, waiting tokens) each."""
    return [EngineLoad(f"e{i}", kv_usage=used / capacity, kv_capacity_tokens=capacity, waiting_tokens=w)
            for i, (used, w) in enumerate(loads)]


def blocks(program, n):
    """Chained keys of a program's context of n blocks (a shared prefix per program)."""
    return tuple((program, i) for i in range(n))


def test_prefix_index_finds_the_longest_held_prefix_and_evicts_tails_first():
    index = PrefixIndex(max_blocks=10)
    index.insert("e0", blocks("a", 6))
    assert index.matched_blocks("e0", blocks("a", 8)) == 6  # the context grew by two blocks
    assert index.matched_blocks("e0", blocks("a", 3)) == 3
    assert index.matched_blocks("e0", blocks("b", 3)) == 0 and index.matched_blocks("e9", blocks("a", 3)) == 0
    index.insert("e0", blocks("b", 7))  # 13 keys > 10: a's last blocks go first, its prefix stays
    assert index.num_blocks("e0") == 10
    assert index.matched_blocks("e0", blocks("a", 6)) == 3 and index.matched_blocks("e0", blocks("b", 7)) == 7
    index.insert("e0", blocks("b", 2), capacity_blocks=4)  # the engine's own KV size bounds it further
    assert index.num_blocks("e0") == 4 and index.matched_blocks("e0", blocks("b", 7)) == 4
    index.forget_engine("e0")
    assert index.matched_blocks("e0", blocks("b", 2)) == 0
    with pytest.raises(ValueError, match="max_blocks"):
        PrefixIndex(0)


def test_text_block_keys_are_chained_stable_and_prefix_preserving():
    a = "system prompt " * 20
    keys = text_block_keys(a, block_chars=16)
    assert len(keys) == len(a) // 16 and len(set(keys)) == len(keys)
    assert text_block_keys(a + "user turn two " * 5, block_chars=16)[: len(keys)] == keys
    assert text_block_keys("X" + a[1:], block_chars=16)[-1] != keys[-1]  # a different first block changes all
    assert text_block_keys("short") == ()
    assert keys == text_block_keys(a, block_chars=16)  # no per-process salt (the router actor compares them)


def test_kv_cost_goes_where_the_context_is_cached_until_another_engine_is_cheaper():
    router = make_router("kv_cost")
    context = blocks("p", 200)  # 3,200 tokens at 16 per block
    first = router.route(RouteRequest("p", 3200, None, context), kv_engines((0, 0), (0, 0)))
    home = first.ranked[0]
    assert first.pin == home and first.reason == "new-pin"
    other = "e1" if home == "e0" else "e0"
    loads = {home: (2000, 0), other: (0, 0)}  # home is busier by 2,000 tokens, less than the 3,200 it holds
    pool = kv_engines(*(loads[f"e{i}"] for i in range(2)))
    stay = router.route(RouteRequest("p", 3300, home, blocks("p", 206)), pool)
    assert stay.ranked[0] == home and stay.pin is None and stay.reason == "pinned"
    loads = {home: (2000, 3000), other: (0, 0)}  # now busier by 5,000: moving (re-prefill 3,300) is cheaper
    pool = kv_engines(*(loads[f"e{i}"] for i in range(2)))
    move = router.route(RouteRequest("p", 3400, home, blocks("p", 212)), pool)
    assert move.ranked[0] == other and move.pin == other and move.reason == "moved"
    back = router.route(RouteRequest("p", 3500, other, blocks("p", 218)), kv_engines((0, 0), (0, 0)))
    assert back.ranked[0] == other  # the newest copy of the context is there now


def test_kv_cost_without_cache_hits_is_least_loaded_in_tokens_and_rotates_ties():
    router = make_router("kv_cost")
    pool = kv_engines((5000, 0), (100, 50), (100, 0))
    assert router.route(RouteRequest(None, 500), pool).ranked == ("e2", "e1", "e0")
    firsts = {router.route(RouteRequest(None, 500), kv_engines((0, 0), (0, 0), (0, 0))).ranked[0] for _ in range(3)}
    assert firsts == {"e0", "e1", "e2"}


def test_kv_cost_with_call_counts_only_weighs_calls_by_the_mean_prompt():
    router = make_router("kv_cost")
    ctx = blocks("p", 100)  # 1,600 tokens
    home = router.route(RouteRequest("p", 1600, None, ctx), engines(0, 0)).ranked[0]
    other = "e1" if home == "e0" else "e0"
    counts = lambda h, o: engines(*(h if f"e{i}" == home else o for i in range(2)))
    # mean routed prompt 1,600 tokens: one more call in flight on home weighs as much as the context
    assert router.route(RouteRequest("p", 1600, home, ctx), counts(0, 0)).ranked[0] == home
    assert router.route(RouteRequest("p", 1600, home, ctx), counts(3, 0)).ranked[0] == other


def test_kv_cost_prefill_weight_zero_is_least_loaded_and_bad_weights_fail():
    router = make_router("kv_cost", prefill_weight=0)
    router.route(RouteRequest("p", 1600, None, blocks("p", 100)), kv_engines((0, 0), (10, 0)))
    assert router.route(RouteRequest("p", 1600, "e0", blocks("p", 100)), kv_engines((10, 0), (0, 0))).ranked[0] == "e1"
    for bad in (-1, "1", True, float("nan")):
        with pytest.raises(ValueError, match="prefill_weight"):
            make_router("kv_cost", prefill_weight=bad)


def test_program_router_passes_prefix_blocks_and_forgets_removed_engines():
    router = ProgramRouter(make_router("kv_cost"))
    ctx = blocks("p", 50)
    home = router.route("p", 800, kv_engines((0, 0), (0, 0)), prefix_blocks=ctx).ranked[0]
    assert router.pin_of("p") == home and router.policy.index.num_blocks(home) == 50
    assert router.route("p", 800, kv_engines((300, 0), (300, 0)), prefix_blocks=ctx).reason == "pinned"
    assert router.remove_engine(home) == 1 and router.policy.index.num_blocks(home) == 0
