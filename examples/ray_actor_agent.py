"""A ReAct agent inside a Ray actor, calling the engine deployment through its handle.

    (see deployments/local-cpu.yaml: ray start --head --num-cpus 8, then serve run it)
    RAY_AUTH_MODE=disabled .venv/bin/python examples/ray_actor_agent.py

Every example takes ``--via actor`` to do the same for its agent; this file shows the
few lines it takes (``autellix_ray.bench.agents.agent_actor_class`` is the reusable version).
"""

import ray


@ray.remote
class Agent:
    async def run(self, steps: int) -> str:
        from autellix_ray.bench.agents import react_agent
        from autellix_ray.client import HandleProgram

        program = await HandleProgram.start(app_name="autellix", model="tiny")
        result = await react_agent(program, steps=steps, folder="/nonexistent")
        await program.end()
        return f"program {program.program_id}: {result['calls']} calls"


if __name__ == "__main__":
    ray.init(address="auto", namespace="autellix-examples")
    print(ray.get(Agent.remote().run.remote(3)))
