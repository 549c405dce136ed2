"""Data model of a replayable agent workload: calls, programs, workloads.

A ``Workload`` is a tuple of ``ProgramSpec`` sorted by arrival time; a program is an
ordered tuple of ``CallSpec``. Everything is frozen and validated on construction
(``ValueError`` naming the bad field), so a replay never meets an inconsistent call.

Threads and dependencies (the same model as ``autellix_ray.core.program_table``): a
thread is a sequential chain of calls inside a program; a call runs on one thread and
may name parent threads. Calls are listed in issue order, and call ``i`` waits for

- the previous call (index < i) on its own thread, and
- for each parent thread, that thread's latest call with index < i;

once all of those have finished, the call is issued ``think_time_s`` later (user think
time or tool execution time). A call with no earlier call on its thread and no parents
is issued ``think_time_s`` after the program's arrival. ``ProgramSpec.dependencies()``
returns these indices. Parent threads must already have a call before ``i``.

Prefix reuse (optional, for prefix-cache modelling; counts, not token ids):

- ``reuse_call``/``reuse_tokens``: the prompt's first ``reuse_tokens`` tokens equal the
  first ``reuse_tokens`` tokens of call ``reuse_call``'s context (its prompt followed by
  its output) in the same program; ``-1``/``0`` when nothing is reused. When
  ``reuse_tokens`` exceeds the source's prompt length, the source is one of the call's
  (transitive) dependencies, so its output exists when the call is issued.
- ``shared_prefix_key``/``shared_prefix_tokens``: the prompt's first
  ``shared_prefix_tokens`` tokens are identical for every call, in any program, with the
  same key (a system prompt, tool docs, few-shot examples); ``""``/``0`` when none.

A replay that needs token ids builds each prompt as: the source context's first
``reuse_tokens`` ids, then the shared prefix's ids from there up to
``shared_prefix_tokens``, then fresh ids up to ``prompt_tokens``.

Arrivals: ``poisson_arrival_times`` draws a Poisson process of ``rate`` programs/s
(exponential gaps, first arrival one gap after 0); ``rate=inf`` puts every program at 0
(the offline-batch experiments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class CallSpec:
    thread_id: str  # the sequential chain this call runs on
    prompt_tokens: int  # full prompt length sent to the engine (history included)
    decode_tokens: int  # tokens the call generates
    parent_thread_ids: tuple[str, ...] = ()  # threads whose latest call must finish first
    think_time_s: float = 0.0  # delay between dependencies finishing and the call's issue
    reuse_call: int = -1  # earlier call of this program whose context the prompt starts with
    reuse_tokens: int = 0  # how many leading prompt tokens come from that context
    shared_prefix_key: str = ""  # cross-program shared prefix identity ("" = none)
    shared_prefix_tokens: int = 0  # leading prompt tokens shared by every call with the key

    def __post_init__(self) -> None:
        if not isinstance(self.thread_id, str) or not self.thread_id:
            raise ValueError(f"thread_id must be a non-empty string, got {self.thread_id!r}")
        if not isinstance(self.parent_thread_ids, tuple) or not all(
            isinstance(p, str) and p for p in self.parent_thread_ids
        ):
            raise ValueError(f"parent_thread_ids must be a tuple of non-empty strings, got {self.parent_thread_ids!r}")
        if self.thread_id in self.parent_thread_ids:
            raise ValueError(f"thread {self.thread_id!r} names itself as a parent")
        for name in ("prompt_tokens", "decode_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("reuse_tokens", "shared_prefix_tokens"):
            value = getattr(self, name)
            if not _is_int(value) or not 0 <= value <= self.prompt_tokens:
                raise ValueError(f"{name} must be an int in [0, prompt_tokens={self.prompt_tokens}], got {value!r}")
        if not _is_int(self.reuse_call) or self.reuse_call < -1:
            raise ValueError(f"reuse_call must be an int >= -1, got {self.reuse_call!r}")
        if (self.reuse_call == -1) != (self.reuse_tokens == 0):
            raise ValueError(
                f"reuse_call={self.reuse_call} and reuse_tokens={self.reuse_tokens}: both unset or both set"
            )
        if not isinstance(self.shared_prefix_key, str) or (self.shared_prefix_key == "") != (
            self.shared_prefix_tokens == 0
        ):
            raise ValueError(
                f"shared_prefix_key={self.shared_prefix_key!r} and shared_prefix_tokens="
                f"{self.shared_prefix_tokens}: both unset or both set"
            )
        if not _is_time(self.think_time_s):
            raise ValueError(f"think_time_s must be a finite number >= 0, got {self.think_time_s!r}")

    @property
    def new_tokens(self) -> int:
        """Prompt tokens in neither the reused context nor the shared prefix (what a warm
        prefix cache still has to compute)."""
        return self.prompt_tokens - max(self.reuse_tokens, self.shared_prefix_tokens)


@dataclass(frozen=True)
class ProgramSpec:
    program_id: str
    arrival_s: float  # arrival of the program (its first calls' dependency-free start)
    calls: tuple[CallSpec, ...]
    workload: str = ""  # the generator that produced it ("sharegpt", "bfcl", "lats", ...)

    def __post_init__(self) -> None:
        if not isinstance(self.program_id, str) or not self.program_id:
            raise ValueError(f"program_id must be a non-empty string, got {self.program_id!r}")
        if not _is_time(self.arrival_s):
            raise ValueError(f"program {self.program_id}: arrival_s must be a finite number >= 0, got {self.arrival_s!r}")
        if not isinstance(self.calls, tuple) or not self.calls:
            raise ValueError(f"program {self.program_id}: calls must be a non-empty tuple")
        seen_threads: set[str] = set()
        for i, call in enumerate(self.calls):
            if not isinstance(call, CallSpec):
                raise TypeError(f"program {self.program_id}: call {i} is not a CallSpec")
            missing = [p for p in call.parent_thread_ids if p not in seen_threads]
            if missing:
                raise ValueError(
                    f"program {self.program_id}: call {i} names parent threads {missing} with no earlier call"
                )
            if call.reuse_call >= i:
                raise ValueError(f"program {self.program_id}: call {i} reuses call {call.reuse_call}, not an earlier one")
            if call.reuse_call >= 0:
                src = self.calls[call.reuse_call]
                if call.reuse_tokens > src.prompt_tokens + src.decode_tokens:
                    raise ValueError(
                        f"program {self.program_id}: call {i} reuses {call.reuse_tokens} tokens, more than call "
                        f"{call.reuse_call}'s context ({src.prompt_tokens + src.decode_tokens})"
                    )
            seen_threads.add(call.thread_id)

    @property
    def num_calls(self) -> int:
        return len(self.calls)

    @property
    def total_prompt_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def total_decode_tokens(self) -> int:
        return sum(c.decode_tokens for c in self.calls)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Distinct threads in order of first appearance."""
        return tuple(dict.fromkeys(c.thread_id for c in self.calls))

    def dependencies(self) -> tuple[tuple[int, ...], ...]:
        """For each call, the indices of the earlier calls it waits for (see module header)."""
        latest: dict[str, int] = {}
        deps: list[tuple[int, ...]] = []
        for i, call in enumerate(self.calls):
            wait = {latest[t] for t in (call.thread_id, *call.parent_thread_ids) if t in latest}
            deps.append(tuple(sorted(wait)))
            latest[call.thread_id] = i
        return tuple(deps)


