"""Scheduler overhead: the whole engine step of the Autellix plugin versus stock vLLM.

No model runs: schedulers are driven offline (``autellix_ray.vllm.offline``: a fake KV
cache, made-up outputs, the plugin on a fake clock advancing ``STEP_S`` per step), so the
figures are pure scheduling cost. A *step* is one ``schedule()`` plus one
``update_from_output`` (the plugin accounts service, demotes and promotes there); making
up the model output and advancing the clock are not timed. ``schedule()`` alone is
reported beside it.

Cases (each stock vLLM versus the plugin, given the same requests):

- ``churn``: ``running`` decoding calls fill max_num_seqs and ``waiting`` calls queue
  behind them. Running calls have staggered lengths, so in every timed step one finishes
  and a waiting call is admitted: the plugin re-sorts its running calls every step. Every
  call stays in Q1, so no demotion, promotion or preemption happens (checked).
- ``events``: a closed loop of agent programs. ``running + waiting`` calls are live at
  all times: when a call finishes, its program sends its next call (``CALLS_PER_PROGRAM``
  calls, then a new program takes its place). Decode lengths vary, and the plugin runs
  with ``--event-settings``: queue boundaries of a few steps (calls are demoted while
  they run), a small anti-starvation ratio swept every step (programs that queued long
  are promoted), so promoted calls and new programs' first calls outrank demoted running
  calls and are admitted by proactive preemption. The counts of demotions, promotions and
  proactive preemptions during the timed steps are recorded: the reader sees they happened.
- ``mode``: ``sync`` is vLLM's ``Scheduler`` against ``AutellixScheduler`` (CPU engines);
  ``async`` is vLLM's ``AsyncScheduler`` against ``AutellixAsyncScheduler`` (GPU engines),
  driven as an async engine drives them: step N+1 is scheduled before step N's output is
  processed.

Timing: ``--rounds`` blocks of ``--steps`` timed steps per case. In a block the two
schedulers take steps in alternation (stock, plugin, stock, ...; which goes first
alternates by block) so machine noise falls on both. A block's ratio is the plugin's
median step time over stock's; the result is the geometric mean of the block ratios with
a 95% t interval (``bench/ci.py``); the mean-time ratio is reported too (it weighs the
rare expensive steps, e.g. preemptions). ``churn`` rebuilds both schedulers for every
block (its running calls run out); ``events`` keeps stepping the same pair.

    python -m autellix_ray.bench.scheduler_overhead                     # 6 minutes here, shared box
    python -m autellix_ray.bench.scheduler_overhead --policy atlas --settings '{"beta": 4}'

Writes docs/results/scheduler_overhead.json (with the plugin settings of every case)
and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autellix_ray.bench.ci import fmt, mean_ci, ratio_ci, source_commit

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results" / "scheduler_overhead.json"
STEP_S = 0.001  # fake-clock time of one step (the service every scheduled call receives)
CHURN_CONFIGS = ((64, 256), (64, 2048), (256, 256), (256, 2048))
EVENT_CONFIGS = ((64, 256), (256, 1024))
ASYNC_CONFIGS = {"churn": ((256, 2048),), "events": ((64, 256),)}
CALLS_PER_PROGRAM = 4
# Demote after 4, 8, 16, ... ms of service (steps of STEP_S); promote a call whose program
# waited twice its service, checked every step (the absolute rule: with the default relative
# bar, programs this alike are never starved compared to the median one, so nothing would be
# promoted); the plugin's default preemption bound.
EVENT_SETTINGS = {
    "boundaries_s": [0.0, 0.004, 0.008, 0.016, 0.032, 0.064],
    "beta": 2.0,
    "beta_vs_median": None,
    "reevaluate_every_steps": 1,
}
COUNTERS = ("num_demotions", "num_promotions", "num_proactive_preemptions")


@dataclass(frozen=True)
class Case:
    workload: str  # churn | events
    mode: str  # sync | async
    running: int
    waiting: int


# -- schedulers -------------------------------------------------------------------------


def make(model_path: str, case: Case, policy: str | None, settings: dict[str, Any]):
    """A scheduler for ``case``: stock vLLM (policy None) or the plugin, sync or async."""
    from vllm.v1.core.sched.async_scheduler import AsyncScheduler

    from autellix_ray.vllm import AutellixAsyncScheduler
    from autellix_ray.vllm.offline import BLOCK_SIZE, FakeClock, make_scheduler

    if case.workload == "churn":
        blocks = (case.running + case.waiting) * 4 + 64
    else:  # every live call at its longest: never short of KV
        longest = 32 + 8 * CALLS_PER_PROGRAM + event_max_decode(case)
        blocks = (case.running + case.waiting) * (-(-longest // BLOCK_SIZE)) + 64
    kwargs = settings if policy else {}
    scheduler = make_scheduler(
        model_path, policy, max_num_seqs=case.running, max_num_batched_tokens=8192, num_blocks=blocks, **kwargs
    )
    if case.mode == "async":  # same config, vLLM's async class (make_scheduler builds the sync one)
        cls = AutellixAsyncScheduler if policy else AsyncScheduler
        scheduler = cls(
            vllm_config=scheduler.vllm_config,
            kv_cache_config=scheduler.kv_cache_config,
            structured_output_manager=scheduler.structured_output_manager,
            block_size=BLOCK_SIZE,
            log_stats=False,
        )
        if policy:
            scheduler.clock = FakeClock()
    return scheduler


class Driver:
    """Steps one scheduler offline; times ``schedule()`` and ``update_from_output``.

    Async mode keeps one step in flight: each step schedules N+1, then processes N's output.
    ``on_finish(request_id)`` runs (untimed) for every call that finished.
    """

    def __init__(self, scheduler, mode: str, on_finish: Callable[[Any, str], None] | None = None) -> None:
        self.scheduler = scheduler
        self.mode = mode
        self.on_finish = on_finish
        self.in_flight = None

    def step(self) -> tuple[float, float]:
        """One step: (schedule ms, schedule + update_from_output ms)."""
        from autellix_ray.vllm.offline import FakeClock

        s = self.scheduler
        t0 = time.perf_counter()
        out = s.schedule()
        t1 = time.perf_counter()
        made_up = made_up_output(s, out)
        if isinstance(getattr(s, "clock", None), FakeClock):
            s.clock.now += STEP_S
        if self.mode == "sync":
            done = (out, made_up)
        else:
            done, self.in_flight = self.in_flight, (out, made_up)
        t2 = time.perf_counter()
        engine_outputs = s.update_from_output(*done) if done is not None else {}
        t3 = time.perf_counter()
        if self.on_finish is not None:
            for client in engine_outputs.values():
                for o in client.outputs:
                    if o.finish_reason is not None:
                        self.on_finish(s, o.request_id)
        return (t1 - t0) * 1e3, (t1 - t0 + t3 - t2) * 1e3


def made_up_output(scheduler, scheduler_output):
    """One sampled token for every call whose prefill this step completes or that decodes
    (decided right after ``schedule()``, so it also holds when the output arrives a step late)."""
    from vllm.v1.outputs import ModelRunnerOutput

    req_ids = list(scheduler_output.num_scheduled_tokens)
    sampled = [[] if scheduler.requests[rid].is_prefill_chunk else [7] for rid in req_ids]
    return ModelRunnerOutput(
        req_ids=req_ids, req_id_to_index={rid: i for i, rid in enumerate(req_ids)}, sampled_token_ids=sampled
    )


# -- workloads --------------------------------------------------------------------------


def churn_pair(model_path: str, case: Case, policy: str, settings: dict[str, Any]) -> dict[str, Driver]:
    """Running calls of staggered lengths (one finishes per step) and waiting calls behind them."""
    from autellix_ray.vllm.offline import make_request, step

    drivers = {}
    for name, pol in (("stock", None), ("plugin", policy)):
        s = make(model_path, case, pol, settings)
        for i in range(case.running):
            s.add_request(make_request(32, 10 + i, program=f"r{i % 32}", request_id=f"run{i}"))
        while len(s.running) < case.running or any(r.num_computed_tokens < 32 for r in s.running):
            step(s, STEP_S)
        for i in range(case.waiting):
            s.add_request(make_request(32, 100_000, program=f"w{i % 64}", request_id=f"wait{i}"))
        drivers[name] = Driver(s, case.mode)
    return drivers


def churn_steps(case: Case, warmup: int) -> int:
    """Timed steps a churn pair supports: while its original running calls still finish one per step."""
    return max(1, case.running - 15 - warmup)


def check_churn(drivers: dict[str, Driver], case: Case) -> None:
    stock, plugin = drivers["stock"].scheduler, drivers["plugin"].scheduler
    if not (len(stock.running) == len(plugin.running) >= case.running - 2):
        raise RuntimeError("configuration drifted: running calls no longer fill max_num_seqs")
    if not (len(stock.waiting) == len(plugin.waiting) < case.waiting):
        raise RuntimeError("no churn happened: no waiting call was admitted")
    if any(getattr(plugin.autellix_counters, c) for c in COUNTERS):
        raise RuntimeError("the plugin demoted, promoted or preempted: not the churn case")


class ClosedLoop:
    """Agent programs that keep ``size`` calls live: a finished call's program sends its next call.

    A call's shape depends only on its (program, call index): both schedulers get the same
    population and the same kinds of calls (which programs are live differs with their order).
    """

    def __init__(self, size: int, max_decode: int) -> None:
        self.size = size
        self.max_decode = max_decode
        self.next_program = 0
        self.calls_done: dict[str, int] = {}

    def start(self, scheduler) -> None:
        for _ in range(self.size):
            self._send(scheduler, self._new_program(), 0)

    def on_finish(self, scheduler, request_id: str) -> None:
        program, index = request_id.rsplit("-c", 1)
        nxt = int(index) + 1
        if nxt < CALLS_PER_PROGRAM:
            self._send(scheduler, program, nxt)
        else:
            self._send(scheduler, self._new_program(), 0)

    def _new_program(self) -> str:
        self.next_program += 1
        return f"p{self.next_program}"

    def _send(self, scheduler, program: str, index: int) -> None:
        from autellix_ray.vllm.offline import make_request

        rid = f"{program}-c{index}"
        decode = 8 + zlib.crc32(rid.encode()) % (self.max_decode - 7)  # 8..max_decode tokens
        scheduler.add_request(make_request(32 + 8 * index, decode, program=program, request_id=rid))


def event_max_decode(case: Case) -> int:
    """Decode lengths up to 4x max_num_seqs: about one call in two steps finishes, so in about
    half the steps every seat is taken and a waiting call can get in only by preemption."""
    return 4 * case.running


def events_pair(
    model_path: str, case: Case, policy: str, settings: dict[str, Any], warmup_steps: int
) -> dict[str, Driver]:
    drivers = {}
    for name, pol in (("stock", None), ("plugin", policy)):
        s = make(model_path, case, pol, settings)
        loop = ClosedLoop(case.running + case.waiting, event_max_decode(case))
        loop.start(s)
        drivers[name] = Driver(s, case.mode, on_finish=loop.on_finish)
        for _ in range(warmup_steps):  # into the steady state (untimed)
            drivers[name].step()
    return drivers


# -- measurement ------------------------------------------------------------------------


def time_block(drivers: dict[str, Driver], steps: int, plugin_first: bool) -> dict[str, dict[str, list[float]]]:
    order = ["plugin", "stock"] if plugin_first else ["stock", "plugin"]
    samples: dict[str, dict[str, list[float]]] = {n: {"schedule": [], "step": []} for n in order}
    for _ in range(steps):
        for name in order:
            sched_ms, step_ms = drivers[name].step()
            samples[name]["schedule"].append(sched_ms)
            samples[name]["step"].append(step_ms)
    return samples


def measure(model_path: str, case: Case, args: argparse.Namespace) -> dict[str, Any]:
    settings = args.settings if case.workload == "churn" else {**args.settings, **args.event_settings}
    blocks: list[dict[str, dict[str, list[float]]]] = []
    counts = dict.fromkeys(COUNTERS, 0)
    drivers = None
    steps = args.steps
    for block in range(args.rounds):
        if case.workload == "churn":
            drivers = churn_pair(model_path, case, args.policy, settings)
            for _ in range(args.warmup):
                for d in drivers.values():
                    d.step()
            steps = min(args.steps, churn_steps(case, args.warmup))
        elif drivers is None:
            drivers = events_pair(model_path, case, args.policy, settings, args.event_warmup)
        plugin = drivers["plugin"].scheduler
        before = {c: getattr(plugin.autellix_counters, c) for c in COUNTERS}
        blocks.append(time_block(drivers, steps, plugin_first=block % 2 == 1))
        for c in COUNTERS:
            counts[c] += getattr(plugin.autellix_counters, c) - before[c]
        if case.workload == "churn":
            check_churn(drivers, case)
    assert drivers is not None
    return {
        **dataclasses.asdict(case),
        "plugin_settings": plugin_settings(drivers["plugin"].scheduler),
        "timed_steps_per_block": steps,
        "blocks": len(blocks),
        **summarize(blocks),
        "events_in_timed_steps": counts,
        "plugin_calls_per_level_at_end": dict(sorted(drivers["plugin"].scheduler.autellix_snapshot()["calls_per_level"].items())),
    }


def summarize(blocks: list[dict[str, dict[str, list[float]]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in ("schedule", "step"):
        med = {n: [statistics.median(b[n][part]) for b in blocks] for n in ("stock", "plugin")}
        avg = {n: [statistics.fmean(b[n][part]) for b in blocks] for n in ("stock", "plugin")}
        out[part] = {
            "stock_median_ms": mean_ci(med["stock"]),
            "plugin_median_ms": mean_ci(med["plugin"]),
            "ratio_of_medians": ratio_ci(med["plugin"], med["stock"]),
            "stock_mean_ms": mean_ci(avg["stock"]),
            "plugin_mean_ms": mean_ci(avg["plugin"]),
            "ratio_of_means": ratio_ci(avg["plugin"], avg["stock"]),
        }
    return out


def plugin_settings(scheduler) -> dict[str, Any]:
    """The plugin's effective settings, as it parsed them (recorded with every case)."""
    settings = scheduler.autellix_settings
    return {
        **json.loads(json.dumps(dataclasses.asdict(settings), default=str)),
        "queues": settings.queue_config_summary(),
    }


