import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autellix_ray.core import ProgramTable, ProgramTableFull, UnknownProgram


def test_implicit_start_on_first_call_and_explicit_end():
    table = ProgramTable()
    row = table.call_arrived("p", "t0", (), now_s=1.0)
    assert "p" in table and row.num_active_calls == 1 and not row.explicit
    assert row.last_arrival_s == 1.0 and row.started_s == 1.0
    table.call_finished("p", "t0", service_s=2.0, wait_s=0.5, critical_path_start_s=0.0, now_s=3.5)
    row = table.get("p")
    assert (row.service_s, row.wait_s, row.critical_path_s) == (2.0, 0.5, 2.0)
    assert row.last_completion_s == 3.5 and row.idle
    assert table.end_program("p").program_id == "p"
    assert "p" not in table
    with pytest.raises(UnknownProgram):
        table.end_program("p")
    with pytest.raises(UnknownProgram):
        table.get("p")


def test_explicit_start_is_idempotent_and_keeps_state():
    table = ProgramTable()
    table.start_program("p", now_s=0.0)
    table.call_arrived("p", "t", (), now_s=1.0)
    again = table.start_program("p", now_s=2.0)
    assert again.explicit and again.num_calls == 1 and again.started_s == 0.0


def test_threads_record_dag_and_critical_path():
    table = ProgramTable()
    table.call_arrived("p", "root", (), 0.0)
    table.call_finished("p", "root", 1.0, 0.0, 0.0, 1.0)
    table.call_arrived("p", "a", ("root",), 1.0)
    table.call_arrived("p", "b", ("root",), 1.0)
    row = table.get("p")
    assert row.threads["a"].parent_thread_ids == ("root",)
    assert row.critical_path_start_s("a", ("root",)) == 1.0
    table.call_finished("p", "a", 3.0, 0.0, 1.0, 4.0)
    table.call_finished("p", "b", 1.0, 0.0, 1.0, 4.0)
    assert row.critical_path_s == 4.0  # root (1) + a (3)
    assert row.service_s == 5.0  # all calls
    assert row.critical_path_start_s("join", ("a", "b")) == 4.0
    assert row.critical_path_start_s("fresh", ()) is None  # DAG says nothing
    assert row.critical_path_start_s("join", ("gone",)) == 0.0  # unknown parents add nothing


def test_idle_timeout_gc_spares_active_and_recent_programs():
    table = ProgramTable(idle_timeout_s=10.0)
    table.call_arrived("old_idle", "t", (), 0.0)
    table.call_finished("old_idle", "t", 1.0, 0.0, 0.0, 1.0)
    table.call_arrived("old_busy", "t", (), 0.5)  # still in flight
    table.call_arrived("recent", "t", (), 8.0)
    table.call_finished("recent", "t", 1.0, 0.0, 0.0, 9.0)
    assert table.collect_idle(now_s=15.0) == ["old_idle"]
    assert "old_busy" in table and "recent" in table
    assert table.collect_idle(now_s=30.0) == ["recent"]
    assert table.num_collected == 2


def test_row_bound_evicts_oldest_idle_first_and_refuses_when_all_busy():
    table = ProgramTable(max_programs=3)
    for i, pid in enumerate(["a", "b", "c"]):
        table.call_arrived(pid, "t", (), float(i))
    table.call_finished("b", "t", 1.0, 0.0, 0.0, 3.0)
    table.call_finished("a", "t", 1.0, 0.0, 0.0, 4.0)  # a is idle, but more recently than b
    table.call_arrived("d", "t", (), 5.0)
    assert sorted(r.program_id for r in table.rows()) == ["a", "c", "d"]
    table.call_arrived("e", "t", (), 6.0)  # evicts a, the only idle row left
    assert "a" not in table and len(table) == 3 and table.num_evicted == 2
    with pytest.raises(ProgramTableFull):
        table.call_arrived("f", "t", (), 7.0)


