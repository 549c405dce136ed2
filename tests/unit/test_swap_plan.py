"""The swap connector's scheduler side (``vllm/swap/plan.py``) driven by hand: fake requests and
scheduler outputs, no engine, no tensors. The same code under a real engine:
tests/vllm/test_swap_connector.py."""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from autellix_ray.vllm.swap.plan import SwapIn, SwapOut, SwapPlan, SwapPlanner, WorkerPoolStats
from autellix_ray.vllm.swap.settings import (
    MODULE_PATH,
    SWAP_REPORT_KEY,
    SwapSettings,
    swap_kv_transfer_config,
)

SWAP = Path(__file__).resolve().parents[2] / "autellix_ray" / "vllm" / "swap"
BLOCK = 4
BLOCK_BYTES = 100


def runtime_imports(path: Path) -> set[str]:
    """Top-level package of every import outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text())
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and getattr(node.test, "id", None) == "TYPE_CHECKING" for n in ast.walk(node)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


@pytest.mark.parametrize("name", ["plan.py", "settings.py"])
def test_plan_and_settings_import_neither_torch_nor_vllm(name):
    heavy_packages = ("torch", "vllm", "triton")
    heavy_modules = ("autellix_ray.kernels", "autellix_ray.vllm.swap.worker", "autellix_ray.vllm.swap.connector")
    imports = runtime_imports(SWAP / name)
    assert {m for m in imports if m.split(".")[0] in heavy_packages or m.startswith(heavy_modules)} == set()


def test_report_key_and_module_path_keep_their_values():
    assert SWAP_REPORT_KEY == "autellix_swap"
    assert swap_kv_transfer_config(pool_bytes=1 << 20)["kv_connector_module_path"] == MODULE_PATH
    assert MODULE_PATH == "autellix_ray.vllm.swap_connector"


# -- fakes of vLLM's Request and SchedulerOutput (only the fields the planner reads) ----------
def request(rid, num_tokens, priority=0, arrival=0.0):
    return SimpleNamespace(request_id=rid, num_tokens=num_tokens, num_preemptions=0, priority=priority,
                           arrival_time=arrival)


def output(*, new=(), cached=(), preempted=(), resumed=()):
    """``new``: (req, block_ids, computed, scheduled); ``cached``: (req, new block ids, computed, scheduled)."""
    scheduled = {r.request_id: n for r, _, _, n in (*new, *cached)}
    return SimpleNamespace(
        preempted_req_ids={r.request_id for r in preempted},
        num_scheduled_tokens=scheduled,
        scheduled_new_reqs=[SimpleNamespace(req_id=r.request_id, block_ids=(list(b),), num_computed_tokens=c)
                            for r, b, c, _ in new],
        scheduled_cached_reqs=SimpleNamespace(
            req_ids=[r.request_id for r, *_ in cached],
            new_block_ids=[(list(b),) if b else None for _, b, _, _ in cached],
            num_computed_tokens=[c for _, _, c, _ in cached],
            resumed_req_ids={r.request_id for r in resumed},
        ),
    )


def planner(pool_blocks=10, min_swap=0, enabled=True):
    settings = SwapSettings(pool_bytes=pool_blocks * BLOCK_BYTES, min_swap_tokens=min_swap)
    return SwapPlanner(settings, BLOCK, BLOCK_BYTES, enabled)


def run_then_preempt(p, req, blocks, computed):
    """Schedule ``req`` once (``computed`` tokens with KV after the step), then preempt it."""
    p.on_new_request(req)
    p.build_connector_meta(output(new=[(req, blocks, 0, computed)]))
    req.num_preemptions += 1
    return p.build_connector_meta(output(preempted=[req]))


def test_a_preempted_call_is_swapped_out_and_loaded_back_on_resume():
    p = planner()
    req = request("a", num_tokens=11)
    plan = run_then_preempt(p, req, [7, 3, 9], computed=10)
    assert isinstance(plan, SwapPlan) and plan.swap_outs == [SwapOut(1, [7, 3, 9], 10)]
    assert p.pool.used_bytes == 3 * BLOCK_BYTES

    # resume: block 0 was a local prefix hit; the entry's blocks 1..2 go to the new blocks
    assert p.get_num_new_matched_tokens(req, 4) == 6
    p.update_state_after_alloc(req, SimpleNamespace(get_block_ids=lambda: ([5, 6, 8],)), 6)
    plan = p.build_connector_meta(output(cached=[(req, [5, 6, 8], 4, 1)], resumed=[req]))
    assert plan.swap_ins == [SwapIn(1, 1, [6, 8])] and plan.frees == []
    assert len(p.pool) == 0  # released once loaded; the worker drops its buffer after the load

    report = p.request_finished(req)[SWAP_REPORT_KEY]
    assert (report["num_swap_outs"], report["swapped_out_tokens"]) == (1, 10)
    assert (report["num_swap_ins"], report["swapped_in_tokens"]) == (1, 6)
    assert report["pool"]["num_swap_outs"] == 1 and report["pool"]["entries"] == 0


def test_short_contexts_and_a_disabled_planner_recompute():
    p = planner(min_swap=8)
    short = request("s", num_tokens=6)
    assert run_then_preempt(p, short, [1, 2], computed=5).swap_outs == []
    assert p.stats["s"].num_skipped_short == 1 and p.counters.num_skipped_short == 1

    off = planner(enabled=False)
    assert run_then_preempt(off, request("x", 20), [1, 2, 3, 4], computed=16).swap_outs == []
    assert off.counters.num_skipped_short == 0 and len(off.pool) == 0


def test_a_full_pool_evicts_by_the_priority_key_and_frees_the_victims_buffer():
    p = planner(pool_blocks=3)
    rank = {"low": (5,), "high": (1,)}
    p.set_priority_key(rank.__getitem__)
    low, high = request("low", 9), request("high", 9)
    assert run_then_preempt(p, low, [1, 2], computed=8).swap_outs == [SwapOut(1, [1, 2], 8)]
    plan = run_then_preempt(p, high, [3, 4], computed=8)
    assert plan.swap_outs == [SwapOut(2, [3, 4], 8)] and plan.frees == [1]
    assert set(p.pool.entries) == {"high"} and p.stats["low"].num_dropped == 1
    assert p.counters.num_evicted == 1

    # back to vLLM's order (priority, arrival): a call the planner does not track ranks last,
    # so it cannot evict "high" and is refused
    p.set_priority_key(None)
    assert p.pool.admit("untracked", 8, 2, 2 * BLOCK_BYTES) == (None, [])
    assert set(p.pool.entries) == {"high"}


def test_saved_and_dropped_in_one_step_cancels_both_and_finish_frees_the_entry():
    p = planner()
    req = request("a", 9)
    p.on_new_request(req)
    p.build_connector_meta(output(new=[(req, [1, 2], 0, 8)]))
    req.num_preemptions += 1
    assert p.get_num_new_matched_tokens(req, 0) == 8  # preempted and re-admitted in one schedule()
    p.request_finished(req)  # aborted before the step's metadata was built
    plan = p.build_connector_meta(output())
    assert plan.swap_outs == [] and plan.frees == []  # no orphan buffer in the worker

    other = request("b", 9)
    run_then_preempt(p, other, [3, 4], computed=8)
    p.request_finished(other)
    assert p.build_connector_meta(output()).frees == [2] and p.counters.num_freed_on_finish == 2


def test_reset_forgets_entries_and_the_worker_report_is_kept():
    p = planner()
    run_then_preempt(p, request("a", 9), [1, 2], computed=8)
    p.reset()
    assert len(p.pool) == 0 and p.build_connector_meta(output()).frees == [1]
    p.update_connector_output(WorkerPoolStats(pool_bytes=7, peak_bytes=9))
    p.update_connector_output(None)  # a step without worker metadata keeps the last report
    assert p.pool_report()["worker"]["peak_bytes"] == 9


def test_worker_reports_aggregate_by_max_and_sum_of_load_errors():
    a = WorkerPoolStats(pool_bytes=3, peak_bytes=8, swap_out_s=0.5, num_load_errors=1)
    b = WorkerPoolStats(pool_bytes=5, peak_bytes=2, swap_out_s=0.25, num_load_errors=2)
    merged = a.aggregate(b)
    assert (merged.pool_bytes, merged.peak_bytes, merged.swap_out_s, merged.num_load_errors) == (5, 8, 0.5, 3)
