"""Incremental checkpoints of the program table (core/checkpoint.py), with a dict for the GCS store."""

import json
import logging

import pytest

from autellix_ray.core.checkpoint import (
    FORMAT,
    LEGACY_KEY,
    MANIFEST_KEY,
    ROWS_PREFIX,
    MemoryStore,
    TableCheckpoint,
)
from autellix_ray.core import ProgramService


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def report(program_id, thread_id="main", service=1.0):
    return {"program_id": program_id, "thread_id": thread_id, "service_s": service, "wait_s": 0.5,
            "critical_path_start_s": 0.0}


def table(store, clock=None, **kw):
    return ProgramService(clock=clock or Clock(), store=store, **kw)


def run_programs(svc, ids, calls=2):
    for j in range(calls):
        svc.begin_calls([(p, f"t{j}", [f"t{j - 1}"] if j else []) for p in ids])
        svc.report_calls([report(p, f"t{j}") for p in ids])


def drain(svc):
    while svc.stats()["checkpoint_backlog"]:
        svc.checkpoint()


def row_keys(store):
    return sorted(k for k in store.data if k.startswith(ROWS_PREFIX))


def test_a_checkpoint_writes_only_the_programs_that_changed():
    store = MemoryStore()
    svc = table(store)
    run_programs(svc, [f"p{i}" for i in range(1000)])
    drain(svc)
    assert len(row_keys(store)) == 1000
    puts = store.num_puts
    svc.begin_calls([("p7", "x", []), ("p500", "x", []), ("p7", "y", ["x"])])
    svc.report_calls([report("p999")])
    svc.checkpoint()
    assert store.num_puts - puts == 1 + 3  # the manifest and the three programs touched
    assert svc.checkpoint() == len(store.data[MANIFEST_KEY])  # nothing changed since: the manifest only
    assert store.num_puts - puts == 5 and store.num_deletes == 0


def test_each_checkpoint_is_bounded_and_the_oldest_changes_go_first():
    store = MemoryStore()
    svc = table(store, max_keys_per_checkpoint=10)
    svc.begin_calls([(f"p{i}", "t", []) for i in range(25)])  # interval not elapsed: nothing written yet
    assert row_keys(store) == []
    svc.checkpoint()
    assert len(row_keys(store)) == 10 and svc.stats()["checkpoint_backlog"] == 15
    restored = table(store)
    assert sorted(r.program_id for r in restored.table.rows()) == sorted(f"p{i}" for i in range(10))
    started = svc.start_program("late", owner="alice")["program_id"]  # a start is always in its checkpoint
    assert table(store).get_program(started, "alice")["num_calls"] == 0
    drain(svc)
    assert len(table(store).table) == 26


def test_the_interval_decides_when_calls_are_written():
    clock, store = Clock(), MemoryStore()
    svc = table(store, clock)
    svc.begin_calls([("p", "t", [])])
    clock.now = 0.9
    svc.report_calls([report("p", "t")])
    assert row_keys(store) == []  # inside the 1 s interval: the loss bound
    clock.now = 1.0
    svc.begin_calls([("q", "t", [])])
    assert sorted(r.program_id for r in table(store, clock).table.rows()) == ["p", "q"]


def test_deletions_are_restored_as_deletions():
    clock, store = Clock(), MemoryStore()
    svc = table(store, clock, idle_timeout_s=10.0, max_programs=3)
    for owner, pid in (("alice", "ended"), (None, "idle"), (None, "kept")):
        svc.start_program(pid, owner=owner)
    run_programs(svc, ["ended", "idle", "kept"], calls=1)
    drain(svc)
    assert len(table(store, clock).table) == 3
    svc.end_program("ended", owner="alice")  # written at once
    clock.now = 8.0
    svc.begin_calls([("kept", "t9", [])])
    svc.report_calls([report("kept", "t9")])
    clock.now = 15.0
    svc.report_calls([])  # "idle" passed the 10 s idle timeout: collected
    svc.begin_calls([("a", "t", []), ("b", "t", [])])  # 3 rows: the next new program evicts "kept"
    svc.report_calls([report("a", "t"), report("b", "t")])
    svc.begin_calls([("c", "t", [])])
    assert "kept" not in svc.table and svc.table.num_evicted == 1
    svc.set_pin("pinned-later", "engine-0")
    svc.set_pin("pinned-later", None)
    drain(svc)
    restored = table(store, clock, idle_timeout_s=10.0, max_programs=3)
    assert sorted(r.program_id for r in restored.table.rows()) == ["a", "b", "c"]
    assert restored.owners == {} and restored.pending_pins == {}
    assert restored.stats()["num_evicted"] == 1 and restored.stats()["num_collected"] == 1
    assert len(row_keys(store)) == 3  # the deleted programs' keys are gone, not tombstoned


