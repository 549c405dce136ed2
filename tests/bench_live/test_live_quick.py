"""Smoke test of the live benchmark: ``python -m autellix_ray.bench.live --quick`` end to end.

Runs in a subprocess with its own Ray cluster (temp dir, HTTP and metrics ports distinct
from tests/serve's), deploys stock Ray Serve LLM and autellix-ray (2 vLLM-CPU replicas each),
drives both with a few scripted agent programs and checks the outputs' shape. No timing
assertion: the targets are for the full run (docs/live.md). Both systems are deployed at once,
then 2 seeds x (1 unloaded program + 5 programs at 2/s) per system: ~4-6 min here.
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
    seeds = [str(s) for s in results["config"]["seeds"]]
    assert len(seeds) == 2  # --quick repeats too, so the intervals are computed (n = 2)
    for system, res in results["systems"].items():
        assert set(res["unloaded"]["per_seed"]) == set(seeds)
        assert all(run["latency"]["errors"] == 0 for run in res["unloaded"]["per_seed"].values()), system
        for rate, entry in res["rates"].items():
            for seed, run in entry["per_seed"].items():
                lat = run["latency"]
                assert lat["programs"] > 0 and lat["errors"] == 0, (system, rate, seed)
                assert 0 < lat["mean_s"] <= lat["p99_s"]
                assert run["calls"]["calls"] == results["workload"]["calls"][seed]
                assert "preemptions" in run["engine_metrics"] and "prefix_cache_hit_rate" in run["engine_metrics"]
                # program start-up (POST /v1/programs) is timed apart: only autellix-ray has one
                assert ("startup" in lat) == (system == "autellix")
                assert all(r["latency_s"] > 0 for r in run["records"])
            across = entry["across_seeds"]["mean_s"]
            assert across["n"] == 2 and across["lo"] <= across["mean"] <= across["hi"]
    # the order alternates: at the rate, a different system ran first in each seed
    rate = next(iter(results["systems"]["stock"]["rates"]))
    firsts = [results["systems"]["stock"]["rates"][rate]["per_seed"][s]["ran_first"] for s in seeds]
    assert firsts[0] != firsts[1]
    for seed in seeds:
        run = results["systems"]["autellix"]["rates"][rate]["per_seed"][seed]
        assert run["calls"]["autellix_reports"]["calls"] == results["workload"]["calls"][seed]  # every report came
    ratio = results["ratios"][rate]["mean_s"]
    assert ratio["n"] == 2 and ratio["lo"] <= ratio["geomean"] <= ratio["hi"]
    ran = results["settings_ran"]["autellix"]
    from autellix_ray.serve.app import AppArgs

    assert ran["policy"] == AppArgs().policy  # the tree's default policy, recorded
    assert ran["engine_kwargs"]["additional_config"]["autellix"]["policy"] == ran["policy"]
    for name in ("mean_latency_reduction_at_knee", "p95_no_worse_at_knee", "throughput_at_latency_target"):
        assert set(results["summary"][name]) >= {"measured", "ci95", "target", "met"}
    for fig in ("live_latency.png", "live_ratio.png", "live_per_token.png", "live_cdf.png"):
        assert (tmp_path / "figures" / fig).stat().st_size > 1000
    report = (tmp_path / "live.md").read_text()
    assert "python -m autellix_ray.bench.live --quick" in report and "95% CI" in report
    for trace in results["workload"]["traces"].values():
        assert (tmp_path / trace).exists()
    assert (tmp_path / "results" / "live_trace.jsonl").exists()
