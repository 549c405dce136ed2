"""The regime map: every policy's latency across the load axis, at steady state, per workload and GPU.

    python -m autellix_ray.bench.replay.regime                      # the full map, merged into docs/
    python -m autellix_ray.bench.replay.regime --medium             # a subset (not yet timed end to end)
    python -m autellix_ray.bench.replay.regime --quick --out-dir /tmp/regime   # CI smoke test
    python -m autellix_ray.bench.replay.regime --cell "bfcl a100-80gb" --policy vllm-opt --policy autellix

A *cell* is a (workload, GPU preset). Per cell, in this order (``run`` schedules them on
``--workers`` processes, cells in plan order, a cell's later runs once its earlier ones are in):

1. **Unloaded**: the first ``unloaded_programs`` programs, each alone on one vLLM-opt engine
   (programs spaced far apart): the mean program latency ``U`` (seconds) and mean latency per
   token. ``U`` sizes the runs below; the paper's targets are multiples of the per-token one.
2. **Capacity, measured**: vLLM-opt on an overloaded run; capacity = programs completed in the
   middle ``1 - 2 TRIM`` of the arrival window / that window's length. A run counts as
   overloaded when programs arrived in that window faster than they completed (arrivals /
   completions >= ``OVERLOADED_IF``: the backlog grew throughout). Deep overload understates
   capacity (vLLM-opt's FCFS thrashes its prefix cache as the backlog grows: BFCL completes
   8/s at 30/s offered, ~12/s just above capacity), so the search (``next_capacity_rate``)
   starts just above the cell's guess, raises the rate x1.5 while a run keeps up, and after a
   deep overload (arrivals / completions > ``DEEP_OVERLOAD``) retries just above what it
   measured; capacity = the highest completion rate of an overloaded try, or at a cliff
   (overloaded tries thrash below what a lighter try sustained) that sustained rate (``choose_capacity``).
3. **Sweep**: every policy at ``LOADS`` x capacity. A point replays
   ``clamp(ceil(WINDOW_FACTOR x U x rate), min_programs, max_programs)`` programs, so the
   arrival window is at least ``WINDOW_FACTOR`` x U long (``window_ok`` says whether the cap
   allowed it). Every policy replays the same programs (same seed).

Per run: program latency mean/P50/P95/P99 over all programs and over the programs arriving in the
middle 80% of the arrival window (warm-up and drain trimmed), latency per token, completed
programs/s in that window, prefix-cache hit rate, prefill tokens and how many of them re-computed
context after a preemption, preemptions, most calls running / waiting, busy fraction. Rows are
merged into ``<out-dir>/results/replay.json`` (key ``regime_map``) after every run, so a stopped
map resumes where it stopped (``--rerun`` replaces rows); each row records its commit.
``regime_report`` turns the rows into the targets, the table and the figure.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")

from autellix_ray.bench.replay.config import EngineConfig, PolicySpec, get_policy
from autellix_ray.bench.replay.metrics import TRIM, run_row, trimmed_window

LOADS = (0.5, 0.7, 0.85, 1.0, 1.2, 1.5, 2.0, 3.0)  # x measured capacity
WINDOW_FACTOR = 10.0  # arrival window >= this x the unloaded mean program latency
FIRST_TRY = 1.25  # the first capacity run's rate, x the cell's guess
OVERLOADED_IF = 1.1  # arrivals / completions in the middle window at or above this: overloaded
DEEP_OVERLOAD = 1.5  # ... above this, the completion rate may be a thrashing one: retry closer
RAISE = 1.5  # a run that kept up: the next try's rate, x this one's
MAX_CAPACITY_TRIES = 5
MIN_COMPLETIONS = 20  # fewer completions in the capacity window: measured over the whole run instead
A100_80 = "a100-80gb/llama-3.1-8b"
A100_40 = "a100-40gb/llama-3.1-8b"
BASELINES = ("vllm", "mlfq")  # the truthful baselines beyond the core four


@dataclass(frozen=True)
class Cell:
    workload: str
    preset: str
    capacity_guess: float  # programs/s; only where the capacity search starts
    min_programs: int
    max_programs: int
    unloaded_programs: int
    multi_threaded: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.workload} {self.preset.split('/')[0]}"

    @property
    def ours(self) -> str:
        return "autellix-atlas" if self.multi_threaded else "autellix"

    @property
    def paper(self) -> str:
        return "atlas" if self.multi_threaded else "plas"

    def policies(self) -> tuple[str, ...]:
        """vLLM-opt (the guard), our default, program-FCFS, the oracle; then the paper's and the baselines."""
        return ("vllm-opt", self.ours, "program-fcfs", "srpt", self.paper, *BASELINES)

    def num_programs(self, rate: float, unloaded_s: float, window_factor: float = WINDOW_FACTOR) -> int:
        want = math.ceil(window_factor * unloaded_s * rate)
        return int(min(max(want, self.min_programs), self.max_programs))


