"""Example agent programs used by examples/, the demo and the live benchmark: real tools, real calls.

Each agent is a plain async function over a ``Program`` (HTTP or Ray handles), so the
same code runs as an OpenAI-client program and inside a Ray actor:

- ``react_agent``: ReAct, call -> tool (calculator, file search, key-value store) -> call ...
- ``tree_search_agent``: LATS-style tree search, parallel expansions as threads with parents;
- ``mapreduce_agent``: a map-reduce summariser, parallel map calls then one reduce call;
- ``run_population``: a mixed population of these, arriving as a Poisson process (or at
  the arrival times of a trace).

Two modes. **Free mode** (no ``script``): prompts are text built from the tools'
observations; with a real model, ``scripted=False`` on ``react_agent`` parses a
``TOOL: name(arg)`` line from the reply. **Scripted mode** (``script=AgentScript(spec)``,
``spec`` a ``ProgramSpec`` from a workload trace, the replay benchmark's JSONL format in
``autellix_ray.bench.workloads.trace``): the agent keeps its shape and runs its real
tools, but every call's prompt length, decode length (``max_tokens`` with ``ignore_eos``)
and the delay before it (``think_time_s``: tool time, topped up with a sleep) come from
the trace, so the load is fixed whatever the model writes. ``live_program`` builds the
trace programs whose call layout these agents follow (``workload`` = ``react``,
``lats`` or ``mapreduce``).
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import math
import operator
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload, poisson_arrival_times
from autellix_ray.client.program import Program, Thread

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg}

AGENT_KINDS = ("react", "lats", "mapreduce")


# -- tools -------------------------------------------------------------------
def calculator(expression: str) -> str:
    """Arithmetic only (+ - * / ** and parentheses), parsed safely."""

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            if isinstance(node.op, ast.Pow) and abs(ev(node.right)) > 64:
                raise ValueError("exponent too large")
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        raise ValueError(f"not arithmetic: {expression!r}")

    try:
        return str(ev(ast.parse(expression, mode="eval").body))
    except (ValueError, SyntaxError, ZeroDivisionError) as e:
        return f"error: {e}"


def file_search(folder: str, pattern: str, limit: int = 5) -> str:
    """Files under ``folder`` whose lines match ``pattern`` (regex), with the first hit."""
    hits = []
    try:
        regex = re.compile(pattern)
    except re.error as e:
        return f"error: {e}"
    for path in sorted(Path(folder).rglob("*.py"))[:500]:
        try:
            for line in path.read_text(errors="ignore").splitlines():
                if regex.search(line):
                    hits.append(f"{path.name}: {line.strip()[:80]}")
                    break
        except OSError:
            continue
        if len(hits) >= limit:
            break
    return "\n".join(hits) or "no match"


class KVStore:
    """``set key=value`` / ``get key``."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __call__(self, command: str) -> str:
        op, _, rest = command.partition(" ")
        key, _, value = rest.partition("=")
        if op == "set":
            self.data[key.strip()] = value.strip()
            return "ok"
        return self.data.get(key.strip(), "missing")


_TOOL_LINE = re.compile(r"TOOL:\s*(calculator|file_search|kv)\((.*)\)")


def run_tool_line(reply: str, folder: str, store: KVStore) -> str | None:
    """Run the ``TOOL: name(arg)`` a real model wrote in ``reply`` (None if it wrote none)."""
    match = _TOOL_LINE.search(reply)
    if match is None:
        return None
    name, arg = match.group(1), match.group(2).strip().strip("'\"")
    if name == "calculator":
        return calculator(arg)
    if name == "file_search":
        return file_search(folder, arg, limit=3)
    return store(arg)


# -- scripted mode -------------------------------------------------------------
VOCAB_LOW, VOCAB_HIGH = 16, 500  # token ids used for scripted prompts (the tiny model's vocab is 512)


