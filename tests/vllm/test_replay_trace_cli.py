"""`python -m autellix_ray.bench.replay --trace FILE`: a user's JSONL trace through chosen policies."""

import json

import pytest

from autellix_ray.bench.replay.__main__ import main
from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload
from autellix_ray.bench.workloads.trace import write_trace

pytestmark = pytest.mark.vllm


def tiny_trace() -> Workload:
    """Four small programs: ReAct chains reusing their context, and a two-thread fan-in."""
    programs = []
    for k in range(3):
        programs.append(ProgramSpec(f"react{k}", 0.4 * k, (
            CallSpec("main", 300 + 50 * k, 20),
            CallSpec("main", 360 + 50 * k, 10, think_time_s=0.1, reuse_call=0, reuse_tokens=320 + 50 * k),
        )))
    programs.append(ProgramSpec("fanin", 1.0, (
        CallSpec("a", 200, 15), CallSpec("b", 200, 15), CallSpec("c", 250, 8, parent_thread_ids=("a", "b")),
    )))
    return Workload("mine", tuple(programs), rate=2.5)


def test_trace_replay_writes_json_and_report(tmp_path, tiny_model_path, capsys):
    trace = tmp_path / "mine.jsonl"
    write_trace(tiny_trace(), trace)
    out = tmp_path / "out"
    argv = ["--trace", str(trace), "--policy", "vllm-opt", "--policy", "autellix", "--workers", "1",
            "--rate", "5", "--out-dir", str(out)]
    assert main(argv) == 0
    doc = json.loads((out / "results" / "trace_replay.json").read_text())
    assert doc["command"].startswith("python -m autellix_ray.bench.replay --trace")
    assert doc["trace"]["num_programs"] == 4 and doc["trace"]["num_calls"] == 9
    assert doc["trace"]["rescaled_to_rate"] == 5 and doc["trace"]["time_scale"] == pytest.approx(0.6)
    rows = doc["presets"]["a100-80gb/llama-3.1-8b"]["policies"]
    assert list(rows) == ["vllm-opt", "autellix"]
    for name, row in rows.items():
        assert row["policy"] == name and row["all"]["num_programs"] == 4 and row["num_calls"] == 9
        assert 0 < row["trimmed"]["num_programs"] <= 4
        assert {"mean_s", "p50_s", "p95_s", "p99_s"} <= set(row["all"]) and row["all"]["mean_s"] > 0
        assert row["prefill_tokens"] > 0 and 0 < row["prefix_hit_rate"] <= 1
    assert rows["autellix"]["settings"]["scheduler"] == "AutellixScheduler"
    report = (out / "trace_replay.md").read_text()
    assert "| vllm-opt | " in report and "| autellix | " in report and "1.00x" in report
    assert "| autellix | " in capsys.readouterr().out


def test_ratio_without_a_vllm_opt_row_is_undefined(tmp_path, tiny_model_path):
    trace = tmp_path / "mine.jsonl"
    write_trace(tiny_trace(), trace)
    assert main(["--trace", str(trace), "--policy", "program-fcfs", "--workers", "1", "--out-dir", str(tmp_path)]) == 0
    assert "undefined" in (tmp_path / "trace_replay.md").read_text()


def test_malformed_trace_exits_2_naming_the_line(tmp_path, capsys):
    trace = tmp_path / "bad.jsonl"
    good = json.dumps({"program_id": "p0", "arrival_s": 0.0,
                       "calls": [{"thread_id": "main", "prompt_tokens": 10, "decode_tokens": 2}]})
    trace.write_text(good + "\n\n" + '{"program_id": "p1", "arrival_s": 1.0, "calls": [{"thread_id": "main"}]}\n')
    with pytest.raises(SystemExit) as exit_info:
        main(["--trace", str(trace), "--out-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "trace line 3" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_trace_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--trace", str(tmp_path / "nope.jsonl")])
    assert exit_info.value.code == 2
    assert "cannot read trace" in capsys.readouterr().err
