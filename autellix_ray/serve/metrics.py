"""Prometheus metrics of autellix-ray, exported by Ray's metrics agent next to vLLM's own.

Ray Serve LLM exports the engines' vLLM metrics; these add the program view. They
are ``ray.util.metrics`` objects, so every replica and actor reports them through
Ray's Prometheus endpoint (``ray.init(_metrics_export_port=...)`` or the node's
metrics port) with the ``ray_`` prefix, e.g. ``ray_autellix_call_wait_seconds``.
"""

from __future__ import annotations

from functools import cache

import ray
from ray.util.metrics import Counter, Gauge, Histogram

from autellix_ray.core import TableHooks

_SECONDS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]


@cache
def replica_metrics() -> dict:
    return {
        "service": Histogram("autellix_call_service_seconds", "Engine time credited to a finished call",
                             boundaries=_SECONDS),
        "wait": Histogram("autellix_call_wait_seconds", "Time a finished call spent queued", boundaries=_SECONDS),
        "level": Counter("autellix_calls_by_final_queue_total", "Finished calls by their final queue level",
                         tag_keys=("level",)),
        "preemptions": Counter("autellix_preemptions_total", "Preemptions of finished calls"),
        "promotions": Counter("autellix_promotions_total", "Anti-starvation promotions of finished calls"),
        "demotions": Counter("autellix_demotions_total", "Queue demotions of finished calls"),
        "recomputed": Counter("autellix_recomputed_tokens_total", "Tokens recomputed after preemption"),
    }


@cache
def router_metrics() -> dict:
    return {
        "decisions": Counter("autellix_router_decisions_total",
                             "Routing decisions of long-prompt calls by outcome (pinned = locality hit)",
                             tag_keys=("reason",)),
        "fallbacks": Counter("autellix_router_fallbacks_total", "Calls routed least-used because the router "
                             "actor did not answer"),
    }


@cache
def table_metrics() -> dict:
    return {
        "programs": Gauge("autellix_programs", "Programs in the program table"),
        "program_latency": Histogram("autellix_program_latency_seconds",
                                     "Program latency (start to end) of ended programs", boundaries=_SECONDS),
    }


class TableMetrics(TableHooks):
    """The program table service's hooks as Prometheus metrics (no-ops outside a Ray worker)."""

    def num_programs(self, num_programs: int) -> None:
        if ray.is_initialized():
            table_metrics()["programs"].set(num_programs)

    def program_ended(self, latency_s: float) -> None:
        if ray.is_initialized():
            table_metrics()["program_latency"].observe(latency_s)


def count_decisions(counts: dict[str, int]) -> None:
    """The router service's decisions by reason since its last call (no-op outside a Ray worker)."""
    if ray.is_initialized():
        for reason, n in counts.items():
            router_metrics()["decisions"].inc(n, tags={"reason": reason})


def record_call(report: dict) -> None:
    m = replica_metrics()
    m["service"].observe(float(report.get("service_s", 0.0)))
    m["wait"].observe(float(report.get("wait_s", 0.0)))
    m["level"].inc(1, tags={"level": str(report.get("final_level", 0))})
    for key, name in (("preemptions", "num_preemptions"), ("promotions", "num_promotions"),
                      ("demotions", "num_demotions"), ("recomputed", "num_recomputed_tokens")):
        if report.get(name):
            m[key].inc(int(report[name]))


@cache
def ingress_metrics() -> dict:
    return {
        "retried": Counter("autellix_ingress_retried_calls_total",
                           "Calls retried on another replica because theirs died before answering"),
        "rejected": Counter("autellix_ingress_rejected_total", "Requests turned away at the ingress by reason",
                            tag_keys=("reason",)),
    }


def count_ingress(name: str, reason: str | None = None) -> None:
    """Count an ingress event (no-op outside a Ray worker, e.g. in unit tests)."""
    if ray.is_initialized():
        ingress_metrics()[name].inc(1, tags={"reason": reason} if reason else None)
