"""JSONL trace files: write any workload, read it back exactly, replay your own traffic.

Format (UTF-8, one JSON object per line, blank lines ignored):

- optional first line, the header: ``{"autellix_trace": 1, "name": ..., "rate": ...,
  "seed": ..., "synthetic": ..., "description": ...}`` (``rate``: programs/s, ``"inf"``
  or null; ``seed``: int or null). Without it the workload is named after the file
  (or ``name=``), with rate and seed null.
- then one line per PROGRAM: ``program_id`` (str), ``arrival_s`` (seconds from the
  trace start), optional ``workload`` (str), and ``calls``: a list in issue order, each
  ``{"thread_id": str, "prompt_tokens": int, "decode_tokens": int}`` plus optional
  ``parent_thread_ids`` (list of str), ``think_time_s`` (number), ``reuse_call``/
  ``reuse_tokens`` (int) and ``shared_prefix_key``/``shared_prefix_tokens`` — the
  fields and meaning of ``model.CallSpec`` (dependencies: see ``model``'s header).
  Optional fields equal to their defaults are omitted on writing.

Example (a two-call ReAct program, then a two-thread program)::

    {"autellix_trace": 1, "name": "mine", "rate": 0.5, "seed": null, "synthetic": false, "description": ""}
    {"program_id": "p0", "arrival_s": 0.0, "calls": [{"thread_id": "main", "prompt_tokens": 700, "decode_tokens": 30}, {"thread_id": "main", "prompt_tokens": 760, "decode_tokens": 12, "think_time_s": 0.2, "reuse_call": 0, "reuse_tokens": 730}]}
    {"program_id": "p1", "arrival_s": 1.5, "calls": [{"thread_id": "a", "prompt_tokens": 400, "decode_tokens": 60}, {"thread_id": "b", "prompt_tokens": 400, "decode_tokens": 60}, {"thread_id": "c", "parent_thread_ids": ["a", "b"], "prompt_tokens": 600, "decode_tokens": 20}]}

Exactness: floats are written with ``repr`` precision, so ``read_trace(write_trace(w))
== w``. Reading is strict: a line that is not valid JSON, has unknown or missing keys,
wrong types or inconsistent values raises ``ValueError`` naming the line number.
Programs are sorted by arrival (stable) on reading.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TextIO

from autellix_ray.bench.workloads.model import CallSpec, ProgramSpec, Workload

FORMAT_VERSION = 1
_CALL_REQUIRED = ("thread_id", "prompt_tokens", "decode_tokens")
_CALL_OPTIONAL = {
    "parent_thread_ids": (),
    "think_time_s": 0.0,
    "reuse_call": -1,
    "reuse_tokens": 0,
    "shared_prefix_key": "",
    "shared_prefix_tokens": 0,
}
_PROGRAM_KEYS = {"program_id", "arrival_s", "calls", "workload"}
_HEADER_KEYS = {"autellix_trace", "name", "rate", "seed", "synthetic", "description"}


def call_to_json(call: CallSpec) -> dict:
    out = {key: getattr(call, key) for key in _CALL_REQUIRED}
    for key, default in _CALL_OPTIONAL.items():
        value = getattr(call, key)
        if value != default:
            out[key] = list(value) if key == "parent_thread_ids" else value
    return out


def program_to_json(program: ProgramSpec) -> dict:
    out: dict = {"program_id": program.program_id, "arrival_s": program.arrival_s}
    if program.workload:
        out["workload"] = program.workload
    out["calls"] = [call_to_json(c) for c in program.calls]
    return out


def header_to_json(workload: Workload) -> dict:
    rate = workload.rate
    return {
        "autellix_trace": FORMAT_VERSION,
        "name": workload.name,
        "rate": "inf" if rate is not None and math.isinf(rate) else rate,
        "seed": workload.seed,
        "synthetic": workload.synthetic,
        "description": workload.description,
    }


def write_trace(workload: Workload, destination: str | os.PathLike | TextIO) -> None:
    """Write ``workload`` as a header line plus one line per program."""
    lines = [header_to_json(workload), *(program_to_json(p) for p in workload.programs)]
    text = "".join(json.dumps(line, allow_nan=False) + "\n" for line in lines)
    if isinstance(destination, (str, os.PathLike)):
        Path(destination).write_text(text, encoding="utf-8")
    else:
        destination.write(text)


def dumps_trace(workload: Workload) -> str:
    buffer = io.StringIO()
    write_trace(workload, buffer)
    return buffer.getvalue()


def read_trace(source: str | os.PathLike | TextIO, name: str | None = None) -> Workload:
    """Read a trace file (path or open text file); see the module header for the format."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as fp:
            return parse_trace(fp, name or Path(source).stem)
    return parse_trace(source, name or "trace")


