"""Mixture-of-Agents multi-agent DAG (Wang et al. 2024, arXiv 2406.04692): SYNTHETIC.

MoA answers one user query with ``layers`` layers of ``proposers`` parallel LLM calls;
every call of layer ``l > 1`` reads the query plus ALL outputs of layer ``l - 1`` (the
paper's "aggregate-and-synthesize" prompt), and one aggregator call reads the last
layer's outputs and writes the final answer. The paper's main configuration (Together
MoA) uses 3 layers of 6 proposers and ``max_tokens=512`` per response, evaluated on
AlpacaEval 2.0 / MT-Bench / FLASK instructions. Served on one model, as in this replay,
it is "Self-MoA": several samples of one model (Li et al. 2025, "Rethinking
Mixture-of-Agents", arXiv 2502.00674). No trace is public: lengths are drawn below
(``synthetic=True``).

Algorithm, per program (lengths in tokens, integers >= 1):

- query ``q ~ LogNormal(mean query_tokens_mean)`` capped at ``query_max_tokens``
  (AlpacaEval / MT-Bench instructions: tens to a few hundred tokens; approximately);
- every response ``~ LogNormal(mean decode_tokens_mean)`` capped at
  ``decode_max_tokens`` (the paper's 512-token generation limit);
- prompt of a layer-1 proposer = system prompt (``system_tokens``, the MoA
  aggregate-and-synthesize instructions, identical in every program:
  ``shared_prefix_key="moa-system"``) + query; of a layer-``l`` proposer and of the
  aggregator = system + query + the ``proposers`` responses of the layer before, in
  slot order. (Together's reference code puts the responses in the system message,
  before the query; putting them after it changes only which ~100 tokens are shared.)
- threads: one per call, ``L{l}P{j}`` for proposer ``j`` of layer ``l`` and ``"agg"``;
  a layer-``l`` thread names every layer-``l-1`` thread as a parent, the aggregator
  every last-layer thread, so ``ProgramSpec.dependencies()`` is exactly the previous
  layer and ATLAS sees the DAG. Calls are listed layer by layer.
- prefix reuse is derived by ``PromptBuilder`` over those segments: proposers of one
  layer send identical prompts (the later ones reuse the first one's whole prompt),
  and a layer-2 prompt starts with slot 0 of layer 1's full context.
- ``think_time_s``: ``orchestration_time_s`` before every call after layer 1 (default
  0: the orchestrator forwards the responses at once).

Defaults (3 x 6 + 1 = 19 calls/program): layer-1 prompts ~300 tokens, later prompts
~2.2k (mean ~1.6k over all calls), decodes ~310 tokens (350 before the 512 cap).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from autellix_ray.bench.workloads.generators import SyntheticWorkload
from autellix_ray.bench.workloads.model import ProgramSpec, lognormal_ints
from autellix_ray.bench.workloads.tokens import PromptBuilder

NAME = "moa"
SHARED_KEY = "moa-system"
AGGREGATOR = "agg"


@dataclass(frozen=True)
class MoaParams:
    layers: int = 3  # proposer layers (Together MoA: 3)
    proposers: int = 6  # parallel proposers per layer (Together MoA: 6)
    system_tokens: int = 150  # aggregate-and-synthesize system prompt (shared)
    query_tokens_mean: float = 150.0  # user instruction
    query_max_tokens: int = 2000
    decode_tokens_mean: float = 350.0  # one response
    decode_max_tokens: int = 512  # the paper's max_tokens
    sigma: float = 0.6  # log-sigma of every token length
    orchestration_time_s: float = 0.0  # delay before every call after layer 1

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("layers", "proposers", "query_max_tokens", "decode_max_tokens"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if int(self.system_tokens) != self.system_tokens or self.system_tokens < 0:
            raise ValueError(f"system_tokens must be an int >= 0, got {self.system_tokens!r}")
        for name in ("query_tokens_mean", "decode_tokens_mean"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("sigma", "orchestration_time_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


def layer_threads(layer: int, proposers: int) -> tuple[str, ...]:
    """Thread ids of the proposers of ``layer`` (1-based)."""
    return tuple(f"L{layer}P{j}" for j in range(proposers))


def moa_program(program_id: str, rng: np.random.Generator, params: MoaParams = MoaParams()) -> ProgramSpec:
    p = params
    head = [("system", p.system_tokens)] if p.system_tokens else []
    head.append(("query", min(p.query_max_tokens, lognormal_ints(rng, p.query_tokens_mean, p.sigma))))
    shared = {"shared_prefix_key": SHARED_KEY, "shared_prefix_tokens": p.system_tokens} if p.system_tokens else {}
    builder = PromptBuilder()
    calls = []
    previous: list = []  # output segments of the layer before
    parents: tuple[str, ...] = ()
    for layer in range(1, p.layers + 2):  # the last "layer" is the aggregator
        threads = layer_threads(layer, p.proposers) if layer <= p.layers else (AGGREGATOR,)
        think = p.orchestration_time_s if layer > 1 else 0.0
        outputs = []
        for thread in threads:
            out = ((thread, "out"), min(p.decode_max_tokens, lognormal_ints(rng, p.decode_tokens_mean, p.sigma)))
            calls.append(builder.call([*head, *previous], out, thread_id=thread, parent_thread_ids=parents,
                                      think_time_s=think, **shared))
            outputs.append(out)
        previous, parents = outputs, threads
    return ProgramSpec(program_id, 0.0, tuple(calls), NAME)


def _describe(p: MoaParams) -> str:
    return (
        f"SYNTHETIC Mixture-of-Agents DAG: {p.layers} layers x {p.proposers} proposers, "
        "each reading the query and all of the previous layer's responses, then 1 aggregator"
    )


make_moa_workload = SyntheticWorkload(NAME, MoaParams, moa_program, _describe)
