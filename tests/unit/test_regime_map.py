"""The regime map's pure parts: capacity from an overloaded run, program counts, targets, censoring."""

import math

import pytest

from autellix_ray.bench.replay.regime import (
    A100_40,
    A100_80,
    Cell,
    choose_capacity,
    full_plan,
    measure_capacity,
    medium_plan,
    next_capacity_rate,
)
from autellix_ray.bench.replay.regime_report import point_targets, render, summarize, throughput_ratio


def test_capacity_is_the_completion_rate_in_the_middle_of_an_overloaded_run():
    # 101 programs arriving 1/s for 100 s; the engine finishes one every 2 s from t=5 on: overloaded.
    arrivals = [float(t) for t in range(101)]
    finishes = [5.0 + 2 * i for i in range(101)]
    cap = measure_capacity(arrivals, finishes)
    assert cap["window_s"] == pytest.approx(80.0)  # [10, 90]
    assert cap["completed_in_window"] == 40  # finishes 11, 13, ..., 89
    assert cap["capacity"] == pytest.approx(0.5)
    assert cap["arrivals_per_completion"] == pytest.approx(81 / 40)
    assert cap["overloaded"] and cap["measured_over"] == "window"


def test_a_run_that_keeps_up_is_not_overloaded():
    arrivals = [float(t) for t in range(101)]
    finishes = [a + 3.0 for a in arrivals]  # every program done 3 s after it arrived
    cap = measure_capacity(arrivals, finishes)
    assert not cap["overloaded"]
    assert cap["capacity"] == pytest.approx(81 / 80)  # only a lower bound; the report says so


def test_too_few_completions_in_the_window_fall_back_to_the_whole_run():
    arrivals = [0.0, 0.1, 0.2, 0.3]
    finishes = [50.0, 60.0, 70.0, 80.0]
    cap = measure_capacity(arrivals, finishes)
    assert cap["measured_over"] == "whole run"
    assert cap["capacity"] == pytest.approx(4 / 80.0)


def _try(rate, capacity, pressure):
    return {"rate": rate, "capacity": capacity, "arrivals_per_completion": pressure, "overloaded": pressure >= 1.1}


def test_capacity_search_raises_the_rate_until_overloaded_and_retries_closer_after_a_deep_overload():
    assert next_capacity_rate([], guess=8.0) == pytest.approx(10.0)  # just above the guess
    kept_up = [_try(10.0, 9.9, 1.0)]
    assert next_capacity_rate(kept_up, 8.0) == pytest.approx(15.0)  # x1.5
    mild = [*kept_up, _try(15.0, 12.0, 1.25)]
    assert next_capacity_rate(mild, 8.0) is None  # overloaded, not deeply: done
    assert choose_capacity(mild)["capacity"] == 12.0
    # Deep overload (a thrashing completion rate): one retry just above what it measured.
    deep = [_try(30.0, 8.0, 3.0)]
    assert next_capacity_rate(deep, 12.0) == pytest.approx(10.0)
    deep.append(_try(10.0, 9.5, 1.05))  # that one kept up: 9.5 is a lower bound, raise again
    assert next_capacity_rate(deep, 12.0) == pytest.approx(15.0)
    deep.append(_try(15.0, 11.8, 1.27))
    assert next_capacity_rate(deep, 12.0) is None
    assert choose_capacity(deep)["capacity"] == 11.8  # the highest overloaded completion rate
    # A cliff: past 9.65/s the engine thrashes (4.7/s completed): the rate it sustained is the capacity.
    cliff = [_try(7.5, 7.7, 1.01), _try(11.25, 4.7, 2.47), _try(9.65, 9.3, 1.08), _try(14.5, 2.3, 6.7)]
    assert choose_capacity(cliff)["capacity"] == 9.3 and "cliff" in choose_capacity(cliff)["chosen_because"]
    assert choose_capacity([_try(11.1, 10.7, 1.08), _try(13.4, 10.0, 1.39)])["capacity"] == 10.0  # no cliff
    never = [_try(r, r, 1.0) for r in (1.0, 1.5, 2.25, 3.4, 5.0)]
    assert next_capacity_rate(never, 0.8) is None  # tries exhausted
    assert choose_capacity(never)["capacity"] == 5.0 and not choose_capacity(never)["overloaded"]


