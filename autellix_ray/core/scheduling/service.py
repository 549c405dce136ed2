"""Attained service per engine step: what PLAS/ATLAS priorities and quanta count.

Algorithm (``ServiceModel.step_service_s``), for a call scheduled in one engine step:
- ``unit="wall"`` (the paper's "model-executor time"): the step's wall time, credited in
  full to every call in the batch. Under load a step holds hundreds of calls and lasts
  longer, so every program's service inflates with the batch size: with doubling queue
  boundaries every program sinks to the bottom queue after a few calls and PLAS/ATLAS
  degenerate into FCFS (measured: 82% of a long-context agent's calls ended in the last
  queue).
- ``unit="work"`` (the default): the batch-1 time of the work the call did, which does not
  depend on load: ``decode_token_s`` per decoded token (a step that computes one token for
  the call) and ``prefill_token_s`` per prompt token computed (a chunk of more than one
  token). Prefix-cache hits are not computed, so they cost nothing.

Parameters and defaults: ``decode_token_s=0.008`` and ``prefill_token_s=0.0001`` are the
batch-1 decode and prefill times of Llama-3.1-8B on an A100 (16 GB of weights read per
decode step at ~2 TB/s; 16 GFLOP per prompt token at ~50% of 312 TFLOP/s). They are a
unit, not a measurement of the engine at hand: the queue boundaries (``QueueConfig``) are
expressed in it, so a program's queue depends on how much it asked of the model, not on
the hardware or the load. On other models only the ratio decode/prefill (~80) matters
for the order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

SERVICE_UNITS = ("wall", "work")
DEFAULT_DECODE_TOKEN_S = 0.008
DEFAULT_PREFILL_TOKEN_S = 0.0001


@dataclass(frozen=True)
class ServiceModel:
    unit: str = "work"  # "wall" | "work" (see the module header)
    decode_token_s: float = DEFAULT_DECODE_TOKEN_S  # service per decoded token ("work")
    prefill_token_s: float = DEFAULT_PREFILL_TOKEN_S  # service per computed prompt token ("work")

    def __post_init__(self) -> None:
        if self.unit not in SERVICE_UNITS:
            raise ValueError(f"service unit must be one of {list(SERVICE_UNITS)}, got {self.unit!r}")
        for name in ("decode_token_s", "prefill_token_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                value > 0 and math.isfinite(value)
            ):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")

    def step_service_s(self, num_tokens: int, step_wall_s: float) -> float:
        """Service a call attains in a step that computed ``num_tokens`` tokens for it."""
        if self.unit == "wall":
            return step_wall_s
        if num_tokens <= 1:
            return self.decode_token_s * num_tokens
        return self.prefill_token_s * num_tokens

    def step_services_s(self, num_tokens: Mapping[str, int], step_wall_s: float) -> dict[str, float]:
        """``step_service_s`` of every call of a step (call id -> tokens computed), in the same order."""
        if self.unit == "wall":
            return dict.fromkeys(num_tokens, step_wall_s)
        decode, prefill = self.decode_token_s, self.prefill_token_s
        return {cid: decode * n if n <= 1 else prefill * n for cid, n in num_tokens.items()}
