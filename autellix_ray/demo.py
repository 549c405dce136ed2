"""The README's demo command.

What it runs today: the policy core (FCFS, MLFQ, PLAS, ATLAS) on a one-call-at-a-
time simulated server, with a seeded mix of long chat programs and short
tool-loop programs, and prints mean and P95 program latency per policy. It is a
simulation of the scheduling policies, not a model server: the live demo (Ray
Serve, vLLM CPU engines, the tiny model) replaces it when the deployment lands.
"""

from __future__ import annotations

import argparse
import random
import statistics

from autellix_ray.bench.single_server import run_single_server
from autellix_ray.core import make_scheduling_policy

POLICIES = ("fcfs", "mlfq", "plas", "atlas")


def synthetic_programs(num_programs: int, rate_per_s: float, seed: int) -> dict[str, tuple[float, list[float]]]:
    """Chat-like programs (a few long calls) mixed with ReAct-like ones (many short calls)."""
    rng = random.Random(seed)
    programs, now = {}, 0.0
    for i in range(num_programs):
        now += rng.expovariate(rate_per_s)
        if rng.random() < 0.3:
            calls = [round(rng.uniform(1.0, 3.0), 2) for _ in range(rng.randint(2, 6))]
        else:
            calls = [round(rng.uniform(0.05, 0.3), 2) for _ in range(rng.randint(3, 12))]
        programs[f"prog{i:03d}"] = (now, calls)
    return programs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=200)
    parser.add_argument("--rate", type=float, default=0.22, help="program arrivals per simulated second")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    programs = synthetic_programs(args.programs, args.rate, args.seed)
    work = sum(sum(calls) for _, calls in programs.values())
    span = max(arrival for arrival, _ in programs.values())
    print("Policy-core simulation (one call at a time, simulated clock; not a model server).")
    print(f"{len(programs)} programs, offered load {work / span:.2f} of the server, seed {args.seed}\n")
    print(f"{'policy':<8}{'mean latency s':>16}{'P95 latency s':>16}{'mean wait/service':>20}")
    for name in POLICIES:
        results = run_single_server(make_scheduling_policy(name), programs, tick_s=0.01)
        latency = [r.latency_s for r in results.values()]
        ratio = [r.wait_s / r.service_s for r in results.values()]
        print(
            f"{name:<8}{statistics.mean(latency):>16.2f}{percentile(latency, 0.95):>16.2f}"
            f"{statistics.mean(ratio):>20.2f}"
        )


if __name__ == "__main__":
    main()