def test_program_counts_cover_the_window_within_the_cap():
    cell = Cell("sharegpt", A100_80, 1.5, min_programs=1000, max_programs=3000, unloaded_programs=30)
    assert cell.num_programs(rate=0.5, unloaded_s=30.0) == 1000  # 10 x 30 s x 0.5/s = 150 < floor
    assert cell.num_programs(rate=5.0, unloaded_s=30.0) == 1500  # window 300 s = 10 x U
    assert cell.num_programs(rate=50.0, unloaded_s=30.0) == 3000  # capped


def test_the_full_plan_covers_six_workloads_on_two_presets_at_eight_loads():
    plan = full_plan()
    assert {(c.workload, c.preset) for c in plan.cells} == {
        (w, p) for w in ("bfcl", "sharegpt", "moa", "mixed", "lats", "coding") for p in (A100_80, A100_40)}
    assert len(plan.loads) == 8 and min(plan.loads) == 0.5 and max(plan.loads) == 3.0
    single = [c for c in plan.cells if c.workload in ("bfcl", "sharegpt")]
    assert all(c.min_programs >= 1000 for c in single)
    dag = next(c for c in plan.cells if c.workload == "moa")
    assert dag.ours == "autellix-atlas" and dag.paper == "atlas"
    assert plan.policies(dag) == ("vllm-opt", "autellix-atlas", "program-fcfs", "srpt", "atlas", "vllm", "mlfq")
    assert medium_plan().policies(dag) == ("vllm-opt", "autellix-atlas", "program-fcfs", "srpt")


def _row(mean, p95=None, p99=None, ms=None):
    return {"trimmed": {"mean_s": mean, "p95_s": p95 or 2 * mean, "p99_s": p99 or 3 * mean,
                        "mean_ms_per_token": ms if ms is not None else mean, "num_programs": 80},
            "prefix_hit_rate": 0.5, "prefill_tokens": 1e6, "recomputed_tokens": 0, "max_running": 256,
            "max_waiting": 10}


def _cell(points, unloaded_ms=1.0):
    return {"workload": "sharegpt", "preset": A100_80, "ours": "autellix", "paper": "plas",
            "unloaded": {"mean_s": 1.0, "mean_ms_per_token": unloaded_ms},
            "capacity": {"capacity": 1.0, "overloaded": True},
            "points": {f"{load:g}": {"load": load, "rate": load, "num_programs": 100, "policies": rows}
                       for load, rows in points}}


def test_point_targets_never_worse_overload_and_tail():
    slow = point_targets({"load": 0.5, "rate": 0.5, "policies": {
        "vllm-opt": _row(10.0), "autellix": _row(11.0, p99=36.0), "srpt": _row(9.0)}}, "autellix")
    assert not slow["never_worse"]  # 1.1x worse > 1.05x
    assert not slow["tail_ok"]  # P99 36 vs 30 s: 1.2x worse
    assert "overload_ok" not in slow  # the oracle gains only 1.11x: the overload target does not apply
    fast = point_targets({"load": 2.0, "rate": 2.0, "policies": {
        "vllm-opt": _row(30.0), "autellix": _row(12.0), "program-fcfs": _row(11.0), "srpt": _row(10.0)}}, "autellix")
    assert fast["never_worse"] and fast["overload_ok"]  # 2.5x, and 12 <= 1.2 x 10
    assert "tail_ok" not in fast  # above capacity
    missing = point_targets({"load": 1.0, "rate": 1.0, "policies": {"vllm-opt": _row(1.0)}}, "autellix")
    assert missing is None


def test_paper_metric_ratio_and_censoring_is_undefined_never_one():
    # vLLM-opt crosses 3x unloaded (3 ms/token) between rates 1 and 2, ours never does: censored.
    cell = _cell([(1.0, {"vllm-opt": _row(2.0), "autellix": _row(1.5)}),
                  (2.0, {"vllm-opt": _row(6.0), "autellix": _row(2.5)})])
    r = throughput_ratio(cell, "autellix", 3.0)
    assert r["value"] is None and r["why"].startswith("censored (>=")
    # Both cross: a plain ratio.
    cell = _cell([(1.0, {"vllm-opt": _row(2.0), "autellix": _row(1.5)}),
                  (2.0, {"vllm-opt": _row(6.0), "autellix": _row(2.5)}),
                  (4.0, {"vllm-opt": _row(20.0), "autellix": _row(9.0)})])
    r = throughput_ratio(cell, "autellix", 3.0)
    assert r["value"] is not None and r["value"] > 1.5
    assert r["ours"]["rate"] > r["vllm_opt"]["rate"]