# workload: (A100-80GB capacity guess, A100-40GB guess, min programs, max programs, unloaded programs, DAG).
# Guesses only start the capacity search. Single-threaded chat/tool workloads replay >= 1000 programs
# (the floor); DAG and coding programs are 5-40x longer, so their floor is what a window of
# WINDOW_FACTOR x the unloaded latency needs, with a cap that keeps the full map within hours.
CELL_SPECS: dict[str, tuple[float, float, int, int, int, bool]] = {
    "bfcl": (12.0, 6.0, 1000, 4000, 60, False),
    "sharegpt": (1.5, 0.8, 1000, 3000, 30, False),
    "moa": (1.0, 0.5, 300, 1200, 10, True),
    "mixed": (0.8, 0.4, 300, 1500, 24, True),
    "lats": (0.35, 0.2, 120, 400, 8, True),
    "coding": (0.06, 0.03, 100, 250, 6, False),
}


def _cells(scale: float = 1.0, presets: tuple[str, ...] = (A100_80, A100_40)) -> tuple[Cell, ...]:
    """Every workload on every preset; program counts x ``scale``."""
    n = lambda x: max(4, int(x * scale))
    return tuple(
        Cell(name, preset, spec[0] if preset == A100_80 else spec[1], n(spec[2]), n(spec[3]), spec[4],
             multi_threaded=spec[5])
        for preset in presets for name, spec in CELL_SPECS.items()
    )


@dataclass(frozen=True)
class RegimePlan:
    name: str
    cells: tuple[Cell, ...]
    loads: tuple[float, ...] = LOADS
    core_only: bool = False  # vllm-opt, ours, program-fcfs, srpt (no paper preset / baselines)
    seed: int = 0
    window_factor: float = WINDOW_FACTOR  # arrival window >= this x the unloaded mean latency (within the cap)

    def policies(self, cell: Cell) -> tuple[str, ...]:
        return cell.policies()[:4] if self.core_only else cell.policies()


def full_plan() -> RegimePlan:
    return RegimePlan("full", _cells())


def medium_plan() -> RegimePlan:
    """A100-80GB only, the four core policies, five loads, 0.4x the programs (BFCL and ShareGPT 400),
    window 5x unloaded. Not yet timed end to end: the DAG and coding cells cost the most (a Mixed run
    of 1,149 programs takes ~400 s here), so it may exceed the 20 minutes the issue asks of it."""
    cells = _cells(0.4, presets=(A100_80,))
    return RegimePlan("medium", cells, loads=(0.5, 0.85, 1.2, 2.0, 3.0), core_only=True, window_factor=5.0)


def quick_plan() -> RegimePlan:
    """One tiny cell, two loads, three policies: exercises every code path in seconds."""
    cell = Cell("sharegpt", A100_80, 4.0, 8, 12, 2, options={"max_context_tokens": 2048})
    return RegimePlan("quick", (cell,), loads=(0.5, 2.0), core_only=True)


# ---------------------------------------------------------------------------- measurement

def measure_capacity(arrivals: list[float], finishes: list[float]) -> dict[str, Any]:
    """Completion rate in the middle of the arrival window, and whether the run was overloaded.

    ``arrivals`` / ``finishes``: per program, simulated seconds. Pure (unit-tested).
    """
    lo, hi = trimmed_window(arrivals)
    span = hi - lo
    arrived = sum(1 for a in arrivals if lo <= a <= hi)
    completed = sum(1 for f in finishes if lo <= f <= hi)
    pressure = arrived / completed if completed else math.inf
    out = {"window_s": span, "arrived_in_window": arrived, "completed_in_window": completed,
           "arrivals_per_completion": pressure, "overloaded": pressure >= OVERLOADED_IF}
    if completed >= MIN_COMPLETIONS and span > 0:
        return {**out, "capacity": completed / span, "measured_over": "window"}
    # Too few programs finished inside the window to count (tiny runs): the whole run's drain rate,
    # programs / (last finish - first arrival), which is at most the capacity.
    makespan = max(finishes) - min(arrivals)
    return {**out, "capacity": len(finishes) / makespan, "measured_over": "whole run"}


