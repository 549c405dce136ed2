"""The cache-coherence ablation's pure parts: trimming, stats, ratios and the report."""

import math
from types import SimpleNamespace

from autellix_ray.bench.replay.ablation import FULL_POINTS, default_jobs, ratio, render
from autellix_ray.bench.replay.metrics import latency_stats, trimmed


def prog(arrival, latency):
    return SimpleNamespace(arrival_s=arrival, latency_s=latency, latency_per_token_s=latency / 10)


def test_trimming_keeps_programs_arriving_in_the_middle_80_percent():
    programs = [prog(float(t), 1.0) for t in range(101)]  # arrivals 0..100 s
    kept = trimmed(programs)
    assert [p.arrival_s for p in kept] == [float(t) for t in range(10, 91)]
    assert trimmed([]) == []


def test_latency_stats_and_ratios():
    stats = latency_stats([prog(0.0, x) for x in (1.0, 2.0, 3.0, 4.0)])
    assert stats["num_programs"] == 4 and stats["mean_s"] == 2.5
    assert math.isnan(latency_stats([])["mean_s"])
    assert ratio(2.0, 4.0) == 2.0  # vLLM-opt 4 s, ours 2 s: 2x better
    assert ratio(math.nan, 4.0) is None and ratio(2.0, math.nan) is None


def test_every_point_runs_the_core_policies_and_the_first_every_ablation_row():
    jobs = default_jobs(FULL_POINTS)
    by_point = {}
    for point, policy in jobs:
        by_point.setdefault(point.label, []).append(policy.name)
    first, *rest = (pt.label for pt in FULL_POINTS)
    assert {"-program-order", "-work-service", "-preemption", "srpt"} <= set(by_point[first])
    for label in rest:
        assert by_point[label] == ["vllm-opt", "plas", "autellix", "program-fcfs", "srpt"]


def test_report_prints_an_unmeasurable_ratio_as_undefined():
    row = {
        "trimmed": {"num_programs": 3, "mean_s": 2.0, "p95_s": 3.0, "p99_s": 3.0},
        "prefill_tokens": 1e6, "prefix_hit_rate": 0.5, "num_preemptions": 0, "num_promotions": None,
    }
    empty = {**row, "trimmed": {"num_programs": 0, "mean_s": math.nan, "p95_s": math.nan, "p99_s": math.nan}}
    doc = {"commands": ["python -m autellix_ray.bench.replay.ablation"], "points": {
        "p": {"vllm-opt": row, "autellix": empty}}}
    text = render(doc)
    assert "| vllm-opt | 3 | 2.0 | 3.0 | 3.0 | 1.00x | 1.00x |" in text
    assert "| autellix | 0 | nan | nan | nan | undefined | undefined |" in text


def _row(mean, p95):
    return {"trimmed": {"num_programs": 10, "mean_s": mean, "p95_s": p95, "p99_s": p95},
            "prefill_tokens": 0, "prefix_hit_rate": 0.0, "num_preemptions": 0, "num_promotions": 0}


def test_summary_judges_never_worse_and_the_overload_target():
    from autellix_ray.bench.replay.ablation import summarize

    doc = {"points": {
        "overload": {"vllm-opt": _row(100.0, 200.0), "autellix": _row(45.0, 80.0),
                     "program-fcfs": _row(40.0, 60.0), "srpt": _row(50.0, 90.0)},
        "worse": {"vllm-opt": _row(100.0, 200.0), "autellix": _row(99.0, 220.0)},
    }}
    s = summarize(doc)
    assert s["overload"]["never_worse"]["met"] and s["overload"]["overload"]["met"]  # 2.2x, 1.125x of best
    assert s["overload"]["best_reference_gain"] == 2.5
    assert not s["worse"]["never_worse"]["met"]  # P95 1.1x worse
    assert "overload" not in s["worse"]  # no reference rows: the overload target is not judged


def test_a_variant_row_is_the_default_with_the_named_settings():
    import pytest

    from autellix_ray.bench.replay.ablation import variant

    spec = variant("+beta_vs_median=2,order_within_queue=call", "autellix-atlas")
    assert spec.name == "+beta_vs_median=2,order_within_queue=call" and spec.autellix_policy == "atlas"
    assert spec.settings == {"beta_vs_median": 2, "order_within_queue": "call"}
    assert variant("+beta=null").settings == {"beta": None}
    with pytest.raises(ValueError, match="unknown autellix setting"):
        variant("+no_such_setting=1")
    with pytest.raises(ValueError, match="beta_vs_median must be"):
        variant("+beta_vs_median=-1")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        variant("+beta")
