"""Behaviour of each policy: what distinguishes FCFS, MLFQ, PLAS, ATLAS and SRPT."""

import pytest

from autellix_ray.core import Call, make_scheduling_policy

BOUNDS = (0.0, 1.0, 2.0, 4.0)


def finish_with_service(policy, cid, pid, service, now, **kw):
    policy.add(Call(cid, pid, **kw), now)
    policy.on_step({cid: service}, now + service, service)
    return policy.finish(cid, now + service)


def test_fcfs_runs_in_arrival_order_whatever_the_service():
    policy = make_scheduling_policy("fcfs")
    finish_with_service(policy, "old", "heavy", 100.0, 0.0)
    policy.add(Call("h", "heavy"), 101.0)
    policy.add(Call("l", "light"), 102.0)
    assert list(policy.order()) == ["h", "l"]


def test_mlfq_puts_every_new_call_in_q1():
    policy = make_scheduling_policy("mlfq", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "old", "heavy", 100.0, 0.0)
    policy.add(Call("h", "heavy"), 101.0)
    assert policy.level("h") == 0


def test_plas_new_call_enters_the_queue_of_its_programs_service():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "old", "heavy", 2.5, 0.0)
    policy.add(Call("h", "heavy"), 10.0)
    policy.add(Call("l", "light"), 11.0)
    assert policy.level("h") == 2 and policy.level("l") == 0
    assert list(policy.order()) == ["l", "h"]  # the light program overtakes


def test_demotion_when_quantum_is_used_up():
    policy = make_scheduling_policy("mlfq", boundaries_s=BOUNDS, beta=None)
    policy.add(Call("a", "p"), 0.0)
    policy.add(Call("b", "q"), 0.0)
    policy.on_step({"a": 0.6}, 0.6)
    assert policy.level("a") == 0
    policy.on_step({"a": 0.6}, 1.2)  # 1.2 s > Q1's 1 s quantum
    assert policy.level("a") == 1 and policy.state("a").num_demotions == 1
    assert list(policy.order()) == ["b", "a"]
    policy.on_step({"a": 5.0}, 6.2)  # one big step crosses two boundaries
    assert policy.level("a") == 3 and policy.num_demotions == 3


def test_explicit_quanta_override_level_widths():
    policy = make_scheduling_policy("mlfq", boundaries_s=BOUNDS, quanta_s=(0.1, 0.1, 0.1, 0.1), beta=None)
    policy.add(Call("a", "p"), 0.0)
    policy.on_step({"a": 0.15}, 0.15)
    assert policy.level("a") == 1


def test_plas_call_entering_mid_range_gets_the_rest_of_the_range():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "old", "p", 1.5, 0.0)
    policy.add(Call("a", "p"), 2.0)
    assert policy.level("a") == 1
    policy.on_step({"a": 0.4}, 2.4)
    assert policy.level("a") == 1
    policy.on_step({"a": 0.2}, 2.6)  # 1.5 + 0.6 crosses 2.0
    assert policy.level("a") == 2


def test_plas_anti_starvation_promotes_a_starved_call_to_the_head_of_q1():
    # the paper's absolute rule (the relative bar's own tests follow)
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=2.0, beta_vs_median=None, reevaluate_every_steps=1)
    finish_with_service(policy, "old", "starved", 2.0, 0.0)  # program service 2 -> Q3
    policy.add(Call("s", "starved"), 2.0)
    policy.add(Call("x", "other"), 2.0)
    policy.add(Call("y", "late"), 3.0)
    assert policy.level("s") == 2
    now = 2.0
    while policy.level("s") != 0:
        now += 0.25
        policy.on_step({"x": 0.25}, now, 0.25)
    # W / T = (0 + wait) / (2 + 0) >= 2  ->  promoted after about 4 s of waiting
    assert now == pytest.approx(6.0, abs=0.3)
    assert policy.state("s").num_promotions == 1
    assert policy.table.get("starved").service_s == 2.0  # program totals stay
    assert list(policy.order())[0] == "s"  # FCFS by arrival: ahead of y, which came later
    # served a Q1 quantum, it drops back, and returns once W / T reaches beta again
    policy.on_step({"s": 1.0}, now + 1.0, 1.0)
    assert policy.level("s") == 1
    assert policy.promote_starved(now + 1.0) == []  # W = 4, T = 3
    assert policy.promote_starved(now + 3.0) == ["s"]  # W = 6, T = 3


def test_anti_starvation_disabled_with_beta_none():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "old", "starved", 2.0, 0.0)
    policy.add(Call("s", "starved"), 2.0)
    policy.add(Call("x", "other"), 2.0)
    for k in range(1, 400):
        policy.on_step({"x": 0.01}, 2.0 + k * 0.25, 0.25)
    assert policy.level("s") == 2 and policy.promote_starved(1000.0) == []


