"""The live benchmark's statistics and target bookkeeping (pure functions, no cluster)."""

import math

import pytest

from autellix_ray.bench.live import first_system, metric_delta, run_order
from autellix_ray.bench.live_stats import (
    aggregate,
    latency_stats,
    mean_ci,
    ratio_ci,
    summarise,
    t95,
    throughput_at,
)


def _run(mean, p95=None):
    return {"latency": {"mean_s": mean, "p95_s": p95 if p95 is not None else mean * 1.5}}


def _system(unloaded: list[float], rates: dict[str, list]) -> dict:
    """A results["systems"][name] entry: one run per seed (value: mean, or (mean, p95))."""
    def entry(per_seed):
        runs = {str(i): _run(*(v if isinstance(v, tuple) else (v,))) for i, v in enumerate(per_seed)}
        return {"per_seed": runs, "across_seeds": {k: mean_ci([r["latency"][k] for r in runs.values()])
                                                   for k in ("mean_s", "p95_s")}}

    return {"unloaded": entry(unloaded), "rates": {r: entry(v) for r, v in rates.items()}}


def test_throughput_at_interpolates_and_bounds():
    assert throughput_at([(1, 2.0), (2, 4.0), (3, 8.0)], 6.0) == {"rate": 2.5, "bound": "interpolated"}
    assert throughput_at([(1, 2.0), (2, 4.0)], 10.0) == {"rate": 2.0, "bound": "lower"}
    assert throughput_at([(1, 20.0)], 10.0)["rate"] == 0.0


def test_summarise_finds_the_knee_and_the_targets_from_the_seed_means():
    results = {"systems": {
        "stock": _system([1.8, 2.2], {"1.0": [3.0, 3.0], "2.0": [6.0, 8.0], "3.0": [12.0, 12.0]}),
        "autellix": _system([2.2, 2.2], {"1.0": [2.5, 2.5], "2.0": [(3.0, 9.0), (3.0, 9.0)], "3.0": [4.0, 4.0]}),
    }}
    out = summarise(results, 3.0)
    assert out["knee"]["rate"] == 2.0 and out["knee"]["reached"] and out["knee"]["latency_target_s"] == 6.0
    s = out["summary"]
    # paired per-seed ratios 6/3 and 8/3: geometric mean sqrt(2 * 8/3), with a t interval around it
    m = s["mean_latency_reduction_at_knee"]
    assert math.isclose(m["measured"], math.sqrt(2.0 * 8.0 / 3.0))
    assert m["ci95"][0] < m["measured"] < m["ci95"][1] and m["met"]
    assert s["p95_no_worse_at_knee"]["met"]  # 9.0 <= 10.5
    tp = s["throughput_at_latency_target"]["measured"]
    assert tp["autellix_bound"] == "lower" and tp["autellix_rate"] == 3.0
    assert math.isclose(tp["stock_rate"], 1.75)
    assert s["throughput_at_latency_target"]["met"] == (3.0 / 1.75 >= 2.0)
    per_seed = s["throughput_at_latency_target"]["per_seed_rates"]  # each seed's own curve, the common target
    assert per_seed["0"] == {"stock": 2.0, "autellix": 3.0}
    assert math.isclose(per_seed["1"]["stock"], 1.6) and per_seed["1"]["autellix"] == 3.0
    assert set(out["ratios"]) == {"1.0", "2.0", "3.0"}


def test_summarise_reports_unreached_knee_as_not_met():
    results = {"systems": {
        "stock": _system([2.0], {"1.0": [3.0]}),
        "autellix": _system([2.0], {"1.0": [1.0]}),
    }}
    out = summarise(results, 3.0)
    assert not out["knee"]["reached"]
    assert not any(t["met"] for t in out["summary"].values())
    # one seed: point estimates, no interval
    assert out["summary"]["mean_latency_reduction_at_knee"]["ci95"] == [None, None]