def test_a_10k_row_table_round_trips():
    clock, store = Clock(), MemoryStore()
    svc = table(store, clock, max_keys_per_checkpoint=100_000)
    ids = [f"prog-{i}" for i in range(10_000)]
    for i in range(0, len(ids), 1000):
        clock.now += 1.0
        run_programs(svc, ids[i:i + 1000], calls=3)
    for pid in ids[:50]:
        svc.start_program(pid, owner=f"owner-{pid}")
    svc.begin_calls([(pid, "open", ["t2"]) for pid in ids[100:120]])  # calls still in flight
    svc.set_pin(ids[5], "engine-1")
    svc.set_pin("not-started-yet", "engine-2")
    svc.set_pin("weird-\ud800-id", "engine-3")  # ids come from JSON: lone surrogates allowed
    drain(svc)
    restored = table(store, clock)
    # the same rows, in the same last-activity order (the order idle collection and eviction rely on)
    assert [r.last_activity_s for r in restored.table.rows()] == [r.last_activity_s for r in svc.table.rows()]
    assert {r.program_id: r for r in restored.table.rows()} == {r.program_id: r for r in svc.table.rows()}
    assert restored.owners == svc.owners and len(restored.owners) == 50
    assert restored.pending_pins == svc.pending_pins == {"not-started-yet": "engine-2", "weird-\ud800-id": "engine-3"}
    assert restored.num_reports == svc.num_reports == 30_000
    assert restored.stats()["restored_programs"] == 10_000
    # the restored table goes on: in-flight calls finish, a pending pin reaches its program
    restored.report_calls([report(ids[100], "open")])
    assert restored.get_program(ids[100])["num_active_calls"] == 0
    restored.begin_calls([("not-started-yet", "t", [])])
    assert restored.get_program("not-started-yet")["pinned_engines"] == ["engine-2"]


@pytest.mark.parametrize("manifest", [
    json.dumps({"format": FORMAT + 1, "generation": "g", "counters": {}}).encode(),
    json.dumps({"generation": "g"}).encode(),
    b"\x80\x05not json",
])
def test_an_unknown_checkpoint_format_is_refused_with_a_log_and_an_empty_table(manifest, caplog):
    store = MemoryStore()
    store.put(MANIFEST_KEY, manifest)
    store.put(ROWS_PREFIX + b"g/p", b"rows of a format this version cannot read")
    with caplog.at_level(logging.ERROR, logger="autellix_ray.core.checkpoint"):
        svc = table(store)
    assert len(svc.table) == 0 and svc.restored_programs == 0
    assert any("format" in r.getMessage() and "empty table" in r.getMessage() for r in caplog.records)
    svc.start_program("new")  # written under a new generation: the refused keys are never read
    assert [r.program_id for r in table(store).table.rows()] == ["new"]
    assert json.loads(store.data[MANIFEST_KEY])["format"] == FORMAT


def test_the_unversioned_whole_table_checkpoint_of_earlier_versions_is_refused(caplog):
    store = MemoryStore()
    store.put(LEGACY_KEY, b"a pickle of the whole table")
    with caplog.at_level(logging.ERROR, logger="autellix_ray.core.checkpoint"):
        svc = table(store)
    assert len(svc.table) == 0
    assert any("format 1" in r.getMessage() for r in caplog.records)


def test_an_unreadable_entry_loses_only_itself(caplog):
    store = MemoryStore()
    svc = table(store)
    run_programs(svc, ["a", "b"], calls=1)
    drain(svc)
    store.put(row_keys(store)[0], b"corrupt")
    with caplog.at_level(logging.ERROR, logger="autellix_ray.core.checkpoint"):
        assert len(table(store).table) == 1
    assert any("unreadable" in r.getMessage() for r in caplog.records)


def test_checkpoint_rejects_a_zero_bound():
    with pytest.raises(ValueError):
        TableCheckpoint(MemoryStore(), max_keys=0)


class GatedStore(MemoryStore):
    """A store whose writes block until the test opens the gate (a slow GCS)."""

    def __init__(self) -> None:
        super().__init__()
        import threading

        self.gate = threading.Event()

    def put(self, key, value):
        self.gate.wait(10)
        super().put(key, value)


def test_background_writes_keep_order_and_report_their_backlog():
    from autellix_ray.serve.program_table import BackgroundWrites

    inner = GatedStore()
    store = BackgroundWrites(inner)
    store.put(b"k", b"1")
    store.put(b"k", b"2")
    store.delete(b"gone")
    assert store.backlog() == 3 and inner.data == {}  # nothing written yet: the caller did not wait
    inner.gate.set()
    assert store.flush() and store.backlog() == 0
    assert inner.data == {b"k": b"2"}  # in order: the later value wins
    store.close()


def test_a_busy_store_defers_periodic_checkpoints_but_not_explicit_starts():
    from autellix_ray.serve.program_table import BackgroundWrites

    clock, inner = Clock(), GatedStore()
    store = BackgroundWrites(inner)
    svc = table(store, clock)
    svc.begin_calls([("p", "t", [])])
    clock.now = 1.0
    svc.report_calls([report("p", "t")])  # interval elapsed: a checkpoint is queued, not written
    queued = svc.num_checkpoints
    assert store.backlog() > 0
    clock.now = 2.0
    svc.report_calls([report("p", "t")])
    assert svc.num_checkpoints == queued and not svc.checkpoint_if_dirty()  # still writing: deferred
    inner.gate.set()
    started = svc.start_program(owner="alice")["program_id"]  # explicit: flushed before it returns
    assert store.backlog() == 0
    assert started in {r.program_id for r in table(inner, clock).table.rows()} | set(table(inner, clock).owners)
    store.close()
