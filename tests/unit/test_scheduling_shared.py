"""The shared suite: every registered scheduling policy must pass it."""

import pytest

from autellix_ray.core import SCHEDULING_POLICIES, Call, ProgramTable, make_scheduling_policy

ALL = sorted(SCHEDULING_POLICIES)


def call(cid, pid, remaining=10.0, **kw):
    return Call(call_id=cid, program_id=pid, remaining_s=remaining, **kw)


@pytest.mark.parametrize("name", ALL)
def test_every_policy_is_registered_and_named(name):
    policy = make_scheduling_policy(name)
    assert policy.name == name
    assert make_scheduling_policy(name.upper()).name == name


@pytest.mark.parametrize("name", ALL)
def test_order_holds_each_active_call_once_and_matches_key(name):
    policy = make_scheduling_policy(name)
    for i in range(12):
        policy.add(call(f"c{i}", f"p{i % 4}", remaining=float(12 - i)), now_s=float(i))
    policy.on_step({"c0": 3.0, "c5": 0.7}, now_s=13.0, step_wall_s=1.0)
    order = list(policy.order())
    assert sorted(order) == sorted(f"c{i}" for i in range(12))
    assert order == sorted(order, key=policy.key)
    assert len(policy) == 12


@pytest.mark.parametrize("name", ALL)
def test_finish_removes_call_and_updates_program_row(name):
    table = ProgramTable()
    policy = make_scheduling_policy(name, table=table)
    policy.add(call("a", "p"), now_s=0.0)
    policy.on_step({"a": 0.25}, now_s=1.0, step_wall_s=0.25)
    policy.on_step({"a": 0.25}, now_s=2.0, step_wall_s=0.25)
    done = policy.finish("a", now_s=2.0)
    assert "a" not in policy and list(policy.order()) == []
    assert done.service_s == pytest.approx(0.5)
    assert done.wait_s == pytest.approx(1.5)  # 2 s in the system, 0.5 s scheduled
    row = table.get("p")
    assert row.service_s == pytest.approx(0.5) and row.wait_s == pytest.approx(1.5)
    assert row.idle and row.last_completion_s == 2.0


@pytest.mark.parametrize("name", ALL)
def test_duplicate_call_id_rejected_and_unknown_steps_ignored(name):
    policy = make_scheduling_policy(name)
    policy.add(call("a", "p"), now_s=0.0)
    with pytest.raises(ValueError, match="already active"):
        policy.add(call("a", "p"), now_s=0.0)
    policy.on_step({"gone": 1.0}, now_s=1.0)  # a finished call's late step report
    assert list(policy.order()) == ["a"]


@pytest.mark.parametrize("name", ALL)
def test_policy_uses_a_shared_table_when_given(name):
    table = ProgramTable()
    p1, p2 = make_scheduling_policy(name, table=table), make_scheduling_policy(name, table=table)
    p1.add(call("a", "prog"), 0.0)
    p2.add(call("b", "prog"), 0.0)
    assert table.get("prog").num_active_calls == 2


@pytest.mark.parametrize("name", ALL)
def test_program_ids_never_mix(name):
    policy = make_scheduling_policy(name)
    policy.add(call("a", "p1"), 0.0)
    policy.add(call("b", "p2"), 0.0)
    policy.on_step({"a": 4.0}, 4.0, 4.0)
    policy.finish("a", 4.0)
    assert policy.table.get("p2").service_s == 0.0
    assert policy.table.get("p1").service_s == 4.0


def test_unknown_policy_names_valid_choices():
    with pytest.raises(ValueError, match=r"valid: \['atlas', 'fcfs', 'mlfq', 'plas', 'srpt'\]"):
        make_scheduling_policy("lifo")


@pytest.mark.parametrize(
    "params, message",
    [
        ({"boundaries_s": (0.0, 1.0), "quanta_s": (1.0, -1.0)}, "quanta_s must all be > 0"),
        ({"boundaries_s": (0.0, 2.0, 1.0)}, "strictly increasing"),
        ({"boundaries_s": (0.5, 1.0)}, "must start at 0.0"),
        ({"boundaries_s": ()}, "at least one queue"),
        ({"boundaries_s": (0.0, 1.0), "quanta_s": (1.0,)}, "one quantum per queue"),
        ({"beta": 0}, "beta must be"),
        ({"beta": -2.0}, "beta must be"),
        ({"reevaluate_every_steps": 0}, "reevaluate_every_steps"),
        ({"gamma": 1.0}, r"unknown scheduling parameter\(s\) \['gamma'\]; valid:"),
    ],
)
@pytest.mark.parametrize("name", ["mlfq", "plas", "atlas"])
def test_invalid_config_raises_value_error(name, params, message):
    with pytest.raises(ValueError, match=message):
        make_scheduling_policy(name, **params)


@pytest.mark.parametrize("name", ["fcfs", "srpt"])
def test_single_queue_policies_refuse_queue_parameters(name):
    with pytest.raises(ValueError, match="takes no queue parameters"):
        make_scheduling_policy(name, beta=2.0)


def test_srpt_requires_remaining_work():
    policy = make_scheduling_policy("srpt")
    with pytest.raises(ValueError, match="remaining_s"):
        policy.add(Call("a", "p"), 0.0)