def test_eviction_victim_names_the_row_an_insert_would_evict():
    table = ProgramTable(max_programs=2)
    table.call_arrived("a", "t", (), 0.0)
    assert table.eviction_victim("b") is None  # room left
    table.call_arrived("b", "t", (), 1.0)
    assert table.eviction_victim("c") is None  # full, but every row busy
    table.call_finished("b", "t", 1.0, 0.0, 0.0, 2.0)
    assert table.eviction_victim("c") == "b" and table.eviction_victim("a") is None  # a exists


def test_load_restores_rows_in_last_activity_order_into_an_empty_table():
    source = ProgramTable()
    for i, pid in enumerate(["x", "y", "z"]):
        source.call_arrived(pid, "t", (), float(3 - i))
    table = ProgramTable()
    table.load(source.rows(), num_evicted=4, num_collected=5)
    assert [r.program_id for r in table.rows()] == ["z", "y", "x"]
    assert (table.num_evicted, table.num_collected) == (4, 5)
    with pytest.raises(ValueError, match="empty"):
        table.load(source.rows())


def test_memory_stays_bounded_under_many_programs():
    table = ProgramTable(max_programs=1000, idle_timeout_s=5.0)
    for i in range(50_000):
        pid = f"p{i}"
        table.call_arrived(pid, "t", (), float(i) * 0.001)
        table.call_finished(pid, "t", 0.01, 0.0, 0.0, float(i) * 0.001)
        assert len(table) <= 1000
    assert table.num_evicted == 49_000


def test_threads_per_program_are_bounded():
    table = ProgramTable(max_threads_per_program=8)
    for i in range(100):
        table.call_arrived("p", f"t{i}", (), float(i))
        table.call_finished("p", f"t{i}", 0.1, 0.0, 0.0, float(i))
    assert len(table.get("p").threads) <= 8


def test_merge_remote_state_never_lowers():
    table = ProgramTable()
    table.call_arrived("p", "t", (), 0.0)
    table.call_finished("p", "t", 5.0, 1.0, 0.0, 1.0)
    table.merge_remote_state("p", service_s=3.0, critical_path_s=9.0, wait_s=2.0)
    row = table.get("p")
    assert (row.service_s, row.critical_path_s, row.wait_s) == (5.0, 9.0, 2.0)
    table.merge_remote_state("missing", service_s=1.0)  # no row: nothing happens
    assert "missing" not in table


@pytest.mark.parametrize(
    "kwargs", [{"idle_timeout_s": 0}, {"max_programs": 0}, {"max_threads_per_program": 0}]
)
def test_invalid_table_config(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        ProgramTable(**kwargs)


@settings(max_examples=300, deadline=None)
@given(
    max_threads=st.integers(1, 4),
    ops=st.lists(st.tuples(st.booleans(), st.integers(0, 7)), max_size=60),
)
def test_thread_trimming_keeps_active_threads_and_drops_only_the_excess(max_threads, ops):
    """Random arrivals and completions on a program's threads, checked against a model."""
    table = ProgramTable(max_threads_per_program=max_threads)
    active: dict[str, int] = {}  # the model: calls in flight per thread
    for now, (arrive, k) in enumerate(ops):
        tid = f"t{k}"
        before = table.find("p")
        known = set(before.threads) if before is not None else set()
        if arrive:
            row = table.call_arrived("p", tid, (), float(now))
            active[tid] = active.get(tid, 0) + 1
            assert row.threads[tid].last_arrival_s == now  # the new call's thread is never trimmed
        elif active.get(tid):
            row = table.call_finished("p", tid, 0.1, 0.0, 0.0, float(now))
            active[tid] -= 1
        else:
            continue
        in_flight = {t: n for t, n in active.items() if n}
        # every thread with calls in flight is kept, with the right count
        assert {t: th.num_active_calls for t, th in row.threads.items() if th.num_active_calls} == in_flight
        # the bound holds, and only the excess over it is dropped
        grown = len(known | {tid})
        assert len(row.threads) == min(grown, max(max_threads, len(in_flight)))
        assert set(row.threads) <= known | {tid}
        assert row.num_active_calls == sum(active.values())