@dataclass
class AgentScript:
    """Per-call prompt/decode lengths and delays for an agent, from a trace program.

    Prompts are token-id lists (the completions API takes them): call ``i``'s prompt is
    the first ``reuse_tokens`` ids of its ``reuse_call``'s prompt (history), else the
    shared prefix's ids for its ``shared_prefix_key``, then ids drawn from a generator
    seeded by the program id and ``i``. The same trace gives the same prompts on every
    run and system. ``vocab`` bounds the ids (set it below your model's vocabulary).
    """

    spec: ProgramSpec
    vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)
    _prompts: dict[int, list[int]] = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return self.spec.workload

    @property
    def num_calls(self) -> int:
        return len(self.spec.calls)

    def call(self, i: int) -> CallSpec:
        return self.spec.calls[i]

    def prompt(self, i: int) -> list[int]:
        if i in self._prompts:
            return self._prompts[i]
        c = self.spec.calls[i]
        if c.reuse_tokens and c.reuse_call < i:
            head = self.prompt(c.reuse_call)[: c.reuse_tokens]
        elif c.shared_prefix_tokens:
            head = _ids(f"shared/{c.shared_prefix_key}", c.shared_prefix_tokens, self.vocab)
        else:
            head = []
        ids = head + _ids(f"{self.spec.program_id}/{i}", c.prompt_tokens - len(head), self.vocab)
        self._prompts[i] = ids
        return ids

    def request(self, i: int) -> dict[str, Any]:
        """``prompt`` and sampling fields of call ``i`` (``ignore_eos`` fixes the decode length)."""
        c = self.spec.calls[i]
        return {"prompt": self.prompt(i), "max_tokens": c.decode_tokens, "ignore_eos": True}