def next_capacity_rate(tries: list[dict[str, Any]], guess: float) -> float | None:
    """The next capacity run's rate, or None when the search is over (pure; see the module header)."""
    if not tries:
        return FIRST_TRY * guess
    last = tries[-1]
    if len(tries) >= MAX_CAPACITY_TRIES:
        return None
    if not last["overloaded"]:
        return RAISE * last["rate"]
    if last["arrivals_per_completion"] > DEEP_OVERLOAD and not any(
            t["overloaded"] and t["arrivals_per_completion"] <= DEEP_OVERLOAD for t in tries):
        closer = FIRST_TRY * max(t["capacity"] for t in tries)
        if all(abs(closer - t["rate"]) > 0.05 * t["rate"] for t in tries):
            return closer
    return None


def choose_capacity(tries: list[dict[str, Any]]) -> dict[str, Any]:
    """The highest completion rate of an overloaded try; without one, the highest (a lower bound).

    A cliff: when every overloaded try completed less than 1 / ``DEEP_OVERLOAD`` of what a try that
    kept up sustained, those tries measured thrashing, not capacity (BFCL on A100-40GB keeps up at
    9.65/s and completes 4.7/s at 11.25/s offered); then the capacity is the highest rate sustained.
    """
    overloaded = [t for t in tries if t["overloaded"]]
    best = max(overloaded or tries, key=lambda t: t["capacity"])
    sustained = max((t for t in tries if not t["overloaded"]), key=lambda t: t["capacity"], default=None)
    if overloaded and sustained is not None and best["capacity"] * DEEP_OVERLOAD < sustained["capacity"]:
        return {**sustained, "chosen_because": "cliff: overloaded tries thrashed below what this one sustained"}
    return best


@dataclass(frozen=True)
class Task:
    kind: str  # "unloaded" | "capacity" | "point"
    cell: Cell
    policy: PolicySpec
    num_programs: int
    rate: float
    load: float | None = None  # x capacity (points)
    seed: int = 0

    @property
    def cost(self) -> float:
        return self.num_programs / max(self.cell.min_programs, 1)


def run_task(task: Task) -> dict[str, Any]:
    from autellix_ray.bench.replay.ablation import git_commit
    from autellix_ray.bench.replay.engine import replay
    from autellix_ray.bench.replay.sweep import _quiet_worker, unloaded
    from autellix_ray.bench.workloads import make_workload

    _quiet_worker()
    workload = make_workload(task.cell.workload, task.num_programs, task.rate, task.seed, **task.cell.options)
    if task.kind == "unloaded":
        workload = unloaded(workload, task.cell.unloaded_programs)
    result = replay(workload, task.policy, engine_config=EngineConfig(preset=task.cell.preset), seed=task.seed)
    row = {"policy": task.policy.name, "commit": git_commit(), "rate": task.rate, **run_row(result, task.policy)}
    if task.kind == "unloaded":
        row = {"commit": row["commit"], "num_programs": len(result.programs),
               "mean_s": row["all"]["mean_s"], "mean_ms_per_token": row["all"]["mean_ms_per_token"],
               "wall_time_s": row["wall_time_s"]}
    elif task.kind == "capacity":
        row["capacity"] = measure_capacity([p.arrival_s for p in result.programs],
                                           [p.finish_s for p in result.programs])
    return row


# ---------------------------------------------------------------------------- results file

_NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _restore(value: Any) -> Any:
    """Undo ``save_doc``'s JSON-safe strings: "inf", "-inf", "nan" are floats again."""
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def load_doc(path: Path) -> dict[str, Any]:
    return _restore(json.loads(path.read_text())) if path.exists() else {}


def save_doc(path: Path, doc: dict[str, Any]) -> None:
    """Atomic write: a stopped run never leaves a half-written results file."""
    from autellix_ray.bench.replay.__main__ import _clean

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_clean(doc), indent=1, allow_nan=False) + "\n")
    tmp.replace(path)


