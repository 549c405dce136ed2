"""A LATS-style tree search: parallel expansions as threads with parents (ATLAS uses them).

    .venv/bin/python examples/tree_search.py --url http://127.0.0.1:8000
"""

import argparse
import asyncio

from autellix_ray.agents import tree_search_agent
from autellix_ray.client import HTTPProgram


async def main(url: str, depth: int, width: int) -> None:
    async with await HTTPProgram.start(url) as program:
        result = await tree_search_agent(program, depth=depth, width=width)
        row = await program.row()
        print(f"program {program.program_id}: {result['calls']} calls, best leaf {result['best_leaf']}, "
              f"critical path {row['critical_path_s']:.2f} s of {row['service_s']:.2f} s service")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--width", type=int, default=3)
    a = parser.parse_args()
    asyncio.run(main(a.url, a.depth, a.width))
