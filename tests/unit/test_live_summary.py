"""The live benchmark's statistics and target bookkeeping (pure functions, no cluster)."""

import math

import pytest

from autellix_ray.bench.live import latency_stats, metric_delta, summarise, throughput_at


def _run(mean, p95=None):
    return {"latency": {"mean_s": mean, "p95_s": p95 if p95 is not None else mean * 1.5}}


def test_throughput_at_interpolates_and_bounds():
    assert throughput_at([(1, 2.0), (2, 4.0), (3, 8.0)], 6.0) == {"rate": 2.5, "bound": "interpolated"}
    assert throughput_at([(1, 2.0), (2, 4.0)], 10.0) == {"rate": 2.0, "bound": "lower"}
    assert throughput_at([(1, 20.0)], 10.0)["rate"] == 0.0


def test_summarise_finds_the_knee_and_the_targets():
    results = {"systems": {
        "stock": {"unloaded": {"mean_s": 2.0}, "rates": {"1.0": _run(3.0), "2.0": _run(7.0), "3.0": _run(12.0)}},
        "autellix": {"unloaded": {"mean_s": 2.2}, "rates": {"1.0": _run(2.5), "2.0": _run(3.0, 9.0),
                                                            "3.0": _run(4.0)}},
    }}
    out = summarise(results, 3.0)
    assert out["knee"]["rate"] == 2.0 and out["knee"]["reached"] and out["knee"]["latency_target_s"] == 6.0
    s = out["summary"]
    assert math.isclose(s["mean_latency_reduction_at_knee"]["measured"], 7.0 / 3.0)
    assert s["mean_latency_reduction_at_knee"]["met"]
    assert s["p95_no_worse_at_knee"]["met"]  # 9.0 <= 10.5
    tp = s["throughput_at_latency_target"]["measured"]
    assert tp["autellix_bound"] == "lower" and tp["autellix_rate"] == 3.0
    assert math.isclose(tp["stock_rate"], 1.75)
    assert s["throughput_at_latency_target"]["met"] == (3.0 / 1.75 >= 2.0)


def test_summarise_reports_unreached_knee_as_not_met():
    results = {"systems": {
        "stock": {"unloaded": {"mean_s": 2.0}, "rates": {"1.0": _run(3.0)}},
        "autellix": {"unloaded": {"mean_s": 2.0}, "rates": {"1.0": _run(1.0)}},
    }}
    out = summarise(results, 3.0)
    assert not out["knee"]["reached"]
    assert not any(t["met"] for t in out["summary"].values())


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
