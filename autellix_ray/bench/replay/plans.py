"""The sweeps the CLI runs: the full benchmark and the ``--quick`` CI smoke test.

Budget. The simulation's cost is vLLM's own Python scheduler: 25-60 us of CPU per
scheduled request per step (the upper end at small batches, where the per-step overhead is
not shared; multi-engine runs, with smaller batches per engine, cost ~100 us), so a run
costs roughly (decode tokens replayed) x 40 us. The full single-engine sweep is sized to
~2,500 CPU-seconds, about 20 minutes on 2 idle cores (measured time is in the results
file); the multi-engine experiment adds ~10 minutes.

Rates. Chosen around each workload's measured capacity on the simulated A100: the rate at
which vLLM-opt drains a burst of the same programs (ShareGPT 1.1, BFCL 8.2, LATS 0.37,
Mixed 0.78 programs/s; close to the top of the paper's ranges: ShareGPT 0-4, BFCL 0.2-0.8,
LATS 0.1-0.3, Mixed 0.2-0.8). Each sweep spans about 0.5x, 1x and 2x that capacity, then a
burst (the whole set arriving within a few seconds), the most overloaded point a finite
run can have. The vLLM baseline (no prefix caching) saturates earlier and gets one extra
lower rate (``extra_rates``).

Programs per run. vLLM V1 batches up to 256 calls at once, so until 256 calls are in
flight (or the KV cache is full) no call waits and every policy schedules the same
batches. The counts are the largest that keep the sweep within the budget; ShareGPT,
BFCL and Mixed exceed 256 concurrent calls at their burst. The calibration runs (bursts,
vLLM-opt next to the SRPT oracle) showed how little any order can gain here: SRPT's mean
latency per token was 1.18x lower on ShareGPT (400 programs), 1.46x on BFCL (600) and
1.01x on LATS (60): see docs/replay.md.
"""

from __future__ import annotations

from autellix_ray.bench.replay.sweep import MultiEnginePlan, Plan, WorkloadPlan

ROUTERS = {
    "round_robin": ("round_robin", {}),
    "least_used": ("least_used", {}),
    "autellix": ("autellix", {}),  # Algorithm 2 as in the paper (2048-token threshold)
    "autellix_pin_all": ("autellix", {"short_prompt_tokens": 0}),  # tuned: every call follows its pin
}
SINGLE_THREADED = ("vllm", "vllm-opt", "mlfq", "plas", "srpt")
MULTI_THREADED = ("vllm", "vllm-opt", "mlfq", "atlas", "srpt")


def full_plan(seed: int = 0) -> Plan:
    return Plan(
        seed=seed,
        workloads=(
            WorkloadPlan("sharegpt", 300, (0.5, 1.0, 2.0, 32.0), SINGLE_THREADED, "plas", 30,
                         extra_rates={"vllm": (0.25,)}),
            WorkloadPlan("bfcl", 500, (4.0, 8.0, 16.0, 100.0), SINGLE_THREADED, "plas", 60,
                         extra_rates={"vllm": (2.0,)}),
            WorkloadPlan("lats", 40, (0.2, 0.4, 0.8, 10.0), MULTI_THREADED, "atlas", 8,
                         extra_rates={"vllm": (0.1,)}),
            WorkloadPlan("mixed", 100, (0.4, 0.8, 1.6, 10.0), MULTI_THREADED, "atlas", 24,
                         extra_rates={"vllm": (0.2,)}),
        ),
        multi=MultiEnginePlan(
            workload="sharegpt",
            policy="plas",
            programs_per_engine=40,
            rates_per_engine=(1.0, 4.0),
            routers=ROUTERS,
        ),
    )


def quick_plan(seed: int = 0) -> Plan:
    """A few programs per workload, two rates: exercises every code path in seconds."""
    return Plan(
        seed=seed,
        workloads=(
            WorkloadPlan("sharegpt", 6, (2.0, 20.0), ("vllm-opt", "plas"), "plas", 2,
                         options={"max_context_tokens": 2048}),
            WorkloadPlan("lats", 2, (1.0, 10.0), ("vllm-opt", "mlfq", "atlas", "srpt"), "atlas", 1,
                         options={"max_iterations": 2}),
        ),
        multi=MultiEnginePlan(
            workload="sharegpt",
            policy="plas",
            programs_per_engine=4,
            rates_per_engine=(4.0,),
            engines=(1, 2),
        ),
    )
