"""What an agent imports: programs and threads over the OpenAI API or over Ray handles.

    async with await HTTPProgram.start("http://localhost:8000") as program:
        main = program.thread("main")
        reply = await main.chat([{"role": "user", "content": "plan"}], max_tokens=64)
        kids = [program.thread(f"branch{i}", parents=["main"]) for i in range(3)]

Inside a Ray actor, ``HandleProgram.start()`` does the same through the engine
deployment's handle (no HTTP hop), streaming included. ``wait_ready(url)`` waits for an
app to answer (e.g. after ``serve.run``).
"""

from autellix_ray.client.program import HTTPProgram, Program, Thread, program_fields
from autellix_ray.client.ready import wait_ready

__all__ = ["HTTPProgram", "HandleProgram", "Program", "Thread", "program_fields", "wait_ready"]


def __getattr__(name):  # HandleProgram imports ray and vllm: load it only when asked for
    if name == "HandleProgram":
        from autellix_ray.client.handles import HandleProgram

        return HandleProgram
    raise AttributeError(name)