def _ids(key: str, n: int, vocab: tuple[int, int]) -> list[int]:
    if n <= 0:
        return []
    rng = np.random.default_rng(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little"))
    return [int(t) for t in rng.integers(vocab[0], vocab[1], size=n)]


async def _scripted_call(thread: Thread, script: AgentScript, i: int, *, tool: Callable[[], str] | None = None,
                         **kwargs: Any) -> tuple[Any, str | None]:
    """Run ``tool`` (real), sleep the rest of call ``i``'s ``think_time_s``, then issue the call."""
    start = time.monotonic()
    observation = tool() if tool is not None else None
    rest = script.call(i).think_time_s - (time.monotonic() - start)
    if rest > 0:
        await asyncio.sleep(rest)
    return await complete(thread, **script.request(i), **kwargs), observation


async def complete(thread: Thread, *, prompt: Any, max_tokens: int, ignore_eos: bool = True, **kwargs: Any) -> Any:
    """A completion with vLLM's ``ignore_eos`` (works over HTTP and over handles)."""
    extra = dict(kwargs.pop("extra_body", None) or {})
    extra["ignore_eos"] = ignore_eos
    return await thread.complete(prompt, max_tokens=max_tokens, extra_body=extra, **kwargs)


def _text(reply: Any) -> str:
    return reply.choices[0].text or ""


# -- agents --------------------------------------------------------------------
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
            reply, obs = await _scripted_call(main, script, i, tool=tool)
            _notify(on_reply, reply)
            if obs is not None:
                observations.append(obs)
        return {"calls": script.num_calls, "answer": _text(reply), "observations": len(observations)}
    history = "You are an agent. Tools: calculator(expr), file_search(regex), kv(set k=v | get k).\n" \
              "Reply with one line TOOL: name(arg).\n"
    for i in range(steps):
        reply = await complete(main, prompt=history + f"Thought {i}:", max_tokens=max_tokens)
        _notify(on_reply, reply)
        observation = None if scripted else run_tool_line(_text(reply), folder, store)
        if observation is None:
            observation = tools[i % len(tools)](i)
        history += f"Thought {i}: {_text(reply)}\nObservation: {observation}\n"
    answer = await complete(main, prompt=history + "Answer:", max_tokens=max_tokens)
    _notify(on_reply, answer)
    return {"calls": steps + 1, "answer": _text(answer)}


async def tree_search_agent(program: Program, *, depth: int = 2, width: int = 3, max_tokens: int = 12,
                            script: AgentScript | None = None, on_reply=None) -> dict:
    """LATS-style: expand ``width`` children in parallel threads (parent = the current best
    node), score each child, keep the best, go deeper. Scripted: the trace's layout
    (``live_program(kind="lats")``) fixes depth, width, lengths and which child is kept."""
    if script is not None:
        return await _scripted_tree(program, script, on_reply)
    parent = program.thread("root")
    _notify(on_reply, await complete(parent, prompt="Task: solve the puzzle. Plan:", max_tokens=max_tokens))
    calls = 1
    for level in range(depth):
        children = [program.thread(f"d{level}c{i}", parents=[parent.thread_id]) for i in range(width)]
        expansions = await asyncio.gather(*(
            complete(c, prompt=f"Expand option {i} at depth {level}:", max_tokens=max_tokens)
            for i, c in enumerate(children)
        ))
        scores = await asyncio.gather(*(
            complete(c, prompt=f"Rate: {_text(e)}\nScore:", max_tokens=2) for c, e in zip(children, expansions)
        ))
        for r in (*expansions, *scores):
            _notify(on_reply, r)
        calls += 2 * width
        best = max(range(width), key=lambda i: (len(_text(scores[i])), -i))
        parent = children[best]
    return {"calls": calls, "best_leaf": parent.thread_id}


async def _scripted_tree(program: Program, script: AgentScript, on_reply) -> dict:
    calls = script.spec.calls
    root = program.thread(calls[0].thread_id)
    reply, _ = await _scripted_call(root, script, 0)
    _notify(on_reply, reply)
    i, best = 1, root.thread_id
    while i < len(calls):
        parent = calls[i].parent_thread_ids[0]
        level = [j for j in range(i, len(calls)) if calls[j].parent_thread_ids == (parent,)]
        children = [program.thread(calls[j].thread_id, parents=[parent]) for j in level]
        scores = {calls[j].thread_id: j for j in range(level[-1] + 1, len(calls))
                  if not calls[j].parent_thread_ids and calls[j].thread_id in {c.thread_id for c in children}}

        async def expand_and_score(child: Thread, j: int, scores: dict = scores) -> None:
            r, _ = await _scripted_call(child, script, j)
            _notify(on_reply, r)
            if child.thread_id in scores:  # the value function: a tool-like delay, then a short call
                r, _ = await _scripted_call(child, script, scores[child.thread_id],
                                            tool=lambda: calculator(f"{len(_text(r))} / 7"))
                _notify(on_reply, r)

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
        replies = await asyncio.gather(*(_scripted_call(t, script, j) for j, t in enumerate(maps)))
        for r, _ in replies:
            _notify(on_reply, r)
        reduce = program.thread(script.call(n).thread_id, parents=[t.thread_id for t in maps])
        reply, _ = await _scripted_call(reduce, script, n)
        _notify(on_reply, reply)
        return {"calls": n + 1, "summary": _text(reply)}
    documents = list(documents or [f"Chunk {i}: agents call models and tools in loops." for i in range(4)])
    maps = [program.thread(f"map{i}") for i in range(len(documents))]
    summaries = await asyncio.gather(*(
        complete(t, prompt=f"Summarise:\n{doc}\nSummary:", max_tokens=max_tokens) for t, doc in zip(maps, documents)
    ))
    for r in summaries:
        _notify(on_reply, r)
    reduce = program.thread("reduce", parents=[t.thread_id for t in maps])
    joined = "\n".join(f"- {_text(s)}" for s in summaries)
    reply = await complete(reduce, prompt=f"Combine these summaries:\n{joined}\nFinal summary:", max_tokens=max_tokens)
    _notify(on_reply, reply)
    return {"calls": len(documents) + 1, "summary": _text(reply)}


AGENTS: dict[str, Callable[..., Awaitable[dict]]] = {
    "react": react_agent,
    "lats": tree_search_agent,
    "mapreduce": mapreduce_agent,
}


def _notify(on_reply, reply) -> None:
    if on_reply is not None:
        on_reply(reply)


async def run_scripted(program: Program, spec: ProgramSpec, on_reply=None,
                       vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)) -> dict:
    """Run the agent named by ``spec.workload`` in scripted mode."""
    if spec.workload not in AGENTS:
        raise ValueError(f"program {spec.program_id}: workload {spec.workload!r} is none of {sorted(AGENTS)}")
    return await AGENTS[spec.workload](program, script=AgentScript(spec, vocab), on_reply=on_reply)


