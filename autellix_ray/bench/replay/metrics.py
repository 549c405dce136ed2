"""Program-level metrics of a replay, and throughput at a latency target.

Per program (``ProgramRecord``):
- response time = finish of its last call - program arrival;
- latency per token = response time / total decode tokens of the program. For a
  multi-threaded program (LATS) the response time already is its critical path (the
  program ends when its last call does, and its calls run in parallel), so this is the
  paper's "critical-path response time / total tokens".

Per run: mean, P50, P95, P99 of latency per token over the programs; mean response time.

Throughput at a latency target (``throughput_at_target``): the highest arrival rate whose
mean latency per token stays under the target, reading the swept curve from rate 0
(where the latency is the unloaded one) upwards and stopping at the first swept rate
above the target; between that rate and the previous point, log(latency) is
interpolated linearly in the rate (latency curves grow roughly exponentially near the
knee). If no swept rate exceeds the target the value is censored: it is at least the
highest swept rate (``censored=True``), and ratios built on it are lower bounds (or
upper bounds for a censored denominator).

Targets are multiples of the UNLOADED mean latency per token: every program of a
subset run alone on one vLLM-opt engine (programs spaced far apart), see ``unloaded``
in ``sweep.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autellix_ray.bench.replay.engine import ReplayResult


def summarize(result: ReplayResult) -> dict[str, Any]:
    """The JSON record of one run (latencies in milliseconds per token, times in seconds)."""
    lat = np.array([p.latency_per_token_s for p in result.programs]) * 1e3
    resp = np.array([p.latency_s for p in result.programs])
    engines = result.engines
    admitted = sum(e["admitted_prompt_tokens"] for e in engines)
    hits = sum(e["prefix_hit_tokens"] for e in engines)
    out: dict[str, Any] = {
        "rate": result.rate,
        "num_programs": len(result.programs),
        "num_calls": result.num_calls,
        "mean_ms_per_token": float(lat.mean()),
        "p50_ms_per_token": float(np.percentile(lat, 50)),
        "p95_ms_per_token": float(np.percentile(lat, 95)),
        "p99_ms_per_token": float(np.percentile(lat, 99)),
        "mean_response_s": float(resp.mean()),
        "p99_response_s": float(np.percentile(resp, 99)),
        "sim_time_s": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
        "num_steps": sum(e["num_steps"] for e in engines),
        "prefix_hit_rate": hits / admitted if admitted else 0.0,
        "prefill_tokens": sum(e["prefill_tokens"] for e in engines),
        "decode_tokens": sum(e["decode_tokens"] for e in engines),
        "num_preemptions": sum(e["num_preemptions"] for e in engines),
        "max_running": max(e["max_running"] for e in engines),
        "engine_busy_fraction": (
            sum(e["busy_s"] for e in engines) / (len(engines) * result.sim_time_s) if result.sim_time_s else 0.0
        ),
    }
    if result.plugin_counters:
        keys = ("num_proactive_preemptions", "num_promotions", "num_demotions", "num_recomputed_tokens")
        out["plugin"] = {k: sum(c.get(k, 0) for c in result.plugin_counters) for k in keys}
    kinds = sorted({p.kind for p in result.programs})
    if len(kinds) > 1:
        out["by_kind_mean_ms_per_token"] = {
            k: float(np.mean([p.latency_per_token_s for p in result.programs if p.kind == k]) * 1e3) for k in kinds
        }
    return out


@dataclass(frozen=True)
class Throughput:
    rate: float  # programs/s
    censored: bool  # True: the target held at every swept rate (the value is a lower bound)

    def as_dict(self) -> dict[str, Any]:
        return {"rate": self.rate, "censored": self.censored}


def interpolate_latency(points: Sequence[tuple[float, float]], rate: float) -> float:
    """Mean latency at ``rate`` from (rate, latency) points, log-linear; clamps at the ends."""
    pts = sorted(points)
    if rate <= pts[0][0]:
        return pts[0][1]
    for (r0, m0), (r1, m1) in zip(pts, pts[1:]):
        if r0 <= rate <= r1:
            if r1 == r0:
                return m1
            f = (rate - r0) / (r1 - r0)
            return math.exp(math.log(m0) + f * (math.log(m1) - math.log(m0)))
    return pts[-1][1]


def throughput_at_target(points: Sequence[tuple[float, float]], target: float, unloaded: float) -> Throughput:
    """Highest rate with mean latency <= ``target``; ``points`` = (rate, mean latency).

    The curve starts at (0, ``unloaded``); see the module header.
    """
    pts = [(0.0, unloaded)] + sorted(points)
    if pts[0][1] > target:
        return Throughput(0.0, False)
    for (r0, m0), (r1, m1) in zip(pts, pts[1:]):
        if m1 > target:
            lo, hi, t = math.log(m0), math.log(m1), math.log(target)
            f = (t - lo) / (hi - lo) if hi > lo else 1.0
            return Throughput(r0 + f * (r1 - r0), False)
    return Throughput(pts[-1][0], True)


def ratio(ours: Throughput, base: Throughput) -> dict[str, Any]:
    """ours / base, with the direction of any censoring: 'lower_bound' or 'upper_bound'."""
    if base.rate <= 0:
        value = math.inf if ours.rate > 0 else math.nan
    else:
        value = ours.rate / base.rate
    bound = None
    if ours.censored and not base.censored:
        bound = "lower_bound"
    elif base.censored and not ours.censored:
        bound = "upper_bound"
    elif ours.censored and base.censored:
        bound = "unknown"
    return {"value": value, "bound": bound}


def rate_where(points: Sequence[tuple[float, float]], latency: float, unloaded: float) -> float | None:
    """First rate where the curve (from (0, unloaded)) reaches ``latency``; None if it never does."""
    t = throughput_at_target(points, latency, unloaded)
    return None if t.censored else t.rate


# ---------------------------------------------------------------------------- steady-state stats

TRIM = 0.1  # the first and last 10% of the arrival window are warm-up and drain


def trimmed_window(arrivals: Sequence[float]) -> tuple[float, float]:
    """The middle ``1 - 2 TRIM`` of the arrival window [first arrival, last arrival]."""
    first, last = min(arrivals), max(arrivals)
    return first + TRIM * (last - first), last - TRIM * (last - first)


def trimmed(programs: Sequence[Any]) -> list[Any]:
    """Programs arriving in the middle 80% of the arrival window (warm-up and drain trimmed)."""
    if not programs:
        return []
    lo, hi = trimmed_window([p.arrival_s for p in programs])
    return [p for p in programs if lo <= p.arrival_s <= hi]


def latency_stats(programs: Sequence[Any]) -> dict[str, float]:
    """Program response time (s) mean/P50/P95/P99 and mean latency per token (ms), with the count."""
    if not programs:
        return {"num_programs": 0, "mean_s": math.nan, "p50_s": math.nan, "p95_s": math.nan, "p99_s": math.nan,
                "mean_ms_per_token": math.nan}
    lat = np.array([p.latency_s for p in programs])
    return {
        "num_programs": len(programs),
        "mean_s": float(lat.mean()),
        "p50_s": float(np.percentile(lat, 50)),
        "p95_s": float(np.percentile(lat, 95)),
        "p99_s": float(np.percentile(lat, 99)),
        "mean_ms_per_token": float(np.mean([p.latency_per_token_s for p in programs]) * 1e3),
    }


def completion_rate(programs: Sequence[Any]) -> float:
    """Programs finished inside the trimmed arrival window, per second of it."""
    if len(programs) < 2:
        return math.nan
    lo, hi = trimmed_window([p.arrival_s for p in programs])
    return sum(1 for p in programs if lo <= p.finish_s <= hi) / (hi - lo) if hi > lo else math.nan


def wait_per_service(programs: Sequence[Any]) -> dict[str, float]:
    """Max and P99 over programs of wait / service (``ProgramRecord``): what anti-starvation bounds."""
    ratios = [p.wait_s / p.service_s for p in programs if p.service_s > 0]
    if not ratios:
        return {"max": math.nan, "p99": math.nan}
    return {"max": float(max(ratios)), "p99": float(np.percentile(ratios, 99))}


def run_row(result: ReplayResult, policy: Any) -> dict[str, Any]:
    """What a steady-state report shows of one replay: latency over all and trimmed programs, the
    completion rate in the window, cache, preemption and queue counters."""
    engines = result.engines
    admitted = sum(e["admitted_prompt_tokens"] for e in engines)
    hits = sum(e["prefix_hit_tokens"] for e in engines)
    prefill = sum(e["prefill_tokens"] for e in engines)
    counters = result.plugin_counters
    return {
        "settings": policy.describe(),
        "all": latency_stats(result.programs),
        "trimmed": latency_stats(trimmed(result.programs)),
        "completed_per_s_in_window": completion_rate(result.programs),
        "sim_time_s": result.sim_time_s,
        "wall_time_s": result.wall_time_s,
        "num_calls": result.num_calls,
        "prefill_tokens": prefill,
        # prompt tokens computed again after a preemption (first admissions compute admitted - hits)
        "recomputed_tokens": max(0, prefill - (admitted - hits)),
        "prefix_hit_rate": hits / admitted if admitted else 0.0,
        "num_preemptions": sum(e["num_preemptions"] for e in engines),
        "max_running": max(e["max_running"] for e in engines),
        "max_waiting": max(e.get("max_waiting", 0) for e in engines),
        "busy_fraction": (sum(e["busy_s"] for e in engines) / (len(engines) * result.sim_time_s)
                          if result.sim_time_s else 0.0),
        "num_promotions": sum(c.get("num_promotions", 0) for c in counters) if counters else None,
        "wait_per_service": wait_per_service(trimmed(result.programs)),  # the anti-starvation bound, measured
    }
