"""Gittins-index queue order: the index, the learned ranking, and the policy that uses it."""

import math

import pytest

from autellix_ray.core import Call, make_scheduling_policy
from autellix_ray.core.scheduling.gittins import GittinsRanker, gittins_indices, rank_levels, survival_curve

BOUNDS = (0.0, 1.0, 2.0, 4.0)


def test_equal_sizes_favour_the_programs_closest_to_done():
    # every program needs 3 s: one that has 2 s is 1 s from done, a new one 3 s
    indices = gittins_indices(BOUNDS, [3.0] * 10)
    assert indices[2] > indices[1] > indices[0] > 0
    assert indices[3] == 0  # nobody gets past 4 s
    assert rank_levels(indices) == (2, 1, 0, 3)


def test_heavy_tail_keeps_least_attained_service_first():
    # most programs are tiny, a few are huge: having run long means running much longer
    sizes = [0.5] * 90 + [100.0] * 10
    assert rank_levels(gittins_indices(BOUNDS, sizes))[0] == 0


def test_index_matches_its_definition():
    sizes = [0.5, 1.5, 3.0, 10.0]
    # Q2 (a = 1) with horizon lo_3 = 2: of the three alive (> 1), one is done by 2
    rate = (1 / 3) / (((1.5 - 1) + (2 - 1) + (2 - 1)) / 3)
    assert gittins_indices(BOUNDS, sizes)[1] >= rate - 1e-12
    assert math.isclose(gittins_indices(BOUNDS, [3.0])[0], 1 / 3)


def _finish_programs(ranker: GittinsRanker, sizes: list[float], t0: float = 0.0) -> float:
    services = {}
    for i, size in enumerate(sizes):
        ranker.program_went_idle(f"p{i}", t0)
        services[f"p{i}"] = (t0, size)
    ranker.collect(t0 + 1e6, services.get)
    return t0 + 1e6


def test_ranker_is_las_until_enough_programs_finished():
    ranker = GittinsRanker(BOUNDS, min_programs=5, refresh_every=5)
    assert ranker.slots == (0, 1, 2, 3) and ranker.version == 0
    _finish_programs(ranker, [3.0] * 4)
    assert ranker.slots == (0, 1, 2, 3)  # 4 < min_programs
    ranker2 = GittinsRanker(BOUNDS, min_programs=5, refresh_every=5)
    _finish_programs(ranker2, [3.0] * 5)
    assert ranker2.slots == (2, 1, 0, 3) and ranker2.version == 1


def test_a_program_is_done_only_after_the_observed_gaps():
    ranker = GittinsRanker(BOUNDS, min_idle_s=1.0, idle_factor=2.0, min_programs=1, refresh_every=1)
    for gap in (5.0, 10.0):
        ranker.program_called_again(idle_since_s=0.0, now_s=gap)
    assert ranker.done_after_s() == 20.0  # 2 x the largest gap seen (the p99 of two)
    ranker.program_went_idle("p", 100.0)
    state = {"p": (100.0, 3.0)}
    assert not ranker.collect(119.0, state.get) and ranker.num_programs == 0
    ranker.collect(121.0, state.get)
    assert ranker.num_programs == 1


def test_a_program_that_called_again_is_not_counted():
    ranker = GittinsRanker(BOUNDS, min_programs=1, refresh_every=1)
    ranker.program_went_idle("p", 0.0)
    ranker.collect(100.0, {"p": (50.0, 3.0)}.get)  # went idle again later: this entry is stale
    ranker.collect(100.0, {}.get)  # gone
    assert ranker.num_programs == 0


def _run_program(policy, pid: str, size_s: float, now: float) -> float:
    """One call of ``size_s`` service, finished at once; returns the time after it."""
    cid = f"{pid}-c{now}"
    policy.add(Call(cid, pid), now)
    policy.on_step({cid: size_s}, now + 0.01)
    policy.finish(cid, now + 0.01)
    return now + 0.02


