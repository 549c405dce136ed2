"""The scheduler-overhead benchmark's workloads do what its results claim (small, untimed asserts)."""

from __future__ import annotations

import pytest

from autellix_ray.bench.scheduler_overhead import Case, measure, parse_args

pytestmark = pytest.mark.vllm


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_events_case_demotes_promotes_and_preempts(tiny_model_path, mode):
    args = parse_args(["--rounds", "2", "--steps", "10", "--event-warmup", "150"])
    record = measure(tiny_model_path, Case("events", mode, 16, 64), args)
    events = record["events_in_timed_steps"]
    assert events["num_demotions"] > 0 and events["num_promotions"] > 0
    assert events["num_proactive_preemptions"] > 0
    assert record["plugin_settings"]["policy"] == "plas"
    assert record["plugin_settings"]["queue_params"]["beta"] == 2.0
    assert record["step"]["ratio_of_medians"]["n"] == 2


def test_churn_case_has_none_of_them(tiny_model_path):
    args = parse_args(["--rounds", "2", "--steps", "5"])
    record = measure(tiny_model_path, Case("churn", "sync", 32, 64), args)  # raises if any happened
    assert record["events_in_timed_steps"] == dict.fromkeys(record["events_in_timed_steps"], 0)
    assert record["timed_steps_per_block"] == 5
