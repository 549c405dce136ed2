"""Soak run: the app from deployments/local-cpu.yaml driven past capacity for minutes.

    python -m autellix_ray.bench.soak                 # 10 minutes (issue 8's soak), ~13 min in all
    python -m autellix_ray.bench.soak --minutes 1     # a short look

Keeps ``--concurrency`` agent programs running at once (more than the engines serve, and
more than the ingress admits: ``max_pending_calls`` is lowered to ``--bound`` so the 429 path
is exercised all along); each program makes a few calls then ends and a new one starts.
Every ``--sample-s`` it records the resident memory of the program-table actor, the router
actor and each engine replica (its Ray actor process plus the vLLM engine-core child), and
the table's row count. Writes the samples, the status counts and a flatness summary (RSS
growth over the second half of the run) into the ``soak`` key of
docs/results/reliability.json, and a plot to docs/figures/soak_memory.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results" / "reliability.json"
FIGURE = ROOT / "docs" / "figures" / "soak_memory.png"
PORT = 8000


def _rss_mb(pid: int) -> float:
    import psutil

    try:
        proc = psutil.Process(pid)
        return (proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))) / 2**20
    except psutil.Error:
        return float("nan")


def _actor_pids() -> dict[str, int]:
    """Live actors' pids from the GCS (``ray.util.state`` would need the dashboard)."""
    from ray._private import state

    pids = {}
    for a in state.actors().values():
        name, pid = a.get("Name") or "", a.get("Pid")
        if a.get("State") != "ALIVE" or not pid:
            continue
        if name == "autellix-program-table":
            pids["program_table"] = pid
        elif name == "autellix-router":
            pids["router"] = pid
        elif name.startswith("SERVE_REPLICA::") and "Ingress" not in name:
            pids["replica-" + name.rsplit("#", 1)[-1][:8]] = pid
        elif name.startswith("SERVE_REPLICA::"):
            pids["ingress"] = pid
    return pids


