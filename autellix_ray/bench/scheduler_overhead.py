"""Scheduler overhead: ``schedule()`` time of the Autellix plugin versus stock vLLM.

For each (running, waiting) configuration, two schedulers (stock vLLM 0.32 and
the plugin with PLAS) get the same requests: ``running`` decoding calls that fill
max_num_seqs, plus ``waiting`` calls behind them. Running calls have staggered
lengths, so in every timed step one of them finishes and a waiting call is
admitted (steady churn: the plugin re-sorts its running calls every step, its
worst case). Then the two schedulers take steps in
alternation (stock, plugin, stock, ...) so machine noise hits both alike, and the
median ``schedule()`` time of each is recorded, with the median whole step
(``schedule()`` plus ``update_from_output``) beside it since the plugin also
accounts service there. No model runs (outputs are made up; see
``autellix_ray.vllm.offline``). Calls stay in Q1 and no preemption is due (the
preemption check runs every step and finds nothing to do).

    python -m autellix_ray.bench.scheduler_overhead  [--steps 60]

Writes docs/results/scheduler_overhead.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from tqdm import tqdm

CONFIGS = [(64, 256), (64, 2048), (256, 256), (256, 2048)]


def build(model_path: str, policy: str | None, running: int, waiting: int):
    from autellix_ray.vllm.offline import make_request, make_scheduler, step

    blocks = (running + waiting) * 4 + 64
    scheduler = make_scheduler(
        model_path, policy, max_num_seqs=running, max_num_batched_tokens=8192, num_blocks=blocks
    )
    for i in range(running):
        scheduler.add_request(make_request(32, 10 + i, program=f"r{i % 32}", request_id=f"run{i}"))
    while len(scheduler.running) < running or any(r.num_computed_tokens < 32 for r in scheduler.running):
        step(scheduler, 0.001)
    for i in range(waiting):
        scheduler.add_request(make_request(32, 100_000, program=f"w{i % 64}", request_id=f"wait{i}"))
    return scheduler


def timed_step(scheduler) -> tuple[float, float]:
    from autellix_ray.vllm.offline import FakeClock, fake_output

    t0 = time.perf_counter()
    out = scheduler.schedule()
    t1 = time.perf_counter()
    if isinstance(getattr(scheduler, "clock", None), FakeClock):
        scheduler.clock.now += 0.001
    scheduler.update_from_output(out, fake_output(scheduler, out))
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t0) * 1e3


def measure(model_path: str, running: int, waiting: int, steps: int, warmup: int = 5) -> dict:
    """Median times over ``steps`` timed steps, in rounds of fresh schedulers.

    A round lasts while its original running calls still finish one per step.
    """
    per_round = max(1, running - 15 - warmup)
    samples = {"stock": ([], []), "plugin": ([], [])}
    while len(samples["stock"][0]) < steps:
        stock = build(model_path, None, running, waiting)
        plugin = build(model_path, "plas", running, waiting)
        for i in range(warmup + min(per_round, steps - len(samples["stock"][0]))):
            for name, scheduler in (("stock", stock), ("plugin", plugin)):
                sched_ms, step_ms = timed_step(scheduler)
                if i >= warmup:
                    samples[name][0].append(sched_ms)
                    samples[name][1].append(step_ms)
        # after update_from_output one call has just finished; schedule() refills its slot
        if not (len(stock.running) == len(plugin.running) >= running - 1):
            raise RuntimeError("configuration drifted: running calls no longer fill max_num_seqs")
        if not (len(stock.waiting) == len(plugin.waiting) < waiting):
            raise RuntimeError("no churn happened: no waiting call was admitted")
        if plugin.autellix_counters.num_proactive_preemptions:
            raise RuntimeError("the plugin preempted: not the steady state this benchmark measures")
    stock_ms = statistics.median(samples["stock"][0])
    plugin_ms = statistics.median(samples["plugin"][0])
    stock_step = statistics.median(samples["stock"][1])
    plugin_step = statistics.median(samples["plugin"][1])
    return {
        "running": running,
        "waiting": waiting,
        "stock_ms": round(stock_ms, 4),
        "plugin_ms": round(plugin_ms, 4),
        "ratio": round(plugin_ms / stock_ms, 4),
        "stock_step_ms": round(stock_step, 4),
        "plugin_step_ms": round(plugin_step, 4),
        "step_ratio": round(plugin_step / stock_step, 4),
        "steps": steps,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per scheduler and configuration")
    parser.add_argument("--model", default=None, help="model dir for the config (default: build the tiny model)")
    parser.add_argument("--out", default="docs/results/scheduler_overhead.json")
    args = parser.parse_args(argv)

    import logging

    import vllm

    from autellix_ray.tiny_model import build_tiny_model

    logging.getLogger("vllm").setLevel(logging.ERROR)
    model = args.model or str(build_tiny_model(Path.home() / ".cache" / "autellix-ray" / "tiny-llama"))
    records = [measure(model, r, w, args.steps) for r, w in tqdm(CONFIGS, desc="configurations")]
    result = {
        "command": "python -m autellix_ray.bench.scheduler_overhead " + " ".join(argv or sys.argv[1:]),
        "vllm_version": vllm.__version__,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "policy": "plas",
        "metric": "median ms per schedule() call; step = schedule() + update_from_output()",
        "records": records,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'running':>8}{'waiting':>9}{'stock ms':>10}{'plugin ms':>11}{'ratio':>8}{'step ratio':>12}")
    for r in records:
        print(
            f"{r['running']:>8}{r['waiting']:>9}{r['stock_ms']:>10.3f}{r['plugin_ms']:>11.3f}"
            f"{r['ratio']:>8.3f}{r['step_ratio']:>12.3f}"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
