"""The replay sweep: which runs, in which order, on how many processes, and their results.

A ``Plan`` lists, per workload, the programs, the arrival rates and the policies; and the
multi-engine experiment (engines x routers x rates). ``run_plan`` executes it:

1. Unloaded runs first: for each workload, the first ``unloaded_programs`` programs run
   alone (one after another, far apart) on one vLLM-opt engine and on one vLLM engine
   (no prefix caching). Their mean latency per token is the workload's unloaded latency;
   latency targets are multiples of the vLLM-opt one. (Isolated, every plugin policy
   schedules exactly like vLLM-opt: one program, nothing to reorder.)
2. Then one chain per (workload, policy) [and per (engines, router) for the multi-engine
   experiment]: its rates in increasing order, one run each. A chain stops early once a
   run's mean latency per token exceeds ``stop_factor`` x the unloaded latency: the curve
   has left every target, and the overloaded runs that follow would only cost time.
   Stopped points are reported as ``"skipped"``.

Runs execute on ``jobs`` worker processes (spawned; each imports vLLM once), longest
expected first, with a tqdm progress bar. ``jobs=1`` runs in this process.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

from autellix_ray.bench.replay.config import EngineConfig, PolicySpec, get_policy

UNLOADED_GAP_S = 1e6  # spacing of programs in the unloaded runs (far longer than any program)


@dataclass(frozen=True)
class WorkloadPlan:
    name: str
    num_programs: int
    rates: tuple[float, ...]  # programs/s, increasing
    policies: tuple[str, ...]
    ours: str  # the Autellix policy the targets are about ("plas" or "atlas")
    unloaded_programs: int
    options: dict[str, Any] = field(default_factory=dict)  # make_workload options
    extra_rates: dict[str, tuple[float, ...]] = field(default_factory=dict)  # policy -> more rates

    def rates_for(self, policy: str) -> tuple[float, ...]:
        return tuple(sorted(set(self.rates) | set(self.extra_rates.get(policy, ()))))

    @property
    def all_rates(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.rates).union(*self.extra_rates.values())))


@dataclass(frozen=True)
class MultiEnginePlan:
    workload: str
    policy: str
    programs_per_engine: int
    rates_per_engine: tuple[float, ...]  # x number of engines
    engines: tuple[int, ...] = (1, 2, 4, 8)
    routers: dict[str, tuple[str, dict[str, Any]]] = field(
        default_factory=lambda: {
            "round_robin": ("round_robin", {}),
            "least_used": ("least_used", {}),
            "autellix": ("autellix", {}),
        }
    )


@dataclass(frozen=True)
class Plan:
    seed: int
    workloads: tuple[WorkloadPlan, ...]
    multi: MultiEnginePlan | None = None
    engine: EngineConfig = EngineConfig()
    targets: tuple[float, ...] = (1.5, 2.0, 3.0, 5.0)  # x unloaded mean latency per token
    summary_target: float = 5.0  # preferred; see results.summary_target_for
    stop_factor: float = 8.0
    policy_overrides: dict[str, PolicySpec] = field(default_factory=dict)  # label -> spec (tuning sweeps)

    def policy(self, label: str) -> PolicySpec:
        return self.policy_overrides.get(label) or get_policy(label)


@dataclass(frozen=True)
class Task:
    kind: str  # "unloaded" | "sweep" | "multi"
    workload: str
    num_programs: int
    rate: float
    policy: PolicySpec
    seed: int
    engine: EngineConfig
    options: dict[str, Any]
    num_engines: int = 1
    router_label: str = "-"
    router: str = "round_robin"
    router_params: dict[str, Any] = field(default_factory=dict)
    subset: int | None = None  # unloaded runs: the first programs only

    @property
    def key(self) -> tuple:
        return (self.kind, self.workload, self.policy.name, self.num_engines, self.router_label, self.rate)

    def cost_estimate(self) -> float:
        """Rough CPU cost (relative) for longest-first ordering: decode tokens replayed."""
        per_program = {"sharegpt": 1.8, "bfcl": 0.35, "lats": 11.0, "mixed": 4.5}.get(self.workload, 2.0)
        n = self.subset or self.num_programs
        return n * per_program * (2.5 if self.kind == "unloaded" else 1.0)


def _quiet_worker() -> None:
    import logging
    import warnings

    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    warnings.simplefilter("ignore")
    logging.getLogger("vllm").setLevel(logging.ERROR)


def unloaded(workload: Any, num_programs: int) -> Any:
    """The first ``num_programs`` programs of ``workload``, each arriving alone (``UNLOADED_GAP_S`` apart)."""
    from autellix_ray.bench.workloads.model import Workload, assign_arrivals

    programs = workload.programs[:num_programs]
    arrivals = [i * UNLOADED_GAP_S for i in range(len(programs))]
    return Workload(workload.name, assign_arrivals(programs, arrivals), None, workload.seed,
                    workload.synthetic, workload.description)


def run_task(task: Task, model_path: str | None = None) -> dict[str, Any]:
    """Execute one run; returns its summary record (see ``metrics.summarize``)."""
    _quiet_worker()
    from autellix_ray.bench.replay.engine import replay
    from autellix_ray.bench.replay.metrics import summarize
    from autellix_ray.bench.workloads import make_workload

    t0 = time.process_time()
    workload = make_workload(task.workload, task.num_programs, task.rate, task.seed, **task.options)
    if task.kind == "unloaded":
        workload = unloaded(workload, task.subset)
    result = replay(
        workload, task.policy, num_engines=task.num_engines, router=task.router,
        router_params=task.router_params, engine_config=task.engine, model_path=model_path, seed=task.seed,
    )
    record = summarize(result)
    record["rate"] = task.rate if task.kind != "unloaded" else 0.0
    record["cpu_time_s"] = time.process_time() - t0
    if task.kind == "unloaded":
        record.pop("sim_time_s", None)  # dominated by the artificial gaps
        record["busy_time_s"] = record.pop("engine_busy_fraction") * result.sim_time_s
    return record


def _worker_init() -> None:
    _quiet_worker()


@dataclass
class _Chain:
    tasks: list[Task]
    stop_above_ms: float | None = None
    next_index: int = 0
    in_flight: int = 0

    @property
    def phase(self) -> str:
        return "multi" if self.tasks and self.tasks[0].kind == "multi" else "single"

    @property
    def finished(self) -> bool:
        return self.next_index >= len(self.tasks) and self.in_flight == 0


def build_chains(plan: Plan) -> tuple[list[Task], dict[str, list[_Chain]]]:
    """Unloaded tasks, and the rate chains waiting for each workload's unloaded result."""
    unloaded: list[Task] = []
    chains: dict[str, list[_Chain]] = {}
    for w in plan.workloads:
        for label in ("vllm-opt", "vllm"):
            if label in w.policies or label == "vllm-opt":
                unloaded.append(Task("unloaded", w.name, w.num_programs, 1.0, plan.policy(label), plan.seed,
                                     plan.engine, dict(w.options), subset=w.unloaded_programs))
        chains[w.name] = [
            _Chain([Task("sweep", w.name, w.num_programs, r, plan.policy(p), plan.seed, plan.engine, dict(w.options))
                    for r in w.rates_for(p)])
            for p in w.policies
        ]
    if plan.multi is not None:
        m = plan.multi
        spec = plan.policy(m.policy)
        options = next((dict(w.options) for w in plan.workloads if w.name == m.workload), {})
        if m.workload not in chains:
            unloaded.append(Task("unloaded", m.workload, m.programs_per_engine, 1.0, plan.policy("vllm-opt"),
                                 plan.seed, plan.engine, options, subset=min(40, m.programs_per_engine)))
            chains[m.workload] = []
        for n in m.engines:
            routers = m.routers.items() if n > 1 else [("-", ("round_robin", {}))]
            for label, (router, params) in routers:
                chains[m.workload].append(_Chain([
                    Task("multi", m.workload, m.programs_per_engine * n, r * n, spec, plan.seed, plan.engine, options,
                         num_engines=n, router_label=label, router=router, router_params=dict(params))
                    for r in m.rates_per_engine
                ]))
    return unloaded, chains