def _overloaded(beta_vs_median):
    """Five programs of 2 s service each waiting in Q3 (all past beta = 2 after 10 s), and one
    that has waited four times as long relative to its service."""
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=2.0, beta_vs_median=beta_vs_median,
                                    reevaluate_every_steps=1, queue_order="attained")
    for k in range(5):
        finish_with_service(policy, f"old{k}", f"p{k}", 2.0, 0.0)
        policy.add(Call(f"c{k}", f"p{k}"), 2.0)
    policy.table.call_arrived("outlier", "t", (), 0.0)
    policy.table.call_finished("outlier", "t", 2.0, 60.0, 0.0, 2.0)  # it waited 60 s before
    policy.add(Call("o", "outlier"), 2.0)
    return policy


def test_absolute_anti_starvation_promotes_everyone_in_overload():
    policy = _overloaded(None)
    assert sorted(policy.promote_starved(12.0)) == ["c0", "c1", "c2", "c3", "c4", "o"]


def test_anti_starvation_relative_to_the_median_promotes_only_the_outlier():
    policy = _overloaded(2.0)
    # W / T: 5 for every p_k (10 s / 2 s), 35 for the outlier; the bar is 2 x the median 5
    assert policy.promote_starved(12.0) == ["o"]
    assert [policy.level(f"c{k}") for k in range(5)] == [2] * 5
    # below capacity (the others have not waited yet) the outlier is promoted as by the absolute rule
    assert _overloaded(2.0).promote_starved(2.5) == ["o"] == _overloaded(None).promote_starved(2.5)


def test_a_lone_starved_call_is_promoted_under_the_relative_rule():
    """The median is over every active call, the running ones too: a single starved call is
    an outlier against calls that are being served, not its own median."""
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=2.0, beta_vs_median=4.0,
                                    reevaluate_every_steps=1, queue_order="attained")
    finish_with_service(policy, "old", "starved", 2.0, 0.0)
    policy.add(Call("s", "starved"), 2.0)
    for k in range(3):
        policy.add(Call(f"r{k}", f"runner{k}"), 2.0)
    now = 2.0
    while policy.level("s") != 0 and now < 20.0:
        now += 0.25
        policy.on_step({f"r{k}": 0.25 for k in range(3)}, now, 0.25)
    assert now == pytest.approx(6.0, abs=0.3)  # as with the absolute rule (W / T = 2 after 4 s)


def test_beta_vs_median_is_validated():
    with pytest.raises(ValueError, match="beta_vs_median must be"):
        make_scheduling_policy("plas", beta_vs_median=0)


def test_mlfq_anti_starvation_is_call_level():
    # The program waited a lot before, but MLFQ only looks at the call itself.
    policy = make_scheduling_policy("mlfq", boundaries_s=BOUNDS, beta=1.0, beta_vs_median=None, reevaluate_every_steps=1)
    policy.table.call_arrived("p", "t", (), 0.0)
    policy.table.call_finished("p", "t", 0.1, 50.0, 0.0, 50.0)
    policy.add(Call("a", "p"), 50.0)
    policy.on_step({"a": 1.5}, 51.5, 1.5)  # demoted to Q2, call W = 0
    assert policy.level("a") == 1
    policy.on_step({}, 52.0, 0.5)
    assert policy.level("a") == 1  # W=0.5 < T=1.5
    policy.on_step({}, 53.1, 1.1)
    assert policy.level("a") == 0  # W=1.6 >= T=1.5


