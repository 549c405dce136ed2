"""Example agent programs used by examples/ and the demo: real tools, real calls.

Each agent is a plain async function over a ``Program`` (HTTP or Ray handles), so the
same code runs as an OpenAI-client program and inside a Ray actor. With the tiny
test model the text is meaningless, so the agents run in scripted mode: tool
choice and call lengths come from the step number (or a trace), not from parsing
the model's reply; with a real model, set ``scripted=False`` and they parse a
``TOOL: name(arg)`` line from the reply.
"""

from __future__ import annotations

import ast
import asyncio
import operator
import re
from pathlib import Path
from typing import Any

from autellix_ray.client.program import Program

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg}


def calculator(expression: str) -> str:
    """Arithmetic only (+ - * / ** and parentheses), parsed safely."""

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
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
    regex = re.compile(pattern)
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
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def __call__(self, command: str) -> str:
        op, _, rest = command.partition(" ")
        key, _, value = rest.partition("=")
        if op == "set":
            self.data[key.strip()] = value.strip()
            return "ok"
        return self.data.get(key.strip(), "missing")


async def react_agent(program: Program, *, steps: int = 4, max_tokens: int = 16, folder: str = ".") -> dict:
    """ReAct: call the model, run a tool, feed the observation back, repeat; then answer."""
    store = KVStore()
    tools = [
        lambda i: calculator(f"{i + 3} * ({i} + 7) - 2"),
        lambda i: file_search(folder, r"def \w+", limit=2),
        lambda i: store(f"set step{i}={i * i}") + " / " + store(f"get step{max(0, i - 1)}"),
    ]
    main = program.thread("main")
    history = "You are an agent. Tools: calculator, file_search, kv.\n"
    for i in range(steps):
        reply = await main.complete(history + f"Thought {i}:", max_tokens=max_tokens, extra_body={"ignore_eos": True})
        observation = tools[i % len(tools)](i)
        history += f"Thought {i}: {reply.choices[0].text}\nObservation: {observation}\n"
    answer = await main.complete(history + "Answer:", max_tokens=max_tokens, extra_body={"ignore_eos": True})
    return {"calls": steps + 1, "answer": answer.choices[0].text}


async def tree_search_agent(program: Program, *, depth: int = 2, width: int = 3, max_tokens: int = 12) -> dict:
    """LATS-style: expand ``width`` children in parallel threads, evaluate, keep the best, go deeper."""
    parent = program.thread("root")
    await parent.complete("Task: solve the puzzle. Plan:", max_tokens=max_tokens, extra_body={"ignore_eos": True})
    calls = 1
    for level in range(depth):
        children = [program.thread(f"d{level}c{i}", parents=[parent.thread_id]) for i in range(width)]
        expansions = await asyncio.gather(*(
            c.complete(f"Expand option {i} at depth {level}:", max_tokens=max_tokens, extra_body={"ignore_eos": True})
            for i, c in enumerate(children)
        ))
        scores = await asyncio.gather(*(
            c.complete(f"Rate: {e.choices[0].text}\nScore:", max_tokens=2, extra_body={"ignore_eos": True})
            for c, e in zip(children, expansions)
        ))
        calls += 2 * width
        best = max(range(width), key=lambda i: (len(scores[i].choices[0].text), -i))
        parent = children[best]
    return {"calls": calls, "best_leaf": parent.thread_id}


async def timed(coro) -> tuple[Any, float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await coro
    return result, loop.time() - start