def run_plan(
    plan: Plan,
    *,
    jobs: int = 2,
    model_path: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    phase_times: dict[str, float] | None = None,
) -> dict[tuple, dict[str, Any]]:
    """Run every task of ``plan``; returns {task.key: record} (skipped runs are absent).

    Two phases: every single-engine run (unloaded and sweeps) finishes before the first
    multi-engine run starts, so ``phase_times["single"]`` (seconds from the start) is the
    single-engine sweep's own wall time; ``phase_times["multi"]`` is the end of the rest.
    """
    from tqdm import tqdm

    from autellix_ray.tiny_model import default_tiny_model_path

    model_path = model_path or default_tiny_model_path()
    start = time.perf_counter()
    phase_times = phase_times if phase_times is not None else {}
    unloaded, chains = build_chains(plan)
    total = len(unloaded) + sum(len(c.tasks) for cs in chains.values() for c in cs)
    bar = tqdm(total=total, desc="replay runs", unit="run", disable=not progress, dynamic_ncols=True)
    results: dict[tuple, dict[str, Any]] = {}
    ready: list[Task] = sorted(unloaded, key=lambda t: -t.cost_estimate())
    chain_of: dict[tuple, _Chain] = {}
    waiting_unloaded = {w: sum(1 for t in unloaded if t.workload == w) for w in chains}

    def release_chains(workload: str) -> None:
        ref = results.get(("unloaded", workload, "vllm-opt", 1, "-", 1.0))
        stop = plan.stop_factor * ref["mean_ms_per_token"] if ref else None
        for chain in chains[workload]:
            chain.stop_above_ms = stop
            _advance(chain)

    def _advance(chain: _Chain) -> None:
        if chain.next_index < len(chain.tasks):
            task = chain.tasks[chain.next_index]
            chain.next_index += 1
            chain.in_flight += 1
            chain_of[task.key] = chain
            ready.append(task)

    unloaded_left = [len(unloaded)]

    def single_phase_done() -> bool:
        return unloaded_left[0] == 0 and all(c.finished for cs in chains.values() for c in cs if c.phase == "single")

    def next_task() -> Task | None:
        """Longest first; multi-engine runs only once the single-engine phase is over."""
        ready.sort(key=lambda t: (t.kind == "multi", -t.cost_estimate()))
        if ready and (ready[0].kind != "multi" or single_phase_done()):
            if ready[0].kind == "multi" and "single" not in phase_times:
                phase_times["single"] = time.perf_counter() - start
            return ready.pop(0)
        return None

    def done(task: Task, record: dict[str, Any]) -> None:
        results[task.key] = record
        bar.update(1)
        bar.set_postfix_str(f"{task.workload} {task.policy.name} x{task.num_engines} r={task.rate:g}", refresh=False)
        if log is not None:
            log(f"{task.kind} {task.workload} {task.policy.name} engines={task.num_engines} {task.router_label} "
                f"rate={task.rate:g}: {record['mean_ms_per_token']:.2f} ms/token "
                f"(cpu {record['cpu_time_s']:.1f}s, sim {record.get('sim_time_s', 0):.0f}s)")
        if task.kind == "unloaded":
            unloaded_left[0] -= 1
            waiting_unloaded[task.workload] -= 1
            if waiting_unloaded[task.workload] == 0:
                release_chains(task.workload)
            return
        chain = chain_of.pop(task.key)
        chain.in_flight -= 1
        if chain.stop_above_ms is not None and record["mean_ms_per_token"] > chain.stop_above_ms:
            skipped = len(chain.tasks) - chain.next_index
            chain.next_index = len(chain.tasks)
            if skipped:
                bar.total -= skipped
                bar.refresh()
        _advance(chain)

    for w, n in waiting_unloaded.items():
        if n == 0:
            release_chains(w)
    try:
        if jobs <= 1:
            while ready:
                task = next_task()
                assert task is not None, "no runnable task while runs are pending"
                done(task, run_task(task, model_path))
        else:
            import multiprocessing as mp

            with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"),
                                     initializer=_worker_init) as pool:
                running: dict[Future, Task] = {}
                while ready or running:
                    while len(running) < jobs and (task := next_task()) is not None:
                        running[pool.submit(run_task, task, model_path)] = task
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                    for fut in finished:
                        task = running.pop(fut)
                        done(task, fut.result())
    finally:
        bar.close()
    phase_times.setdefault("single", time.perf_counter() - start)
    phase_times["multi"] = time.perf_counter() - start
    return results


def scaled(plan: Plan, **changes: Any) -> Plan:
    return replace(plan, **changes)


def is_finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)
