"""Throughput of the program-table actor (target: >= 20k call updates/s on this machine).

A call costs the table two updates: ``begin_call`` (one RPC when the call arrives)
and its finished report (batched by each replica every 50 ms). Measured here, on a
real local Ray cluster, keeping many RPCs in flight from one driver:
- ``begin_call`` RPCs/s (unbatched: one RPC per call) and ``begin_calls`` with batches
  of 10 and 100 (what replicas send: their arrivals of 2 ms);
- finished-call reports/s through ``report_calls`` with batches of 1, 100 and 1000.
Beyond one actor the table shards by program id (hash % N named actors).

    python -m autellix_ray.bench.program_table_bench [--seconds 5]

Writes docs/results/program_table.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

TARGET_UPDATES_PER_S = 20_000


def _report(i: int) -> dict:
    return {"program_id": f"p{i % 5000}", "thread_id": "main", "service_s": 0.01, "wait_s": 0.002,
            "critical_path_start_s": 0.0}


def _drive(submit, seconds: float, in_flight: int) -> int:
    """Keep ``in_flight`` RPCs outstanding for ``seconds``; return the updates they made."""
    import ray

    done = 0
    i = 0
    pending = [submit(k) for k in range(in_flight)]
    i = in_flight
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        ready, pending = ray.wait(pending, num_returns=1)
        done += sum(ray.get(ready))
        pending.append(submit(i))
        i += 1
    done += sum(ray.get(pending))
    return done


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", default="docs/results/program_table.json")
    args = parser.parse_args(argv)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    from autellix_ray.serve.program_table import ProgramTableService

    @ray.remote(num_cpus=0)
    class BenchTable(ProgramTableService):
        def begin_call_count(self, program_id: str, thread_id: str) -> int:
            self.begin_call(program_id, thread_id)
            return 1

        def begin_calls_count(self, calls) -> int:
            return len(self.begin_calls(calls))

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp"))
    table = BenchTable.remote()
    ray.get(table.stats.remote())
    records = []

    def begin(i):
        return table.begin_call_count.remote(f"p{i % 5000}", "main")

    start = time.monotonic()
    n = _drive(begin, args.seconds, in_flight=64)
    records.append({"operation": "begin_call", "batch": 1, "updates_per_s": round(n / (time.monotonic() - start))})
    for batch in (10, 100):
        calls = [(f"p{i % 5000}", "main", []) for i in range(batch)]
        start = time.monotonic()
        n = _drive(lambda i, calls=calls: table.begin_calls_count.remote(calls), args.seconds, in_flight=16)
        records.append({"operation": "begin_calls", "batch": batch,
                        "updates_per_s": round(n / (time.monotonic() - start))})
    for batch in (1, 100, 1000):
        payload = [_report(i) for i in range(batch)]
        start = time.monotonic()
        n = _drive(lambda i, payload=payload: table.report_calls.remote(payload), args.seconds, in_flight=16)
        records.append({"operation": "report_calls", "batch": batch,
                        "updates_per_s": round(n / (time.monotonic() - start))})
    ray.shutdown()

    best_report = max(r["updates_per_s"] for r in records if r["operation"] == "report_calls")
    begin_rate = max(r["updates_per_s"] for r in records if r["operation"] == "begin_calls")
    # a call = one arrival inside a begin_calls batch + one report inside a report batch
    calls_per_s = 1 / (1 / begin_rate + 1 / best_report)
    result = {
        "command": "python -m autellix_ray.bench.program_table_bench " + " ".join(argv or sys.argv[1:]),
        "machine": "2 cores (shared), Ray local cluster",
        "records": records,
        "calls_per_s_one_actor": round(calls_per_s),
        "summary": {
            "report_updates_per_s": {
                "measured": best_report, "target": TARGET_UPDATES_PER_S, "met": best_report >= TARGET_UPDATES_PER_S,
            },
            "begin_calls_per_s": {
                "measured": begin_rate, "target": TARGET_UPDATES_PER_S, "met": begin_rate >= TARGET_UPDATES_PER_S,
            },
        },
        "sharding": "past one actor: hash(program_id) % N named actors, "
                    "N = ceil(call rate / calls_per_s_one_actor)",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    for r in records:
        print(f"{r['operation']:<14} batch {r['batch']:>5}: {r['updates_per_s']:>10,} updates/s")
    print(f"one actor sustains about {calls_per_s:,.0f} calls/s (begin + batched report); wrote {out}")


if __name__ == "__main__":
    main()
