"""The example agents inside Ray actors: deployment handles, no HTTP hop."""

from __future__ import annotations

from typing import Any


def agent_actor_class():
    """A Ray actor class that runs any agent through the engine deployment's handle:
    ``AgentActor.remote().run.remote("react", steps=3)``, or scripted with
    ``spec=program_to_json(spec)`` (a trace line)."""
    import ray

    @ray.remote(num_cpus=0)
    class AgentActor:
        async def warm_up(self, app_name: str = "autellix", model: str = "tiny") -> None:
            """Import the client (vLLM's protocol classes) and resolve the engine handle, so a
            driver can start its clock after this rather than time the actor's start-up."""
            from autellix_ray.client.handles import engine_handle

            engine_handle(app_name, model)

        async def run(self, kind: str, *, app_name: str = "autellix", model: str = "tiny",
                      spec: dict | None = None, **kwargs: Any) -> dict:
            from autellix_ray.bench.agents.population import timed
            from autellix_ray.bench.agents.programs import AGENTS
            from autellix_ray.bench.agents.script import AgentScript
            from autellix_ray.bench.workloads.trace import program_from_json
            from autellix_ray.client import HandleProgram

            program = await HandleProgram.start(app_name=app_name, model=model)
            script = AgentScript(program_from_json(spec)) if spec is not None else None
            if script is not None:
                kind = script.kind
            result, latency = await timed(AGENTS[kind](program, script=script, **kwargs))
            final = await program.end()
            return {**result, "agent": kind, "program_id": program.program_id, "latency_s": latency,
                    "final": final}

    return AgentActor
