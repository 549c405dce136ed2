"""The three example agents, plain async functions over a ``Program`` (HTTP or Ray handles).

- ``react_agent``: ReAct, call -> tool (calculator, file search, key-value store) -> call ...
- ``tree_search_agent``: LATS-style tree search, parallel expansions as threads with parents;
- ``mapreduce_agent``: a map-reduce summariser, parallel map calls then one reduce call.

Each runs free (prompts built from the tools' observations) or scripted (``script=``, see
script.py). ``AGENTS`` maps the trace's ``workload`` names to them; ``run_scripted`` runs
the one a trace program names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from autellix_ray.bench.agents.script import (
    VOCAB_HIGH,
    VOCAB_LOW,
    AgentScript,
    complete,
    notify,
    reply_text,
    scripted_call,
)
from autellix_ray.bench.agents.tools import KVStore, calculator, file_search, run_tool_line
from autellix_ray.bench.workloads.model import ProgramSpec
from autellix_ray.client.program import Program, Thread


async def react_agent(program: Program, *, steps: int = 4, max_tokens: int = 16, folder: str = ".",
                      scripted: bool = True, script: AgentScript | None = None, on_reply=None) -> dict:
    """ReAct: call the model, run a tool, feed the observation back, repeat; then answer.

    ``scripted`` (free mode): the tool of step ``i`` is chosen by ``i`` (the tiny model
    writes noise); with ``scripted=False`` the agent runs the ``TOOL: name(arg)`` the model
    wrote. ``script``: the trace program's calls (all on thread ``main``) fix the number
    of steps, the lengths and the tool delays.
    """
    store = KVStore()
    tools = [
        lambda i: calculator(f"{i + 3} * ({i} + 7) - 2"),
        lambda i: file_search(folder, r"def \w+", limit=2),
        lambda i: store(f"set step{i}={i * i}") + " / " + store(f"get step{max(0, i - 1)}"),
    ]
    main = program.thread("main")
    if script is not None:
        observations = []
        for i in range(script.num_calls):
            tool = (lambda i=i: tools[(i - 1) % len(tools)](i - 1)) if i else None
            reply, obs = await scripted_call(main, script, i, tool=tool)
            notify(on_reply, reply)
            if obs is not None:
                observations.append(obs)
        return {"calls": script.num_calls, "answer": reply_text(reply), "observations": len(observations)}
    history = "You are an agent. Tools: calculator(expr), file_search(regex), kv(set k=v | get k).\n" \
              "Reply with one line TOOL: name(arg).\n"
    for i in range(steps):
        reply = await complete(main, prompt=history + f"Thought {i}:", max_tokens=max_tokens)
        notify(on_reply, reply)
        observation = None if scripted else run_tool_line(reply_text(reply), folder, store)
        if observation is None:
            observation = tools[i % len(tools)](i)
        history += f"Thought {i}: {reply_text(reply)}\nObservation: {observation}\n"
    answer = await complete(main, prompt=history + "Answer:", max_tokens=max_tokens)
    notify(on_reply, answer)
    return {"calls": steps + 1, "answer": reply_text(answer)}


async def tree_search_agent(program: Program, *, depth: int = 2, width: int = 3, max_tokens: int = 12,
                            script: AgentScript | None = None, on_reply=None) -> dict:
    """LATS-style: expand ``width`` children in parallel threads (parent = the current best
    node), score each child, keep the best, go deeper. Scripted: the trace's layout
    (``live_program(kind="lats")``) fixes depth, width, lengths and which child is kept."""
    if script is not None:
        return await _scripted_tree(program, script, on_reply)
    parent = program.thread("root")
    notify(on_reply, await complete(parent, prompt="Task: solve the puzzle. Plan:", max_tokens=max_tokens))
    calls = 1
    for level in range(depth):
        children = [program.thread(f"d{level}c{i}", parents=[parent.thread_id]) for i in range(width)]
        expansions = await asyncio.gather(*(
            complete(c, prompt=f"Expand option {i} at depth {level}:", max_tokens=max_tokens)
            for i, c in enumerate(children)
        ))
        scores = await asyncio.gather(*(
            complete(c, prompt=f"Rate: {reply_text(e)}\nScore:", max_tokens=2) for c, e in zip(children, expansions)
        ))
        for r in (*expansions, *scores):
            notify(on_reply, r)
        calls += 2 * width
        best = max(range(width), key=lambda i: (len(reply_text(scores[i])), -i))
        parent = children[best]
    return {"calls": calls, "best_leaf": parent.thread_id}


async def _scripted_tree(program: Program, script: AgentScript, on_reply) -> dict:
    calls = script.spec.calls
    root = program.thread(calls[0].thread_id)
    reply, _ = await scripted_call(root, script, 0)
    notify(on_reply, reply)
    i, best = 1, root.thread_id
    while i < len(calls):
        parent = calls[i].parent_thread_ids[0]
        level = [j for j in range(i, len(calls)) if calls[j].parent_thread_ids == (parent,)]
        children = [program.thread(calls[j].thread_id, parents=[parent]) for j in level]
        scores = {calls[j].thread_id: j for j in range(level[-1] + 1, len(calls))
                  if not calls[j].parent_thread_ids and calls[j].thread_id in {c.thread_id for c in children}}

        async def expand_and_score(child: Thread, j: int, scores: dict = scores) -> None:
            r, _ = await scripted_call(child, script, j)
            notify(on_reply, r)
            if child.thread_id in scores:  # the value function: a tool-like delay, then a short call
                r, _ = await scripted_call(child, script, scores[child.thread_id],
                                           tool=lambda: calculator(f"{len(reply_text(r))} / 7"))
                notify(on_reply, r)

        await asyncio.gather(*(expand_and_score(c, j) for c, j in zip(children, level)))
        i = max([*level, *scores.values()]) + 1
        if i < len(calls):
            best = calls[i].parent_thread_ids[0]  # the trace fixes which child is kept
    return {"calls": len(calls), "best_leaf": best}


async def mapreduce_agent(program: Program, *, documents: Sequence[str] | None = None, max_tokens: int = 16,
                          script: AgentScript | None = None, on_reply=None) -> dict:
    """Map-reduce summariser: one summary call per chunk in parallel (threads ``map<i>``),
    then one reduce call whose parents are all map threads. Scripted: calls ``0..n-1``
    of the trace program are the maps, call ``n`` the reduce."""
    if script is not None:
        n = script.num_calls - 1
        maps = [program.thread(script.call(j).thread_id) for j in range(n)]
        replies = await asyncio.gather(*(scripted_call(t, script, j) for j, t in enumerate(maps)))
        for r, _ in replies:
            notify(on_reply, r)
        reduce = program.thread(script.call(n).thread_id, parents=[t.thread_id for t in maps])
        reply, _ = await scripted_call(reduce, script, n)
        notify(on_reply, reply)
        return {"calls": n + 1, "summary": reply_text(reply)}
    documents = list(documents or [f"Chunk {i}: agents call models and tools in loops." for i in range(4)])
    maps = [program.thread(f"map{i}") for i in range(len(documents))]
    summaries = await asyncio.gather(*(
        complete(t, prompt=f"Summarise:\n{doc}\nSummary:", max_tokens=max_tokens) for t, doc in zip(maps, documents)
    ))
    for r in summaries:
        notify(on_reply, r)
    reduce = program.thread("reduce", parents=[t.thread_id for t in maps])
    joined = "\n".join(f"- {reply_text(s)}" for s in summaries)
    reply = await complete(reduce, prompt=f"Combine these summaries:\n{joined}\nFinal summary:", max_tokens=max_tokens)
    notify(on_reply, reply)
    return {"calls": len(documents) + 1, "summary": reply_text(reply)}


AGENTS: dict[str, Callable[..., Awaitable[dict]]] = {
    "react": react_agent,
    "lats": tree_search_agent,
    "mapreduce": mapreduce_agent,
}


async def run_scripted(program: Program, spec: ProgramSpec, on_reply=None,
                       vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)) -> dict:
    """Run the agent named by ``spec.workload`` in scripted mode."""
    if spec.workload not in AGENTS:
        raise ValueError(f"program {spec.program_id}: workload {spec.workload!r} is none of {sorted(AGENTS)}")
    return await AGENTS[spec.workload](program, script=AgentScript(spec, vocab), on_reply=on_reply)
