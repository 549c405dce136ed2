"""The scale replay: its --quick smoke run (real vLLM schedulers, the shipped cluster tier) and its summary."""

import json
import math

import pytest

from autellix_ray.bench.replay.scale import main, printable_ratio, summarize
from autellix_ray.bench.replay.metrics import Throughput

pytestmark = pytest.mark.vllm


def test_quick_scale_run_writes_rows_summary_report_and_figure_and_resumes(tmp_path, tiny_model_path):
    assert main(["--quick", "--out-dir", str(tmp_path), "--workers", "1"]) == 0
    doc = json.loads((tmp_path / "results" / "scale.json").read_text())
    assert set(doc["runs"]) == {"1", "2"} and set(doc["runs"]["2"]) == {"round_robin", "kv_cost"}
    row = doc["runs"]["2"]["kv_cost"]["1"]
    assert row["num_programs"] == 24 and row["trimmed"]["num_programs"] > 0
    assert row["router_stats"]["decisions"] and sum(row["router_stats"]["decisions"].values()) == row["num_calls"]
    assert row["central_load"]["calls_per_s"] > 0 and len(row["per_engine_prefix_hit_rate"]) == 2
    assert doc["runs"]["1"]["-"]["1"]["router_stats"] is None
    assert set(doc["summary"]["at"]) == {"2x", "3x"}
    assert "2" in doc["summary"]["at"]["3x"]["per_engines"] and doc["summary"]["at"]["3x"]["one_engine"] is not None
    report = (tmp_path / "scale.md").read_text()
    assert "| 2 | kv_cost | 1 | 24 |" in report and "scale_routers.png" in report
    assert (tmp_path / "figures" / "scale_routers.png").stat().st_size > 1000
    commands = len(doc["commands"])
    assert main(["--quick", "--out-dir", str(tmp_path), "--workers", "1"]) == 0  # nothing left to run
    again = json.loads((tmp_path / "results" / "scale.json").read_text())
    assert again["runs"]["2"]["kv_cost"]["1"]["wall_time_s"] == row["wall_time_s"] and len(again["commands"]) == commands + 1


def _row(rate, mean):
    return {"rate": rate, "trimmed": {"mean_s": mean}}


def test_summary_throughput_at_equal_latency_ratios_and_scaling():
    doc = {"unloaded_s": 2.0, "runs": {
        "1": {"-": {"0.5": _row(1.0, 3.0), "1": _row(2.0, 12.0)}},
        "8": {"round_robin": {"0.5": _row(8.0, 10.0), "1": _row(16.0, 60.0)},
              "autellix": {"0.5": _row(8.0, 3.0), "1": _row(16.0, 9.0)},
              "kv_cost": {"0.5": _row(8.0, 2.5), "1": _row(16.0, 5.0)}}}}
    s = summarize(doc)["at"]["3x"]
    assert s["target_mean_latency_s"] == 6.0
    eight = s["per_engines"]["8"]
    assert eight["throughput"]["kv_cost"]["censored"] and eight["throughput"]["kv_cost"]["rate"] == 16.0
    assert not eight["throughput"]["round_robin"]["censored"] and eight["throughput"]["round_robin"]["rate"] < 8.0
    assert eight["ours_vs_round_robin"]["bound"] == "lower_bound" and eight["ours_vs_round_robin"]["value"] > 2
    assert s["targets"]["8"]["met_1_5x_round_robin"] is True and s["targets"]["8"]["met_at_least_algorithm_2"] is True
    one = s["one_engine"]["rate"]
    assert 1.0 < one < 2.0 and eight["scaling_efficiency"]["kv_cost"]["value"] == pytest.approx(16.0 / (8 * one))


def test_a_ratio_of_two_lower_bounds_prints_as_undefined():
    assert printable_ratio(Throughput(4.0, True), Throughput(4.0, True))["value"] is None
    assert printable_ratio(Throughput(0.0, False), Throughput(0.0, False))["value"] is None
    r = printable_ratio(Throughput(6.0, False), Throughput(3.0, False))
    assert r == {"value": 2.0, "bound": None} and math.isfinite(r["value"])