def test_mean_ci_uses_students_t_and_skips_missing_values():
    c = mean_ci([1.0, 2.0, 3.0, None])
    assert c["n"] == 3 and c["mean"] == 2.0
    assert math.isclose(c["hi"] - c["mean"], 4.303 * 1.0 / math.sqrt(3))  # sd 1, t(2) = 4.303
    assert mean_ci([5.0]) == {"mean": 5.0, "lo": None, "hi": None, "n": 1, "values": [5.0]}
    assert mean_ci([None])["mean"] is None
    assert t95(1) == 12.706 and 1.96 < t95(200) < t95(30)
    with pytest.raises(ValueError):
        t95(0)


def test_ratio_ci_is_the_geometric_mean_of_paired_ratios():
    r = ratio_ci([2.0, 8.0], [1.0, 1.0])
    assert math.isclose(r["geomean"], 4.0) and r["n"] == 2
    assert math.isclose(r["lo"] * r["hi"], 16.0)  # symmetric in log space
    assert ratio_ci([2.0, None, 3.0], [1.0, 1.0, 0.0])["n"] == 1  # missing / zero sides skipped
    flat = ratio_ci([3.0, 3.0, 3.0], [1.0, 1.0, 1.0])  # no spread, no width
    assert math.isclose(flat["lo"], 3.0) and math.isclose(flat["hi"], 3.0)


def test_run_order_alternates_which_system_runs_first():
    systems = ("stock", "autellix")
    firsts = [first_system(systems, seed, step) for seed in range(3) for step in range(4)]
    assert firsts.count("stock") == firsts.count("autellix")
    for step in range(4):  # across seeds, at every step
        assert {first_system(systems, seed, step) for seed in range(2)} == set(systems)
    for seed in range(3):
        assert run_order(systems, seed, 1)[0] != run_order(systems, seed, 0)[0]
        assert sorted(run_order(systems, seed, 2)) == sorted(systems)
    assert run_order(("autellix",), 1, 1) == ["autellix"]


def test_aggregate_sums_errors_and_keeps_startup_apart():
    runs = {"0": {"latency": latency_stats([_rec(2.0, startup=0.01), _rec(4.0, startup=0.03)]),
                  "throughput_programs_per_s": 0.5, "engine_metrics": {"preemptions": 3}},
            "1": {"latency": latency_stats([_rec(4.0), _rec(1.0, error="boom")]),
                  "throughput_programs_per_s": 0.25, "engine_metrics": {"preemptions": None}}}
    a = aggregate(runs)
    assert a["mean_s"]["values"] == [3.0, 4.0] and a["errors"] == 1 and a["programs"] == 4
    assert a["preemptions_per_run"]["n"] == 1 and a["startup_mean_s"]["values"] == [0.02]
    assert runs["0"]["latency"]["startup"]["max_s"] == 0.03


def _rec(latency, startup=None, error=None):
    r = {"latency_s": latency, "decode_tokens": 10, "workload": "react", "error": error}
    if startup is not None:
        r["startup_s"] = startup
    return r


def test_latency_stats_and_metric_delta():
    recs = [{"latency_s": float(i), "decode_tokens": 10, "workload": "react", "error": None} for i in range(1, 11)]
    recs.append({"latency_s": 1.0, "decode_tokens": 10, "workload": "lats", "error": "x"})
    st = latency_stats(recs)
    assert st["programs"] == 11 and st["errors"] == 1 and st["mean_s"] == 5.5
    assert math.isclose(st["per_token_mean_s"], 0.55) and set(st["by_workload"]) == {"react"}
    key = ("ray_vllm:num_preemptions_total", (("engine", "0"),))
    hits = ("ray_vllm:prefix_cache_hits_total", ())
    assert metric_delta({key: 2.0}, {key: 5.0, hits: 7.0}) == {"num_preemptions": 3.0, "prefix_cache_hits": 7.0}


def test_key_value_overrides_parse_json_values_and_reject_malformed_text():
    import argparse

    from autellix_ray.bench.live import _key_value

    assert _key_value("max_num_seqs=2") == ("max_num_seqs", 2)
    assert _key_value("boundaries_s=[0, 0.5]") == ("boundaries_s", [0, 0.5])
    assert _key_value("dtype=bfloat16") == ("dtype", "bfloat16")
    for bad in ("max_num_seqs", "=2"):
        with pytest.raises(argparse.ArgumentTypeError):
            _key_value(bad)