def test_atlas_scalar_gives_concurrent_threads_one_priority():
    policy = make_scheduling_policy("atlas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "root", "tree", 1.5, 0.0, thread_id="root")
    for t in ("a", "b", "c"):
        policy.add(Call(t, "tree", thread_id=t), 2.0)
    prios = {policy.state(t).priority_s for t in ("a", "b", "c")}
    assert prios == {1.5}
    # siblings finish with different service: the scalar keeps the longest path
    for t, s in (("a", 0.5), ("b", 2.0), ("c", 1.0)):
        policy.on_step({t: s}, 2.0 + s, s)
        policy.finish(t, 2.0 + s)
    assert policy.table.get("tree").critical_path_s == pytest.approx(3.5)
    assert policy.table.get("tree").service_s == pytest.approx(5.0)


def test_atlas_exact_mode_uses_the_named_parents():
    policy = make_scheduling_policy("atlas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "r", "tree", 0.5, 0.0, thread_id="r")
    finish_with_service(policy, "long", "tree", 3.0, 1.0, thread_id="long", parent_thread_ids=("r",))
    finish_with_service(policy, "short", "tree", 0.2, 1.0, thread_id="short", parent_thread_ids=("r",))
    policy.add(Call("after_short", "tree", thread_id="x", parent_thread_ids=("short",)), 5.0)
    policy.add(Call("scalar", "tree", thread_id="y"), 5.0)
    assert policy.state("after_short").priority_s == pytest.approx(0.7)
    assert policy.state("scalar").priority_s == pytest.approx(3.5)


def test_plas_sums_service_while_atlas_takes_the_critical_path():
    plas = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    atlas = make_scheduling_policy("atlas", boundaries_s=BOUNDS, beta=None)
    for policy in (plas, atlas):
        for t in ("a", "b", "c"):
            policy.add(Call(t, "map", thread_id=t), 0.0)
        policy.on_step({"a": 1.0, "b": 1.0, "c": 1.0}, 1.0, 1.0)
        for t in ("a", "b", "c"):
            policy.finish(t, 1.0)
        policy.add(Call("reduce", "map"), 1.0)
    assert plas.state("reduce").priority_s == 3.0
    assert atlas.state("reduce").priority_s == 1.0


def test_remote_program_state_raises_priority():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    policy.add(Call("a", "p", program_service_s=3.0, program_wait_s=1.0), 0.0)
    assert policy.level("a") == 2
    assert policy.table.get("p").wait_s == 1.0


def test_srpt_orders_by_remaining_work_and_updates_with_service():
    policy = make_scheduling_policy("srpt")
    policy.add(Call("big", "p1", remaining_s=5.0), 0.0)
    policy.add(Call("small", "p2", remaining_s=2.0), 0.0)
    assert list(policy.order()) == ["small", "big"]
    policy.on_step({"big": 4.0}, 4.0)
    assert list(policy.order()) == ["big", "small"]  # 1 s left < 2 s left


def test_outranks_means_a_strictly_better_queue():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=None)
    finish_with_service(policy, "old", "heavy", 2.5, 0.0)
    policy.add(Call("h", "heavy"), 10.0)
    policy.add(Call("l1", "light"), 11.0)
    policy.add(Call("l2", "light2"), 12.0)
    assert policy.outranks("l1", "h") and not policy.outranks("h", "l1")
    assert not policy.outranks("l2", "l1") and not policy.outranks("l1", "l2")  # same queue


def test_fcfs_never_outranks_and_srpt_outranks_by_remaining_work():
    fcfs = make_scheduling_policy("fcfs")
    fcfs.add(Call("a", "p"), 0.0)
    fcfs.add(Call("b", "q"), 1.0)
    assert not fcfs.outranks("a", "b") and not fcfs.outranks("b", "a")
    srpt = make_scheduling_policy("srpt")
    srpt.add(Call("big", "p", remaining_s=5.0), 0.0)
    srpt.add(Call("small", "q", remaining_s=1.0), 0.0)
    assert srpt.outranks("small", "big") and not srpt.outranks("big", "small")


@pytest.mark.parametrize("name", ["plas", "atlas"])
def test_program_order_inside_a_queue_keeps_older_programs_first(name):
    """Calls of one queue run by their program's first arrival, not by call arrival: the
    program that started first keeps its place even when its next call arrives last."""
    policy = make_scheduling_policy(name, boundaries_s=BOUNDS, beta=None)
    assert policy.order_within_queue == "program"  # the default for PLAS and ATLAS
    finish_with_service(policy, "a0", "old", 0.1, 0.0)  # "old" starts first, stays in Q1
    policy.add(Call("b0", "young"), 1.0)
    policy.add(Call("a1", "old"), 2.0)
    policy.add(Call("b1", "young2"), 3.0)
    assert [policy.level(c) for c in ("a1", "b0", "b1")] == [0, 0, 0]
    assert list(policy.order()) == ["a1", "b0", "b1"]
    assert policy.key("a1") < policy.key("b0") < policy.key("b1")


@pytest.mark.parametrize("name", ["plas", "atlas"])
def test_call_order_inside_a_queue_is_the_papers(name):
    policy = make_scheduling_policy(name, boundaries_s=BOUNDS, beta=None, order_within_queue="call")
    finish_with_service(policy, "a0", "old", 0.1, 0.0)
    policy.add(Call("b0", "young"), 1.0)
    policy.add(Call("a1", "old"), 2.0)
    assert list(policy.order()) == ["b0", "a1"]


def test_program_order_survives_demotion_and_promotion():
    policy = make_scheduling_policy("plas", boundaries_s=BOUNDS, beta=1.0, beta_vs_median=None, reevaluate_every_steps=1)
    policy.add(Call("a", "old"), 0.0)
    policy.add(Call("b", "young"), 1.0)
    policy.on_step({"a": 1.5, "b": 1.5}, now_s=2.5, step_wall_s=1.5)  # both demoted to Q2
    assert policy.level("a") == policy.level("b") == 1
    assert list(policy.order()) == ["a", "b"]
    promoted = policy.promote_starved(now_s=100.0)  # both starved: back to Q1, same order
    assert sorted(promoted) == ["a", "b"] and list(policy.order()) == ["a", "b"]


def test_baselines_keep_call_order_and_bad_orders_are_rejected():
    assert make_scheduling_policy("mlfq").order_within_queue == "call"
    assert make_scheduling_policy("fcfs").order_within_queue == "call"
    with pytest.raises(ValueError, match="order_within_queue must be one of"):
        make_scheduling_policy("plas", order_within_queue="newest")