async def _drive(base: str, minutes: float, concurrency: int, counts: dict, stop: asyncio.Event) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=300) as client:
        async def program(i: int) -> None:
            while not stop.is_set():
                pid = f"soak-{i}-{time.monotonic_ns()}"
                for step in range(4):
                    while True:  # a rejected call is retried after Retry-After, as a client would
                        r = await client.post("/v1/completions", json={
                            "model": "tiny", "prompt": f"{pid} step {step} " + "ctx " * (10 * step),
                            "max_tokens": 32, "ignore_eos": True, "session_id": pid})
                        counts[str(r.status_code)] = counts.get(str(r.status_code), 0) + 1
                        if r.status_code != 429 or stop.is_set():
                            break
                        await asyncio.sleep(float(r.headers.get("retry-after", 1)))
                    if r.status_code != 200:
                        break
                else:
                    counts["programs_completed"] = counts.get("programs_completed", 0) + 1

        await asyncio.gather(*(program(i) for i in range(concurrency)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autellix_ray.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=96, help="programs running at once")
    parser.add_argument("--bound", type=int, default=48, help="the ingress's max_pending_calls for the run")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    import ray
    import yaml
    from ray import serve

    from autellix_ray.bench.demo import CONFIG
    from autellix_ray.client import wait_ready
    from autellix_ray.serve.app import build_app

    app_config = yaml.safe_load(CONFIG.read_text())["applications"][0]
    app_args = {**app_config["args"], "max_pending_calls": args.bound, "api_keys": []}
    ray.init(num_cpus=8, object_store_memory=1 << 30, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray-soak-", dir="/tmp"), runtime_env=app_config.get("runtime_env"))
    samples: list[dict] = []
    counts: dict[str, int] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": PORT})
        serve.run(build_app(app_args), name=app_config["name"], route_prefix="/", blocking=False)
        base = f"http://127.0.0.1:{PORT}"
        wait_ready(f"{base}/v1/models")
        table = ray.get_actor("autellix-program-table", namespace="autellix")

        async def run() -> None:
            stop = asyncio.Event()
            driver = asyncio.create_task(_drive(base, args.minutes, args.concurrency, counts, stop))
            started = time.monotonic()
            with tqdm(total=round(args.minutes * 60), unit="s", desc="soak") as bar:
                while (elapsed := time.monotonic() - started) < args.minutes * 60:
                    pids = await asyncio.to_thread(_actor_pids)
                    stats = await asyncio.to_thread(ray.get, table.stats.remote())
                    samples.append({"t_s": round(elapsed, 1), "programs_in_table": stats["num_programs"],
                                    **{f"rss_mb_{k}": round(_rss_mb(p), 1) for k, p in sorted(pids.items())}})
                    bar.set_postfix(ok=counts.get("200", 0), rejected=counts.get("429", 0),
                                    table=stats["num_programs"])
                    await asyncio.sleep(args.sample_s)
                    bar.update(round(time.monotonic() - started - bar.n))
            stop.set()
            await asyncio.wait_for(driver, 300)

        asyncio.run(run())
    finally:
        serve.shutdown()
        ray.shutdown()

    summary = _flatness(samples)
    doc = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    doc["soak"] = {
        "command": "python -m autellix_ray.bench.soak " + " ".join(argv if argv is not None else sys.argv[1:]),
        "minutes": args.minutes, "concurrency": args.concurrency, "max_pending_calls": args.bound,
        "status_counts": counts, "status_5xx": sum(v for k, v in counts.items() if k.startswith("5")),
        "rss_growth_second_half": summary, "samples": samples,
    }
    doc = {"summary": reliability_summary(doc), **{k: v for k, v in doc.items() if k != "summary"}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    _plot(samples, FIGURE)
    print(json.dumps({k: v for k, v in doc["soak"].items() if k != "samples"}, indent=1))
    return 0


def reliability_summary(doc: dict) -> dict[str, dict]:
    """The top-level ``summary`` of reliability.json from its ``tests`` and ``soak`` keys.

    ``programs_lost`` and ``responses_5xx`` must stay at or below their target (0);
    ``faults_injected`` (one replica, program-table and router death and one node removed) and
    ``bad_inputs_tried`` (explicit, hypothesis and schemathesis cases) at or above theirs.
    """
    tests, soak = doc.get("tests", {}), doc.get("soak", {})
    faults = [v for v in tests.values() if isinstance(v, dict) and "faults" in v]
    bad = tests.get("bad_inputs", {})
    measured = {
        "programs_lost": sum(f.get("programs_started", 0) - f.get("programs_completed", 0) for f in faults),
        "responses_5xx": bad.get("status_5xx", 0) + tests.get("overload", {}).get("status_5xx", 0)
        + soak.get("status_5xx", 0),
        "faults_injected": sum(f["faults"] for f in faults),
        "bad_inputs_tried": bad.get("tried", 0) + bad.get("schemathesis_cases", 0),
    }
    at_most, at_least = {"programs_lost": 0, "responses_5xx": 0}, {"faults_injected": 4, "bad_inputs_tried": 100}
    summary = {k: {"measured": measured[k], "target": t, "met": measured[k] <= t} for k, t in at_most.items()}
    summary.update({k: {"measured": measured[k], "target": t, "met": measured[k] >= t} for k, t in at_least.items()})
    return summary


def _flatness(samples: list[dict]) -> dict[str, dict[str, float]]:
    """Per process: RSS at the middle and at the end of the run (MiB) and the relative growth."""
    if len(samples) < 4:
        return {}
    mid, end = samples[len(samples) // 2], samples[-1]
    out = {}
    for key in end:
        if key.startswith("rss_mb_") and key in mid and mid[key] == mid[key] and end[key] == end[key]:
            out[key[7:]] = {"mid_mb": mid[key], "end_mb": end[key], "growth": round(end[key] / mid[key] - 1, 4)}
    return out


def _plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not samples:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    keys = sorted({k for s in samples for k in s if k.startswith("rss_mb_")})
    for key in keys:
        ax.plot([s["t_s"] / 60 for s in samples], [s.get(key) for s in samples], label=key[7:])
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title("Soak: memory past capacity")
    ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
