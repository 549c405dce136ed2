"""Replay metrics: throughput at a latency target, interpolation, censoring, ratios (pure Python)."""

import math

import pytest

from autellix_ray.bench.replay.metrics import (
    Throughput,
    interpolate_latency,
    rate_where,
    ratio,
    throughput_at_target,
)


def test_throughput_interpolates_log_latency_between_the_crossing_rates():
    pts = [(1.0, 10.0), (2.0, 20.0), (3.0, 80.0)]
    t = throughput_at_target(pts, 40.0, unloaded=10.0)
    assert not t.censored
    assert t.rate == pytest.approx(2.0 + math.log(2) / math.log(4))  # halfway in log between 20 and 80


def test_throughput_starts_from_the_unloaded_point_and_uses_the_first_crossing():
    assert throughput_at_target([(2.0, 40.0)], 20.0, unloaded=10.0).rate == pytest.approx(1.0)
    # a noisy curve that dips back under the target after crossing it: the first crossing counts
    t = throughput_at_target([(1.0, 10.0), (2.0, 50.0), (3.0, 30.0)], 40.0, unloaded=5.0)
    assert 1.0 < t.rate < 2.0
    assert throughput_at_target([(1.0, 10.0)], 5.0, unloaded=6.0) == Throughput(0.0, False)


def test_throughput_that_never_crosses_is_censored_and_ratios_say_which_bound():
    ours = throughput_at_target([(1.0, 10.0), (4.0, 12.0)], 50.0, unloaded=9.0)
    base = throughput_at_target([(1.0, 10.0), (4.0, 100.0)], 50.0, unloaded=9.0)
    assert ours == Throughput(4.0, True) and not base.censored
    r = ratio(ours, base)
    assert r["bound"] == "lower_bound" and r["value"] == pytest.approx(4.0 / base.rate)
    assert ratio(base, ours)["bound"] == "upper_bound"
    assert ratio(base, base)["bound"] is None


def test_interpolate_latency_and_rate_where():
    pts = [(0.0, 10.0), (2.0, 40.0)]
    assert interpolate_latency(pts, 1.0) == pytest.approx(20.0)
    assert interpolate_latency(pts, 5.0) == 40.0
    assert rate_where([(2.0, 40.0)], 20.0, 10.0) == pytest.approx(1.0)
    assert rate_where([(2.0, 15.0)], 20.0, 10.0) is None


def test_wait_per_service_is_the_ratio_anti_starvation_bounds():
    import math
    from types import SimpleNamespace

    from autellix_ray.bench.replay.metrics import wait_per_service

    programs = [SimpleNamespace(wait_s=w, service_s=s) for w, s in ((2.0, 1.0), (30.0, 3.0), (0.0, 4.0), (5.0, 0.0))]
    stats = wait_per_service(programs)
    assert stats["max"] == 10.0  # 30 s waited for 3 s of service; a program with no service is left out
    assert 2.0 < stats["p99"] <= 10.0
    assert all(math.isnan(v) for v in wait_per_service([]).values())