# -- trace programs with the agents' layouts -----------------------------------
@dataclass(frozen=True)
class LiveMix:
    """The mixed population the live benchmark and examples/mixed_driver.py run.

    Heavy-tailed on purpose (as agent traffic is): many short ReAct programs, some
    map-reduce fan-outs, a few big tree searches. Lengths in tokens, delays in seconds.
    """

    weights: tuple[float, float, float] = (0.7, 0.1, 0.2)  # react, mapreduce, lats
    system_prompt_tokens: int = 64  # shared by every call of the same agent kind
    react_steps: tuple[int, int] = (2, 4)  # calls per ReAct program (inclusive range)
    react_decode: int = 16
    react_observation_tokens: int = 48  # prompt growth per step (reply + observation)
    react_tool_s: tuple[float, float] = (0.05, 0.3)
    map_chunks: tuple[int, int] = (3, 6)
    map_prompt_tokens: int = 192
    map_decode: int = 32
    reduce_decode: int = 48
    lats_depth: tuple[int, int] = (2, 3)
    lats_width: tuple[int, int] = (3, 4)
    lats_expand_decode: int = 48
    lats_score_decode: int = 4
    lats_eval_s: float = 0.05


def live_program(program_id: str, kind: str, rng: np.random.Generator, mix: LiveMix = LiveMix(),
                 arrival_s: float = 0.0) -> ProgramSpec:
    """A trace program with the call layout ``AGENTS[kind]`` follows in scripted mode."""
    sp = mix.system_prompt_tokens
    calls: list[CallSpec] = []
    if kind == "react":
        steps = int(rng.integers(mix.react_steps[0], mix.react_steps[1] + 1))
        prompt = sp + 32
        for i in range(steps):
            think = 0.0 if i == 0 else round(float(rng.uniform(*mix.react_tool_s)), 4)
            reuse = {"reuse_call": i - 1, "reuse_tokens": calls[-1].prompt_tokens} if i else \
                {"shared_prefix_key": "react", "shared_prefix_tokens": sp}
            calls.append(CallSpec("main", prompt, mix.react_decode, think_time_s=think, **reuse))
            prompt += mix.react_observation_tokens
    elif kind == "mapreduce":
        n = int(rng.integers(mix.map_chunks[0], mix.map_chunks[1] + 1))
        for i in range(n):
            calls.append(CallSpec(f"map{i}", sp + mix.map_prompt_tokens, mix.map_decode,
                                  shared_prefix_key="mapreduce", shared_prefix_tokens=sp))
        calls.append(CallSpec("reduce", sp + n * mix.map_decode + 16, mix.reduce_decode,
                              parent_thread_ids=tuple(f"map{i}" for i in range(n)),
                              shared_prefix_key="mapreduce", shared_prefix_tokens=sp))
    elif kind == "lats":
        depth = int(rng.integers(mix.lats_depth[0], mix.lats_depth[1] + 1))
        width = int(rng.integers(mix.lats_width[0], mix.lats_width[1] + 1))
        calls.append(CallSpec("root", sp + 64, mix.lats_expand_decode, shared_prefix_key="lats",
                               shared_prefix_tokens=sp))
        parent, parent_call, context = "root", 0, sp + 64
        for level in range(depth):
            first = len(calls)
            for c in range(width):
                calls.append(CallSpec(f"d{level}c{c}", context + 16, mix.lats_expand_decode,
                                      parent_thread_ids=(parent,), reuse_call=parent_call, reuse_tokens=context))
            for c in range(width):
                calls.append(CallSpec(f"d{level}c{c}", context + 16 + 24, mix.lats_score_decode,
                                      think_time_s=mix.lats_eval_s, reuse_call=first + c,
                                      reuse_tokens=context + 16))
            best = int(rng.integers(width))
            parent, parent_call, context = f"d{level}c{best}", first + best, context + 16
    else:
        raise ValueError(f"unknown agent kind {kind!r}; choose one of {AGENT_KINDS}")
    return ProgramSpec(program_id, float(arrival_s), tuple(calls), kind)