def cases(workloads: list[str], modes: list[str]) -> list[Case]:
    out = []
    for mode in modes:
        for workload in workloads:
            configs = (CHURN_CONFIGS if workload == "churn" else EVENT_CONFIGS) if mode == "sync" else (
                ASYNC_CONFIGS[workload]
            )
            out += [Case(workload, mode, r, w) for r, w in configs]
    return out


# -- report -----------------------------------------------------------------------------


def _r(stat: dict[str, Any]) -> str:
    return fmt(stat, "geomean", 3)


def print_table(records: list[dict[str, Any]]) -> None:
    print("case / mode / running / waiting: stock step ms | plugin/stock step (medians) | (means) | schedule() "
          "| demotions, promotions, proactive preemptions")
    for r in records:
        s, e = r["step"], r["events_in_timed_steps"]
        print(
            f"{r['workload']} / {r['mode']} / {r['running']} / {r['waiting']}: "
            f"{fmt(s['stock_median_ms'])} | {_r(s['ratio_of_medians'])} | {_r(s['ratio_of_means'])} | "
            f"{_r(r['schedule']['ratio_of_medians'])} | "
            f"{e['num_demotions']}, {e['num_promotions']}, {e['num_proactive_preemptions']}"
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="plas", help="the plugin's policy in every case")
    parser.add_argument(
        "--settings", type=json.loads, default={}, help="plugin settings (JSON) for every case; default: its defaults"
    )
    parser.add_argument(
        "--event-settings",
        type=json.loads,
        default=EVENT_SETTINGS,
        help=f"settings added in the events case (JSON; default {json.dumps(EVENT_SETTINGS)})",
    )
    parser.add_argument("--rounds", type=int, default=12, help="timed blocks per case")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per scheduler and block")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per churn block")
    parser.add_argument("--event-warmup", type=int, default=600, help="untimed steps before the events case")
    parser.add_argument("--workloads", default="churn,events")
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--model", default=None, help="model dir for the config (default: build the tiny model)")
    parser.add_argument("--out", default=str(RESULTS))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import vllm

    from autellix_ray.tiny_model import default_tiny_model_path

    logging.getLogger("vllm").setLevel(logging.ERROR)
    model = args.model or default_tiny_model_path()
    started = time.monotonic()
    records = []
    for case in cases(args.workloads.split(","), args.modes.split(",")):
        records.append(measure(model, case, args))
        print_table(records[-1:])
    result = {
        "command": "python -m autellix_ray.bench.scheduler_overhead " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": source_commit(),
        "vllm_version": vllm.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared with other work)",
        "policy": args.policy,
        "settings": args.settings,
        "event_settings": args.event_settings,
        "step_s": STEP_S,
        "calls_per_program": CALLS_PER_PROGRAM,
        "metric": (
            "ms per step; step = schedule() + update_from_output(); ratios plugin/stock per block "
            "(geometric mean over blocks, 95% t interval)"
        ),
        "duration_s": round(time.monotonic() - started, 1),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine
        "records": records,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(records)
    print(f"wrote {out} ({result['duration_s']} s)")


if __name__ == "__main__":
    main()
