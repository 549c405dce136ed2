"""Pure parts of the swap and scheduler-overhead benchmarks: intervals, run order, targets."""

from __future__ import annotations

import math

import pytest

from autellix_ray.bench.ci import fmt, mean_ci, ratio_ci, t95
from autellix_ray.bench.swap_bench import VARIANTS, build_summary, run_order


def test_mean_ci_is_students_t_interval():
    ci = mean_ci([1.0, 2.0, 3.0])
    assert ci["mean"] == pytest.approx(2.0)
    half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (ci["lo"], ci["hi"]) == pytest.approx((2.0 - half, 2.0 + half))
    assert mean_ci([5.0])["lo"] is None and mean_ci([])["mean"] is None
    assert t95(200) == pytest.approx(1.972, abs=1e-3)


def test_ratio_ci_pairs_repeats_and_is_a_geometric_mean():
    ci = ratio_ci([2.0, 8.0], [1.0, 2.0])  # ratios 2 and 4
    assert ci["geomean"] == pytest.approx(math.sqrt(8))
    assert ci["lo"] < ci["geomean"] < ci["hi"]
    assert ratio_ci([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])["hi"] == pytest.approx(0.5)  # no spread
    assert ratio_ci([0.0], [1.0])["geomean"] is None  # nothing measurable: undefined, not 0
    assert fmt(ratio_ci([0.0], [1.0]), "geomean") == "undefined"


def test_swap_bench_alternates_which_variant_runs_first():
    orders = [run_order(rep, seed=0) for rep in range(4)]
    assert all(sorted(o) == sorted(VARIANTS) for o in orders)
    assert [o[0] for o in orders] == ["recompute", "swap", "recompute", "swap"]


def _stats(fit_recomputed: int, preempted: int) -> dict:
    swap = {
        "recomputed_tokens_resumed_calls_whose_kv_fit": [0, fit_recomputed],
        "preempted_calls": [preempted, preempted + 3],
        "pool_peak_bytes": 10,
        "pool_capacity_bytes": 100,
    }
    return {"swap": swap}


def test_swap_latency_target_needs_the_whole_interval_below_one():
    same = {"swap": (48, 48), "recompute": (48, 48)}
    noisy = build_summary(_stats(0, 5), same, ratio_ci([0.8, 1.1, 0.9], [1.0, 1.0, 1.0]))
    assert noisy["mean_program_latency_swap_over_recompute"]["measured"] < 1.0
    assert noisy["mean_program_latency_swap_over_recompute"]["met"] is False  # CI crosses 1
    clear = build_summary(_stats(0, 5), same, ratio_ci([0.8, 0.82, 0.81], [1.0, 1.0, 1.0]))
    assert clear["mean_program_latency_swap_over_recompute"]["met"] is True
    # recomputation in any run, or no preemption at all, fails the zero-recompute target
    assert build_summary(_stats(7, 5), same, clear_ratio := ratio_ci([0.8], [1.0]))[
        "recomputed_prompt_tokens_resumed_calls_kv_fit"]["met"] is False
    assert build_summary(_stats(0, 0), same, clear_ratio)["recomputed_prompt_tokens_resumed_calls_kv_fit"][
        "met"] is False