def live_workload(num_programs: int, rate: float, seed: int, mix: LiveMix = LiveMix()) -> Workload:
    """``num_programs`` mixed agent programs arriving as a Poisson process of ``rate``/s.

    The program contents depend only on ``seed`` (not on ``rate``), so the same programs
    can be replayed at several rates."""
    content_rng = np.random.default_rng([seed, 1])
    arrivals = poisson_arrival_times(num_programs, rate, np.random.default_rng([seed, 2]))
    kinds = ("react", "mapreduce", "lats")
    p = np.asarray(mix.weights, dtype=float) / sum(mix.weights)
    programs = []
    for n, t in enumerate(arrivals):
        kind = kinds[int(content_rng.choice(3, p=p))]
        programs.append(live_program(f"{kind}-{seed}-{n:04d}", kind, content_rng, mix, t))
    return Workload("live-mixed", tuple(programs), rate if math.isfinite(rate) else math.inf, seed, True,
                    "ReAct / map-reduce / LATS agent programs for the live benchmark (autellix_ray.agents.LiveMix)")


def with_rate(workload: Workload, rate: float, seed: int) -> Workload:
    """The same programs with fresh Poisson arrivals of ``rate`` programs/s."""
    from dataclasses import replace

    arrivals = poisson_arrival_times(workload.num_programs, rate, np.random.default_rng([seed, 2]))
    return replace(workload, programs=tuple(replace(p, arrival_s=t) for p, t in zip(workload.programs, arrivals)),
                   rate=rate)


async def run_population(workload: Workload, make_program: Callable[[ProgramSpec], Awaitable[Program]], *,
                         end_program: Callable[[Program], Awaitable[Any]] | None = None,
                         on_reply: Callable[[ProgramSpec, Any], None] | None = None,
                         on_done: Callable[[dict], None] | None = None,
                         vocab: tuple[int, int] = (VOCAB_LOW, VOCAB_HIGH)) -> list[dict]:
    """Start each program of ``workload`` at its ``arrival_s`` (from now) and run its agent
    in scripted mode; return one record per program (latency from arrival to the last call's
    end, tokens, errors). Programs are closed loops: each call is issued when the calls it
    depends on finished (plus its tool delay)."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()

    async def one(spec: ProgramSpec) -> dict:
        await asyncio.sleep(max(0.0, t0 + spec.arrival_s - loop.time()))
        start = loop.time()
        record = {"program_id": spec.program_id, "workload": spec.workload, "calls": spec.num_calls,
                  "decode_tokens": spec.total_decode_tokens, "arrival_s": spec.arrival_s,
                  "start_s": start - t0, "error": None}
        program = None
        try:
            program = await make_program(spec)
            callback = (lambda reply: on_reply(spec, reply)) if on_reply else None
            await run_scripted(program, spec, callback, vocab)
        except Exception as e:  # noqa: BLE001 - recorded in the record; the caller counts errors
            record["error"] = f"{type(e).__name__}: {e}"[:300]
        record["latency_s"] = loop.time() - start
        if program is not None and end_program is not None:
            try:
                await end_program(program)
            except Exception as e:  # noqa: BLE001 - ending is best effort (idle timeout ends it anyway)
                record["end_error"] = f"{type(e).__name__}: {e}"[:200]
        if on_done is not None:
            on_done(record)
        return record

    return list(await asyncio.gather(*(one(p) for p in workload.programs)))


async def timed(coro) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await coro
    return result, loop.time() - start


# -- the same agents inside Ray actors (deployment handles, no HTTP hop) -------------
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
