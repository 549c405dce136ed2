"""The router actor bench's summary and its block in docs/scale.md (no Ray: made-up cases)."""

from autellix_ray.bench.router_actor_bench import BEGIN, END, render, summarize, write_report


def case(policy, shards, batched, per_s, cpu_us):
    return {"policy": policy, "shards": shards, "batched": batched, "decisions_per_s": per_s, "mean_batch": 64.0 if batched else None,
            "actor_cpu_us_per_decision": cpu_us, "driver_cpu_us_per_decision": 50.0, "rpc_latency_ms_p50": 5.0}


NEED = {"engines": 64, "calls_per_s": 3000.0, "router": "kv_cost", "load": 1.0, "commit": "abc"}


def test_headroom_measured_and_cpu_bound_and_the_shards_each_policy_needs_for_3x():
    cases = [case("kv_cost", 1, False, 900.0, 1000.0), case("kv_cost", 1, True, 4000.0, 200.0),
             case("kv_cost", 2, True, 5000.0, 250.0), case("autellix", 1, True, 9500.0, 50.0)]
    s = summarize(cases, NEED)
    assert abs(s["kv_cost_1_shard_batched"]["headroom"] - 4000 / 3000) < 1e-9
    assert abs(s["kv_cost_1_shard_batched"]["cpu_bound_headroom"] - 5000 / 3000) < 1e-9  # 1e6 / 200 us
    assert abs(s["kv_cost_2_shards_batched"]["cpu_bound_headroom"] - 8000 / 3000) < 1e-9  # 2 x 1e6 / 250 us
    assert s["kv_cost_verdict"]["shards_for_3x"] == 2  # 9,000/s needed, 5,000/s per actor
    assert s["autellix_verdict"]["shards_for_3x"] == 1 and s["autellix_1_shard_batched"]["met_3x"]
    assert not s["kv_cost_1_shard_one_rpc_per_call"]["cpu_bound_met_3x"]


def test_without_the_scale_replay_there_is_no_headroom_to_claim(tmp_path):
    cases = [case("kv_cost", 1, True, 4000.0, 200.0)]
    s = summarize(cases, None)
    assert "headroom" not in s["kv_cost_1_shard_batched"] and "kv_cost_verdict" not in s
    doc = {"required": None, "cases": cases, "summary": s, "machine": {"cpus": 2}, "args": {"callers": 64},
           "command": "cmd", "commit": "c0ffee"}
    assert "| kv_cost | batched | 1 | 4,000 |" in render(doc) and "shards for 3x" not in render(doc)


def test_the_report_replaces_only_its_own_block(tmp_path):
    (tmp_path / "scale.md").write_text(f"intro\n\n{BEGIN}\nold numbers\n{END}\n\noutro\n")
    cases = [case("autellix", 1, True, 9500.0, 50.0)]
    doc = {"required": NEED, "cases": cases, "summary": summarize(cases, NEED), "machine": {"cpus": 2},
           "args": {"callers": 64}, "command": "cmd", "commit": "c0ffee"}
    text = write_report(doc, tmp_path).read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old numbers" not in text
    assert text.count(BEGIN) == 1 and "3.17x" in text and "shards for 3x: **1**" in text