def test_policy_learns_to_serve_the_nearly_done_first():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None, queue_order="gittins",
                                    reevaluate_every_steps=1)
    policy._ranker.min_programs = policy._ranker.refresh_every = 20
    now = 0.0
    for i in range(20):  # twenty programs of 3 s each, finished long ago
        now = _run_program(policy, f"done{i}", 3.0, now)
    old_first = policy.order
    policy.add(Call("old", "veteran", program_service_s=2.5), now)  # Q3: 0.5 s from done
    policy.add(Call("new", "newcomer"), now)  # Q1
    assert list(old_first()) == ["new", "old"]  # LAS until it has learned
    version = policy.ranks_version
    policy.on_step({}, now + 10.0)  # the sweep counts the finished programs
    assert policy.ranks_version == version + 1
    assert list(policy.order()) == ["old", "new"]
    assert policy.key("old") < policy.key("new") and policy.outranks("old", "new")


def test_promoted_calls_run_first_whatever_the_queue_order():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=1.0, beta_vs_median=None, queue_order="gittins",
                                    reevaluate_every_steps=1)
    policy._ranker.slots = policy._slot_of_level = (3, 2, 1, 0)  # Q4 first, Q1 last
    policy.add(Call("starved", "a", program_service_s=1.5), 0.0)  # Q2: slot 2
    policy.add(Call("top", "b", program_service_s=5.0), 0.0)  # Q4: slot 0
    assert list(policy.order()) == ["top", "starved"]
    assert policy.on_step({"top": 0.1}, 5.0) == ["starved"]
    assert list(policy.order()) == ["starved", "top"]


@pytest.mark.parametrize("name", ["mlfq", "fcfs", "srpt"])
def test_gittins_needs_program_level_service(name):
    with pytest.raises(ValueError, match="queue_order|no queue parameters"):
        make_scheduling_policy(name, queue_order="gittins")


def test_bad_queue_order_is_rejected():
    with pytest.raises(ValueError, match="queue_order"):
        make_scheduling_policy("plas", queue_order="sjf")


def test_anti_starvation_counts_at_least_a_typical_program_once_learned():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=2.0, queue_order="gittins",
                                    reevaluate_every_steps=1)
    policy._ranker.min_programs = policy._ranker.refresh_every = 20
    now = 0.0
    for i in range(20):
        now = _run_program(policy, f"done{i}", 3.0, now)
    policy.on_step({}, now + 10.0)  # learned: median size 3 s, new programs (Q1) are not first
    assert policy.ranks_version == 1 and policy._ranker.typical_size_s() == pytest.approx(3.0)
    now += 10.0
    policy.add(Call("new", "newcomer"), now)
    assert policy.on_step({}, now + 5.0) == []  # waited 5 s < 2 x 3 s: a new program is not starving
    assert policy.on_step({}, now + 6.5) == ["new"]


def test_survival_curve_counts_unfinished_programs_as_at_least_their_service():
    times, survival = survival_curve([1.0, 2.0], [])
    assert times == [1.0, 2.0] and survival == [0.5, 0.0]
    # one more program, still running at 1.5 s: it survives 1 s, then half the rest end at 2 s
    times, survival = survival_curve([1.0, 2.0], [1.5])
    assert survival[0] == pytest.approx(2 / 3) and times[-1] == 2.0 and survival[-1] == 0.0


def test_unfinished_programs_make_the_tail_heavier():
    done = [0.5] * 20  # the short programs finished first ...
    running = [10.0] * 20  # ... the long ones are still running
    assert rank_levels(gittins_indices(BOUNDS, done))[0] == 0
    with_censored = gittins_indices(BOUNDS, done, running)
    assert with_censored[3] > 0  # someone gets past 4 s
    assert gittins_indices(BOUNDS, done, running)[0] < gittins_indices(BOUNDS, done)[0]