def loads_trace(text: str, name: str = "trace") -> Workload:
    return parse_trace(io.StringIO(text), name)


def parse_trace(lines: Iterable[str], name: str) -> Workload:
    header: dict | None = None
    programs: list[ProgramSpec] = []
    seen_ids: set[str] = set()
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_constant=_reject_constant)
            if not isinstance(obj, dict):
                raise TypeError(f"expected a JSON object, got {type(obj).__name__}")
            if "autellix_trace" in obj:
                if header is not None or programs:
                    raise ValueError("a header line may only appear once, as the first line")
                header = _parse_header(obj)
            else:
                program = program_from_json(obj)
                if program.program_id in seen_ids:
                    raise ValueError(f"duplicate program_id {program.program_id!r}")
                seen_ids.add(program.program_id)
                programs.append(program)
        except (ValueError, TypeError) as err:  # type errors in a line are value errors of the file
            raise ValueError(f"trace line {line_no}: {err}") from None
    programs.sort(key=lambda p: p.arrival_s)
    if header is None:
        return Workload(name, tuple(programs))
    return Workload(
        header["name"], tuple(programs), header["rate"], header["seed"], header["synthetic"], header["description"]
    )


def _reject_constant(constant: str) -> float:
    raise ValueError(f"{constant} is not a valid JSON number")


def _parse_header(obj: dict) -> dict:
    _check_keys(obj, _HEADER_KEYS, {"autellix_trace"}, "header")
    if obj["autellix_trace"] != FORMAT_VERSION:
        raise ValueError(f"unsupported trace version {obj['autellix_trace']!r} (this reader knows {FORMAT_VERSION})")
    rate = obj.get("rate")
    if rate == "inf":
        rate = math.inf
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))):
        raise ValueError(f"header rate must be a number, 'inf' or null, got {rate!r}")
    seed = obj.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"header seed must be an int or null, got {seed!r}")
    fields = {"name": obj.get("name", "trace"), "description": obj.get("description", "")}
    for key, value in fields.items():
        if not isinstance(value, str):
            raise TypeError(f"header {key} must be a string, got {value!r}")
    synthetic = obj.get("synthetic", False)
    if not isinstance(synthetic, bool):
        raise TypeError(f"header synthetic must be true or false, got {synthetic!r}")
    return {**fields, "rate": rate, "seed": seed, "synthetic": synthetic}


def program_from_json(obj: dict) -> ProgramSpec:
    _check_keys(obj, _PROGRAM_KEYS, {"program_id", "arrival_s", "calls"}, "program")
    calls = obj["calls"]
    if not isinstance(calls, list) or not calls:
        raise ValueError("program 'calls' must be a non-empty list")
    parsed = []
    for i, call in enumerate(calls):
        try:
            parsed.append(call_from_json(call))
        except (ValueError, TypeError) as err:
            raise ValueError(f"program {obj['program_id']!r} call {i}: {err}") from None
    return ProgramSpec(obj["program_id"], obj["arrival_s"], tuple(parsed), obj.get("workload", ""))


def call_from_json(obj: object) -> CallSpec:
    if not isinstance(obj, dict):
        raise TypeError(f"a call must be a JSON object, got {type(obj).__name__}")
    _check_keys(obj, set(_CALL_REQUIRED) | set(_CALL_OPTIONAL), set(_CALL_REQUIRED), "call")
    values = dict(obj)
    parents = values.get("parent_thread_ids", [])
    if not isinstance(parents, list):
        raise TypeError(f"parent_thread_ids must be a list of strings, got {parents!r}")
    values["parent_thread_ids"] = tuple(parents)
    return CallSpec(**values)


def _check_keys(obj: dict, allowed: set[str], required: set[str], what: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ValueError(f"unknown {what} keys {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise ValueError(f"{what} is missing keys {missing}")
