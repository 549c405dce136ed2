"""The Serve tier and the multi-engine replay run one cluster tier: the same calls give the
same pins, engines and program state (service, critical path, wait) on both sides.

Serve side: the program-table actor's class and the router actor's class, as plain objects
(the router tells the table through a stand-in handle). Replay side: ``ClusterTier``, what
``replay()`` runs with several engines.
"""

import random

from autellix_ray.bench.replay.engine import ClusterTier
from autellix_ray.core import EngineLoad, ProgramRouter, ProgramService, make_router
from autellix_ray.serve.program_table import ProgramTableService
from autellix_ray.serve.router import RouterService
from tests.unit.test_serve_services import Remote

SHORT = 100


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Both:
    """One sequence of calls driven through both tiers, compared at every step."""

    def __init__(self):
        self.clock = Clock()
        self.table = ProgramTableService(clock=self.clock)
        self.router = RouterService(short_prompt_tokens=SHORT, table=Remote(self.table))
        policy = make_router("autellix", short_prompt_tokens=SHORT)
        self.tier = ClusterTier(policy, self.clock, share_state=True)

    def call(self, program_id, thread_id, parents, num_tokens, loads):
        """Route and begin one call on both sides; the engine and program state it gets."""
        engine = self.router.route(program_id, num_tokens, loads)[0]
        state = self.table.begin_calls([(program_id, thread_id, list(parents))])[0]
        engine_loads = [EngineLoad(e, num_running=n) for e, n in loads]
        replay_engine = self.tier.route(program_id, num_tokens, engine_loads)
        replay_state = self.tier.begin(program_id, thread_id, parents)
        assert (engine, state) == (replay_engine, replay_state)
        self.check_pins(program_id)
        return engine, state

    def finish(self, program_id, thread_id, service_s, wait_s, critical_path_start_s):
        report = {"program_id": program_id, "thread_id": thread_id, "service_s": service_s, "wait_s": wait_s,
                  "critical_path_start_s": critical_path_start_s}
        self.table.report_calls([dict(report)])
        self.tier.finished(dict(report))

    def remove_engine(self, engine_id):
        assert self.router.remove_engine(engine_id) == self.tier.router.remove_engine(engine_id)

    def check_pins(self, program_id):
        assert self.router.pin_of(program_id) == self.tier.router.pin_of(program_id)
        assert self.table.pending_pins == self.tier.table.pending_pins
        rows = self.table.table.find(program_id), self.tier.table.table.find(program_id)
        assert (rows[0] is None) == (rows[1] is None)
        if rows[0] is not None:
            assert rows[0].pinned_engines == rows[1].pinned_engines


def test_both_tiers_are_the_core_services():
    both = Both()
    assert isinstance(both.table, ProgramService) and isinstance(both.tier.table, ProgramService)
    assert isinstance(both.router.router, ProgramRouter) and isinstance(both.tier.router, ProgramRouter)


def test_a_join_across_engines_starts_at_its_longest_parent_on_both_tiers():
    both = Both()
    loads = [("e0", 0), ("e1", 0)]
    engine_a, _ = both.call("p", "a", (), 500, loads)  # pinned to e0
    both.call("p", "b", (), 50, [("e0", 5), ("e1", 0)])  # short: least used, e1
    both.clock.now = 1.0
    both.finish("p", "a", service_s=3.0, wait_s=0.5, critical_path_start_s=0.0)
    both.finish("p", "b", service_s=1.0, wait_s=0.25, critical_path_start_s=0.0)
    engine, state = both.call("p", "join", ("b",), 500, [("e0", 9), ("e1", 0)])
    assert engine == engine_a == "e0"  # the pin holds under load
    assert state == {"program_service_s": 4.0, "program_critical_path_s": 1.0, "program_wait_s": 0.75}
    _, state = both.call("p", "join2", ("a", "b"), 500, loads)
    assert state["program_critical_path_s"] == 3.0
    both.remove_engine("e0")
    engine, _ = both.call("p", "c", (), 500, [("e1", 3), ("e2", 0)])
    assert engine == "e2" and both.table.get_program("p")["pinned_engines"] == ["e2"]


def test_a_random_sequence_gives_the_same_pins_and_priorities_on_both_tiers():
    rng = random.Random(7)
    both = Both()
    active: list[tuple[str, str]] = []
    threads: dict[str, list[str]] = {}
    engines = ["e0", "e1", "e2", "e3"]
    for step in range(600):
        both.clock.now = step * 0.01
        if active and rng.random() < 0.45:
            program_id, thread_id = active.pop(rng.randrange(len(active)))
            service_s, wait_s, start_s = rng.uniform(0.01, 2.0), rng.uniform(0.0, 1.0), rng.uniform(0.0, 5.0)
            both.finish(program_id, thread_id, service_s, wait_s, start_s)
        elif rng.random() < 0.03:
            both.remove_engine(rng.choice(engines))
        else:
            program_id = f"p{rng.randrange(12)}"
            known = threads.setdefault(program_id, [])
            thread_id = rng.choice(known) if known and rng.random() < 0.5 else f"t{step}"
            parents = tuple(rng.sample(known, min(len(known), rng.randrange(3))))
            live = rng.sample(engines, rng.randrange(1, len(engines) + 1))
            loads = [(e, rng.randrange(8)) for e in live]
            both.call(program_id, thread_id, tuple(p for p in parents if p != thread_id),
                      rng.choice([10, 100, 101, 3000]), loads)
            known.append(thread_id)
            active.append((program_id, thread_id))
    assert both.router.stats() == both.tier.router.stats()
    assert both.router.stats()["decisions"].keys() == {"short", "pinned", "new-pin"}
    table_stats, replay_stats = both.table.stats(), both.tier.table.stats()
    assert table_stats == replay_stats and table_stats["num_programs"] == 12