@dataclass(frozen=True)
class Workload:
    name: str
    programs: tuple[ProgramSpec, ...]
    rate: float | None = None  # programs/s of the arrival process (inf: all at 0); None if unknown
    seed: int | None = None  # seed that reproduces it (None for recorded traces)
    synthetic: bool = False  # True when any program comes from a synthetic generator
    description: str = ""  # where the programs come from, and how

    def __post_init__(self) -> None:
        if not isinstance(self.programs, tuple):
            raise TypeError("programs must be a tuple of ProgramSpec")
        ids: set[str] = set()
        previous = 0.0
        for p in self.programs:
            if not isinstance(p, ProgramSpec):
                raise TypeError(f"workload {self.name}: {p!r} is not a ProgramSpec")
            if p.program_id in ids:
                raise ValueError(f"workload {self.name}: duplicate program_id {p.program_id!r}")
            if p.arrival_s < previous:
                raise ValueError(f"workload {self.name}: programs must be sorted by arrival_s ({p.program_id})")
            ids.add(p.program_id)
            previous = p.arrival_s
        if self.rate is not None and (isinstance(self.rate, bool) or not self.rate > 0):
            raise ValueError(f"rate must be > 0 (or None), got {self.rate!r}")

    @property
    def num_programs(self) -> int:
        return len(self.programs)

    @property
    def num_calls(self) -> int:
        return sum(p.num_calls for p in self.programs)


def _is_int(value: object) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_time(value: object) -> bool:
    """A finite number >= 0 (seconds), not a bool."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and math.isfinite(value) and value >= 0


def check_rate(rate: float) -> float:
    """Validate an arrival rate (programs/s); ``math.inf`` means all programs at t=0."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or math.isnan(rate) or rate <= 0:
        raise ValueError(f"rate must be a number > 0 programs/s (math.inf for an offline batch), got {rate!r}")
    return float(rate)


def check_num_programs(num_programs: int) -> int:
    if not _is_int(num_programs) or num_programs < 1:
        raise ValueError(f"num_programs must be an int >= 1, got {num_programs!r}")
    return num_programs


def poisson_arrival_times(num_programs: int, rate: float, rng: np.random.Generator) -> list[float]:
    """Arrival times (s) of a Poisson process of ``rate`` programs/s."""
    check_num_programs(num_programs)
    rate = check_rate(rate)
    if math.isinf(rate):
        return [0.0] * num_programs
    return [float(t) for t in np.cumsum(rng.exponential(1.0 / rate, size=num_programs))]


def make_rngs(seed: int, count: int) -> list[np.random.Generator]:
    """Independent generators derived from one seed (arrivals never shift content)."""
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(count)]


def lognormal_ints(rng: np.random.Generator, mean: float, sigma: float, size: int | None = None):
    """Integers >= 1 from a lognormal with the given mean (not median) and log-sigma."""
    mu = math.log(mean) - sigma * sigma / 2.0
    if size is None:
        return max(1, round(float(rng.lognormal(mu, sigma))))
    return [max(1, int(v)) for v in np.rint(rng.lognormal(mu, sigma, size=size))]


def assign_arrivals(
    programs: Sequence[ProgramSpec], arrivals: Sequence[float]
) -> tuple[ProgramSpec, ...]:
    """Return the programs with the given arrival times (same order)."""
    return tuple(replace(p, arrival_s=t) for p, t in zip(programs, arrivals, strict=True))
