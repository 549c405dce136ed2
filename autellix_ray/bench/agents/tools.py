"""The example agents' real tools: a safe calculator, a regex file search, a key-value store."""

from __future__ import annotations

import ast
import operator
import re
from pathlib import Path

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.Pow: operator.pow, ast.USub: operator.neg}


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
