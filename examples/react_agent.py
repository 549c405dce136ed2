"""A ReAct agent (model -> tool -> model ...) as a plain OpenAI-client program.

    (see deployments/local-cpu.yaml: ray start --head --num-cpus 8, then serve run it)
    .venv/bin/python examples/react_agent.py --url http://127.0.0.1:8000
"""

import argparse
import asyncio

from autellix_ray.agents import react_agent
from autellix_ray.client import HTTPProgram


async def main(url: str, steps: int) -> None:
    async with await HTTPProgram.start(url) as program:
        result = await react_agent(program, steps=steps)
        row = await program.row()
        print(f"program {program.program_id}: {result['calls']} calls, service {row['service_s']:.2f} s, "
              f"wait {row['wait_s']:.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--steps", type=int, default=4)
    a = parser.parse_args()
    asyncio.run(main(a.url, a.steps))