def test_summary_counts_and_report_print_undefined_for_censored_ratios():
    regime = {"trim_fraction": 0.1, "commands": ["python -m autellix_ray.bench.replay.regime --quick"],
              "cells": {"sharegpt a100-80gb": _cell([
                  (0.5, {"vllm-opt": _row(2.0), "autellix": _row(2.0)}),
                  (2.0, {"vllm-opt": _row(6.0), "autellix": _row(9.0), "srpt": _row(2.0)})])}}
    regime["summary"] = summarize(regime)
    totals = regime["summary"]["totals"]
    assert totals["points"] == 2 and totals["never_worse_met"] == 1
    assert totals["overload_points"] == 1 and totals["overload_met"] == 0
    entry = regime["summary"]["cells"]["sharegpt a100-80gb"]
    assert entry["paper_metric"]["met"] is False
    text = "\n".join(render(regime, None, __import__("pathlib").Path(".")))
    assert "never worse at **1 of 2** points" in text
    assert "| **autellix** (ours) | 1.00x | 0.67x |" in text
    assert "every order ties up to 0.5x capacity, order matters from 2x" in text
    assert "| sharegpt a100-80gb | 1 | 1.0 s | 100-100 | 0.86x |" in text  # ours reaches 3 ms/token sooner
    regime["cells"]["sharegpt a100-80gb"]["points"]["2"]["policies"]["autellix"] = _row(2.5)  # never crosses
    regime["summary"] = summarize(regime)
    text = "\n".join(render(regime, None, __import__("pathlib").Path(".")))
    assert "| 100-100 | undefined: censored (>=" in text
    assert math.isfinite(entry["points"][1]["mean_vs_vllm_opt"])


def test_ablation_rows_run_our_default_of_the_cell_with_one_mechanism_off(tmp_path):
    from autellix_ray.bench.replay.regime import Runner

    plan = full_plan()
    runner = Runner(plan, tmp_path / "replay.json", workers=1, policies=["vllm-opt", "autellix", "-starvation"],
                    cells=None, rerun=False, progress=False)
    moa = next(c for c in plan.cells if c.workload == "moa")
    assert runner._policies(moa) == ["vllm-opt", "autellix-atlas", "-starvation"]
    spec = runner._spec(moa, "-starvation")
    assert spec.autellix_policy == "atlas" and spec.settings["beta"] is None and spec.name == "-starvation"
    bfcl = next(c for c in plan.cells if c.workload == "bfcl")
    assert runner._spec(bfcl, "-starvation").autellix_policy == "plas"
    with pytest.raises(ValueError, match="unknown ablation row"):
        runner._spec(bfcl, "-nothing")


def test_results_round_trip_keeps_non_finite_numbers(tmp_path):
    from autellix_ray.bench.replay.regime import load_doc, save_doc

    path = tmp_path / "results" / "replay.json"
    save_doc(path, {"regime_map": {"tries": [{"arrivals_per_completion": math.inf, "capacity": math.nan,
                                              "label": "sharegpt"}]}})
    back = load_doc(path)["regime_map"]["tries"][0]
    assert back["arrivals_per_completion"] == math.inf and math.isnan(back["capacity"])
    assert back["label"] == "sharegpt"
    assert next_capacity_rate([{**back, "rate": 2.0, "overloaded": True, "capacity": 1.0}], 1.0) == pytest.approx(1.25)


def test_paper_metric_uses_only_loads_both_policies_ran():
    # vLLM-opt has a point at 1/s that ours lacks: without it both cross 3 ms/token between 0 and 2/s.
    cell = _cell([(1.0, {"vllm-opt": _row(2.0)}),
                  (2.0, {"vllm-opt": _row(6.0), "autellix": _row(6.0)})])
    r = throughput_ratio(cell, "autellix", 3.0)
    assert r["value"] == pytest.approx(1.0)
