"""BFCL v3 multi-turn workload: ReAct-style tool-calling programs (single thread).

Data: the PyPI package ``bfcl-eval`` (tested: 2026.3.23). Its multi-turn data is the
BFCL v3 multi-turn set, shipped under v4 file names in ``bfcl_eval/data``:
``BFCL_v4_multi_turn_{base,miss_func,miss_param,long_context}.json`` (200 entries each,
one JSON object per line: ``question`` = list of turns, each a list of user messages;
``involved_classes``, ``excluded_function``, ``missed_function``), ground truth in
``possible_answer/`` (per turn, the list of function-call strings) and the tool docs in
``multi_turn_func_doc/<class file>.json`` (one function schema per line). Files are
located with ``importlib.util.find_spec("bfcl_eval")`` and never imported: the package
pins numpy==1.26.4 and ~30 SDKs, so install it with ``pip install --no-deps``.

Derivation (one entry -> one program on thread ``"main"``), prompt = whole history:

- system prompt: ReAct instructions + the docs of the involved classes minus
  ``excluded_function`` and minus functions held out by ``missed_function``
  (``doc_format="signature"``: one line ``name(param: type, ...) - description`` per
  function, the default; ``"json"``: the BFCL JSON schema lines, ~7x longer). It is a
  cross-program shared prefix (key = hash of its text).
- per turn: held-out functions for that turn arrive as a user message listing them;
  then the turn's user message(s); then one LLM call per ground-truth function call
  (decode = SYNTHETIC thought ~ LogNormal(mean ``thought_tokens_mean``=18) + the call
  string, followed by a SYNTHETIC tool observation ~ LogNormal(mean
  ``observation_tokens_mean``=24; x``long_context_observation_scale``=8 in the
  long_context category), then one final answer call (SYNTHETIC,
  ``final_tokens_mean``=30). A turn with no ground-truth call (miss_param) is just the
  final (clarifying) answer.
- think time: ``tool_time_mean_s`` (exponential, default 0) before a call that follows a
  tool observation; ``user_think_time_mean_s`` (default 0) before the first call of every
  turn after the first. The dataset carries no tool outputs or model text: those lengths
  are the synthetic part, everything else (turns, calls, docs, user text) is the data.

``source="auto"`` falls back, with a warning, to ``synthetic.chain_program`` matched to
the paper's BFCL row (10.75 calls, 735.06 prompt tokens, 34.14 decode) when the package
is missing; ``"dataset"`` raises instead; ``"synthetic"`` forces it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autellix_ray.bench.workloads.generators import Dataset, seeded_streams
from autellix_ray.bench.workloads.model import (
    ProgramSpec,
    Workload,
    assign_arrivals,
    check_num_programs,
    lognormal_ints,
)
from autellix_ray.bench.workloads.synthetic import chain_program, system_tokens_for_prompt_mean
from autellix_ray.bench.workloads.tokens import PromptBuilder, estimate_tokens

NAME = "bfcl"
CATEGORIES = ("base", "miss_func", "miss_param", "long_context")
DOC_FORMATS = ("signature", "json")
CLASS_DOC_FILES = {  # bfcl_eval/constants/executable_backend_config.py
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}
REACT_INSTRUCTIONS = (
    "You are an agent that completes the user's tasks by calling functions. Work step by step. "
    "At each step write one line 'Thought: <your reasoning>' and one line 'Action: func(param=value, ...)' "
    "calling exactly one of the functions below; the result comes back as 'Observation: ...'. "
    "When the current request is complete, or it cannot be done or lacks a required parameter, "
    "reply 'Final Answer: <message to the user>' instead of an action.\n\nFunctions:\n"
)
PAPER_SYNTHETIC = {"calls_mean": 10.75, "calls_max": 70, "prompt_mean": 735.06, "decode_mean": 34.14}


@dataclass(frozen=True)
class BfclParams:
    """The synthetic part of a program (see module header): lengths in tokens, times in s."""

    thought_tokens_mean: float = 18.0  # the thought before each ground-truth call
    observation_tokens_mean: float = 24.0  # a tool's observation after it
    final_tokens_mean: float = 30.0  # a turn's final answer
    long_context_observation_scale: float = 8.0  # observations x this in the long_context category
    sigma: float = 0.6  # log-sigma of every length
    tool_time_mean_s: float = 0.0  # exponential, before a call that follows an observation
    user_think_time_mean_s: float = 0.0  # exponential, before the first call of every turn but the first


@dataclass(frozen=True)
class BfclEntry:
    entry_id: str
    category: str
    turns: tuple[tuple[str, ...], ...]  # user message texts per turn
    answers: tuple[tuple[str, ...], ...]  # ground-truth call strings per turn
    docs: tuple[tuple[str, str], ...]  # (function name, doc text) initially visible
    held_out: tuple[tuple[int, tuple[tuple[str, str], ...]], ...]  # (turn, docs added then)


DATASET = Dataset(
    package="bfcl-eval", install="pip install --no-deps bfcl-eval", module="bfcl_eval", path="data",
    contains="multi_turn_func_doc", env="AUTELLIX_BFCL_DATA", label="BFCL",
)


def data_dir() -> Path | None:
    """``bfcl_eval/data`` of the installed package (or $AUTELLIX_BFCL_DATA), else None."""
    return DATASET.find()


def _jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fp:
        for line_no, line in enumerate(fp, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{line_no}: invalid JSON: {err}") from err
    return rows


def render_doc(function: dict, doc_format: str) -> str:
    if doc_format == "json":
        return json.dumps(function)
    params = function.get("parameters", {}).get("properties", {})
    args = ", ".join(f"{name}: {spec.get('type', 'any')}" for name, spec in params.items())
    description = function.get("description", "").split("Tool description:")[-1].strip()
    return f"{function['name']}({args}) - {description}"


_ENTRY_CACHE: dict[tuple, tuple[BfclEntry, ...]] = {}


def load_entries(directory: str | os.PathLike, doc_format: str = "signature") -> tuple[BfclEntry, ...]:
    """All multi-turn entries of the four v3 categories, with rendered docs (cached)."""
    if doc_format not in DOC_FORMATS:
        raise ValueError(f"doc_format must be one of {DOC_FORMATS}, got {doc_format!r}")
    directory = Path(directory)
    key = (str(directory.resolve()), doc_format)
    if key in _ENTRY_CACHE:
        return _ENTRY_CACHE[key]
    class_docs = {
        cls: [(f["name"], render_doc(f, doc_format)) for f in _jsonl(directory / "multi_turn_func_doc" / file)]
        for cls, file in CLASS_DOC_FILES.items()
    }
    entries = []
    for category in CATEGORIES:
        questions = _jsonl(_category_file(directory, "", category))
        answers = {a["id"]: a["ground_truth"] for a in _jsonl(_category_file(directory, "possible_answer", category))}
        for q in questions:
            excluded = set(q.get("excluded_function", []))
            missed = {int(t): set(names) for t, names in q.get("missed_function", {}).items()}
            all_missed = set().union(*missed.values()) if missed else set()
            docs = [d for cls in q["involved_classes"] for d in class_docs[cls] if d[0] not in excluded]
            turns = tuple(tuple(m["content"] for m in turn) for turn in q["question"])
            truth = answers[q["id"]]
            if len(truth) != len(turns):
                raise ValueError(f"{q['id']}: {len(turns)} turns but {len(truth)} ground-truth turns")
            entries.append(
                BfclEntry(
                    entry_id=q["id"],
                    category=category,
                    turns=turns,
                    answers=tuple(tuple(t) for t in truth),
                    docs=tuple(d for d in docs if d[0] not in all_missed),
                    held_out=tuple(
                        (t, tuple(d for d in docs if d[0] in names)) for t, names in sorted(missed.items())
                    ),
                )
            )
    _ENTRY_CACHE[key] = tuple(entries)
    return _ENTRY_CACHE[key]


def _category_file(directory: Path, sub: str, category: str) -> Path:
    folder = directory / sub if sub else directory
    for version in ("v4", "v3"):  # older bfcl-eval releases name the same files BFCL_v3_*
        path = folder / f"BFCL_{version}_multi_turn_{category}.json"
        if path.is_file():
            return path
    raise ValueError(f"{folder}: no BFCL_v3/v4 multi_turn_{category}.json")


def entry_program(
    entry: BfclEntry, program_id: str, rng: np.random.Generator, p: BfclParams = BfclParams()
) -> ProgramSpec:
    """One ReAct program from one BFCL entry (see module header)."""
    system_text = REACT_INSTRUCTIONS + "\n".join(doc for _, doc in entry.docs)
    system_tokens = estimate_tokens(system_text)
    shared_key = "bfcl-system:" + hashlib.sha1(system_text.encode()).hexdigest()[:16]
    held_out = dict(entry.held_out)
    obs_scale = p.long_context_observation_scale if entry.category == "long_context" else 1
    obs_mean = p.observation_tokens_mean * obs_scale
    builder = PromptBuilder()
    context: list = [("system", system_tokens)]
    calls = []

    def draw_time(mean_s: float) -> float:
        return float(rng.exponential(mean_s)) if mean_s > 0 else 0.0

    for t, (messages, truth) in enumerate(zip(entry.turns, entry.answers, strict=True)):
        if t in held_out:
            text = "\n".join(doc for _, doc in held_out[t]) + "\nI have updated some more functions you can use."
            context.append((("added", t), estimate_tokens(text)))
        for m, text in enumerate(messages):
            context.append((("user", t, m), estimate_tokens(text)))
        think = draw_time(p.user_think_time_mean_s) if t > 0 else 0.0
        for s, call_text in enumerate(truth):
            thought = lognormal_ints(rng, p.thought_tokens_mean, p.sigma)
            out = (("step", t, s), thought + estimate_tokens(call_text))
            calls.append(builder.call(context, out, thread_id="main", think_time_s=think,
                                      shared_prefix_key=shared_key, shared_prefix_tokens=system_tokens))
            context += [out, (("obs", t, s), lognormal_ints(rng, obs_mean, p.sigma))]
            think = draw_time(p.tool_time_mean_s)
        out = (("final", t), lognormal_ints(rng, p.final_tokens_mean, p.sigma))
        calls.append(builder.call(context, out, thread_id="main", think_time_s=think,
                                  shared_prefix_key=shared_key, shared_prefix_tokens=system_tokens))
        context.append(out)
    return ProgramSpec(program_id, 0.0, tuple(calls), NAME)


def make_bfcl_workload(
    num_programs: int,
    rate: float,
    seed: int,
    *,
    source: str = "auto",
    directory: str | os.PathLike | None = None,
    doc_format: str = "signature",
    categories: tuple[str, ...] = CATEGORIES,
    **options: float,  # fields of BfclParams (used with the dataset)
) -> Workload:
    check_num_programs(num_programs)
    params = BfclParams(**options)
    folder = DATASET.locate(source, directory)
    unknown = set(categories) - set(CATEGORIES)
    if unknown or not categories:
        raise ValueError(f"categories must be a non-empty subset of {CATEGORIES}, got {categories!r}")
    arrivals, content_rng = seeded_streams(num_programs, rate, seed)
    if folder is None:
        return _synthetic(num_programs, rate, seed, content_rng, arrivals)
    entries = [e for e in load_entries(folder, doc_format) if e.category in categories]
    picks = content_rng.choice(len(entries), size=num_programs, replace=num_programs > len(entries))
    programs = [
        entry_program(entries[int(k)], f"{NAME}-{i}", content_rng, params) for i, k in enumerate(picks)
    ]
    description = (
        f"BFCL v3 multi-turn ({', '.join(categories)}; {len(entries)} entries) from bfcl-eval data, "
        f"doc_format={doc_format}, ReAct steps = ground-truth calls + 1 final answer per turn; "
        "thought/observation/final-answer lengths synthetic; tokens=ceil(chars/4)"
    )
    return Workload(NAME, assign_arrivals(programs, arrivals), rate, seed, False, description)


def _synthetic(num_programs, rate, seed, rng, arrivals) -> Workload:
    new_mean = 20.0
    p = PAPER_SYNTHETIC
    system = system_tokens_for_prompt_mean(p["prompt_mean"], p["calls_mean"], new_mean, p["decode_mean"])
    programs = [
        chain_program(
            rng, f"{NAME}-{i}", NAME, calls_mean=p["calls_mean"], calls_max=p["calls_max"],
            new_tokens_mean=new_mean, decode_mean=p["decode_mean"], system_tokens=system,
            shared_prefix_key="bfcl-synthetic-system",
        )
        for i in range(num_programs)
    ]
    description = f"SYNTHETIC ReAct chains matched to the paper's BFCL row (system prefix {system} tokens)"
    return Workload(NAME, assign_arrivals(programs, arrivals), rate, seed, True, description)
