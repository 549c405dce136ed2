"""CLI: workload statistics next to the paper's table, and trace export.

    python -m autellix_ray.bench.workloads --stats [--num-programs 500] [--seed 0]
    python -m autellix_ray.bench.workloads --workload bfcl --rate 0.5 --write-trace bfcl.jsonl
"""

from __future__ import annotations

import argparse
import sys

from autellix_ray.bench.workloads import WORKLOADS, make_workload
from autellix_ray.bench.workloads.stats import compute_stats, format_table
from autellix_ray.bench.workloads.trace import write_trace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autellix_ray.bench.workloads", description=__doc__.splitlines()[0])
    parser.add_argument("--stats", action="store_true", help="print statistics next to the paper's table")
    parser.add_argument("--workload", action="append", choices=sorted(WORKLOADS), help="repeatable; default: all")
    parser.add_argument("--num-programs", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1.0, help="programs/s (inf: all at t=0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-trace", metavar="PATH", help="write the (single) workload as a JSONL trace")
    args = parser.parse_args(argv)
    names = args.workload or list(WORKLOADS)
    if args.write_trace and len(names) != 1:
        parser.error("--write-trace needs exactly one --workload")
    if not args.stats and not args.write_trace:
        parser.error("nothing to do: pass --stats and/or --write-trace")
    try:
        workloads = [make_workload(name, args.num_programs, args.rate, args.seed) for name in names]
    except ValueError as err:
        parser.error(str(err))
    if args.write_trace:
        write_trace(workloads[0], args.write_trace)
        print(f"wrote {workloads[0].num_programs} programs to {args.write_trace}", file=sys.stderr)
    if args.stats:
        print(format_table([compute_stats(w) for w in workloads]))
        for w in workloads:
            print(f"{w.name}: {w.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