def cell_entry(regime: dict[str, Any], cell: Cell) -> dict[str, Any]:
    entry = regime.setdefault("cells", {}).setdefault(cell.label, {})
    entry.update({"workload": cell.workload, "preset": cell.preset, "ours": cell.ours, "paper": cell.paper,
                  "min_programs": cell.min_programs, "max_programs": cell.max_programs,
                  "multi_threaded": cell.multi_threaded})
    entry.setdefault("points", {})
    return entry


# ---------------------------------------------------------------------------- scheduling

class Runner:
    """Executes a plan cell by cell on a process pool, writing every row as it lands."""

    def __init__(self, plan: RegimePlan, path: Path, *, workers: int, policies: list[str] | None,
                 cells: list[str] | None, rerun: bool, progress: bool = True, loads: list[float] | None = None) -> None:
        self.plan, self.path, self.workers, self.rerun = plan, path, workers, rerun
        self.loads = loads  # only these loads (x capacity); None: the plan's
        self.cells = [c for c in plan.cells if not cells or any(c.label.startswith(s) for s in cells)]
        self.only = policies
        self.doc = load_doc(path)
        self.regime = self.doc.setdefault("regime_map", {})
        self.regime.update({"plan": plan.name, "loads": list(plan.loads), "trim_fraction": TRIM,
                            "window_factor": plan.window_factor, "overloaded_if": OVERLOADED_IF})
        self.regime.setdefault("commands", [])
        self.progress = progress
        self.ready: list[Task] = []
        self.measured: set[str] = set()  # cells whose capacity this run measured

    def _policies(self, cell: Cell) -> list[str]:
        """The plan's policies (``--policy`` filters them; "autellix" names ours in DAG cells too), plus
        any ablation row asked for ("-starvation": our default with that mechanism off; "+beta=4": with
        that setting)."""
        names = self.plan.policies(cell)
        keep = [n for n in names if not self.only or n in self.only or (n == cell.ours and "autellix" in self.only)]
        return keep + [n for n in self.only or () if n.startswith(("-", "+"))]

    @staticmethod
    def _spec(cell: Cell, name: str) -> PolicySpec:
        from autellix_ray.bench.replay.ablation import row_policy

        return row_policy(name, cell.ours)

    def _have(self, entry: dict[str, Any], key: str, policy: str) -> bool:
        return not self.rerun and policy in entry["points"].get(key, {}).get("policies", {})

    def _start_cell(self, cell: Cell) -> None:
        entry = cell_entry(self.regime, cell)
        if self.rerun:
            entry.pop("unloaded", None)
        if "unloaded" in entry:
            self._after_unloaded(cell)
        else:
            self.ready.append(Task("unloaded", cell, get_policy("vllm-opt"), cell.unloaded_programs, 1.0,
                                   seed=self.plan.seed))

    def _after_unloaded(self, cell: Cell) -> None:
        """The next capacity run, or (search over) the points."""
        entry = cell_entry(self.regime, cell)
        tries = entry.get("capacity_tries", [])
        if self.rerun and cell.label not in self.measured:
            tries = entry["capacity_tries"] = []
        rate = next_capacity_rate(tries, cell.capacity_guess)
        if rate is None:
            entry["capacity"] = choose_capacity(tries)
            self._queue_points(cell)
            return
        n = cell.num_programs(rate, entry["unloaded"]["mean_s"], self.plan.window_factor)
        self.ready.append(Task("capacity", cell, get_policy("vllm-opt"), n, rate, seed=self.plan.seed))

    def _queue_points(self, cell: Cell) -> None:
        entry = cell_entry(self.regime, cell)
        capacity = entry["capacity"]["capacity"]
        for load in self.plan.loads:
            if self.loads and load not in self.loads:
                continue
            rate = round(load * capacity, 6)
            n = cell.num_programs(rate, entry["unloaded"]["mean_s"], self.plan.window_factor)
            key = f"{load:g}"
            point = entry["points"].setdefault(key, {})
            if point.get("rate") != rate or point.get("num_programs") != n:
                point.clear()  # a new capacity or count: old rows are for other programs
            point.update({"load": load, "rate": rate, "num_programs": n,
                          "window_s": n / rate,
                          "window_ok": n / rate >= self.plan.window_factor * entry["unloaded"]["mean_s"]})
            point.setdefault("policies", {})
            for name in self._policies(cell):
                if not self._have(entry, key, name):
                    self.ready.append(Task("point", cell, self._spec(cell, name), n, rate, load, self.plan.seed))

    def _record(self, task: Task, row: dict[str, Any]) -> None:
        entry = cell_entry(self.regime, task.cell)
        if task.kind == "unloaded":
            entry["unloaded"] = row
            self._after_unloaded(task.cell)
        elif task.kind == "capacity":
            entry.setdefault("capacity_tries", []).append({
                **row.pop("capacity"), "rate": task.rate, "num_programs": task.num_programs,
                "commit": row["commit"], "mean_s": row["trimmed"]["mean_s"], "wall_time_s": row["wall_time_s"]})
            self.measured.add(task.cell.label)
            self._after_unloaded(task.cell)
        else:
            entry["points"][f"{task.load:g}"]["policies"][task.policy.name] = row
        save_doc(self.path, self.doc)

    def run(self, command: str) -> None:
        from tqdm import tqdm

        t0 = time.perf_counter()
        for cell in self.cells:
            self._start_cell(cell)
        bar = tqdm(desc="regime map runs", unit="run", disable=not self.progress, file=sys.stderr)
        order = {c.label: i for i, c in enumerate(self.cells)}
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn")) as pool:
            running: dict[Future, Task] = {}
            while self.ready or running:
                # Earlier cells first (they finish, and can be read, one after another); longest first inside.
                self.ready.sort(key=lambda t: (order[t.cell.label], -t.cost))
                while self.ready and len(running) < self.workers:
                    task = self.ready.pop(0)
                    running[pool.submit(run_task, task)] = task
                bar.total = bar.n + len(running) + len(self.ready)
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    task = running.pop(fut)
                    self._record(task, fut.result())
                    bar.update(1)
                    bar.set_postfix_str(f"{task.cell.label} {task.kind} {task.policy.name} r={task.rate:.3g}")
        bar.close()
        self.regime["commands"].append(f"{command}  # {(time.perf_counter() - t0) / 60:.1f} min")
        save_doc(self.path, self.doc)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m autellix_ray.bench.replay.regime",
                                     description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="one tiny cell, two loads (CI smoke test)")
    size.add_argument("--medium", action="store_true", help="A100-80GB, core policies, five loads, fewer programs")
    parser.add_argument("--out-dir", default="docs", help="results/replay.json, replay.md and figures/ go here")
    parser.add_argument("--workers", type=int, default=2, help="replay processes in parallel")
    parser.add_argument("--cell", action="append", default=[],
                        help="only cells whose label starts with this, e.g. 'bfcl a100-80gb' (repeatable)")
    parser.add_argument("--policy", action="append", default=[],
                        help="only these policies (repeatable); an ablation row adds our default with one "
                             "mechanism off, e.g. --policy=-starvation, a variant row with settings changed, "
                             "e.g. --policy=+beta_vs_median=2")
    parser.add_argument("--load", action="append", type=float, default=[],
                        help="only these loads, x capacity (repeatable), e.g. --load 3")
    parser.add_argument("--rerun", action="store_true", help="replace rows that exist instead of skipping them")
    parser.add_argument("--render-only", action="store_true", help="no runs: rewrite the summary, report, figure")
    args = parser.parse_args(argv)
    plan = quick_plan() if args.quick else medium_plan() if args.medium else full_plan()
    from autellix_ray.bench.replay.ablation import row_policy

    for name in (n for n in args.policy if n.startswith(("-", "+"))):
        try:
            row_policy(name)
        except ValueError as exc:
            parser.error(str(exc))
    known = {c.label for c in plan.cells}
    if args.cell and not any(lb.startswith(s) for s in args.cell for lb in known):
        parser.error(f"no cell matches {args.cell}; cells: {sorted(known)}")
    out = Path(args.out_dir)
    path = out / "results" / "replay.json"
    if not args.render_only:
        unknown = sorted(set(args.load) - set(plan.loads))
        if unknown:
            parser.error(f"load(s) {unknown} not in the plan's {list(plan.loads)}")
        runner = Runner(plan, path, workers=args.workers, policies=args.policy or None, cells=args.cell or None,
                        rerun=args.rerun, loads=args.load or None)
        runner.run("python -m autellix_ray.bench.replay.regime " + shlex.join(argv))
    from autellix_ray.bench.replay.regime_report import write_regime

    print(write_regime(path, out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
