"""The swap connector's names and settings (``kv_connector_extra_config``), validated at engine start."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CONNECTOR_NAME = "AutellixSwapConnector"
MODULE_PATH = "autellix_ray.vllm.swap_connector"  # what users name in kv_connector_module_path
SWAP_REPORT_KEY = "autellix_swap"  # a call's swap counters in its final kv_transfer_params
DEFAULT_POOL_BYTES = 1 << 30
DEFAULT_MIN_SWAP_TOKENS = 16
KERNELS = ("auto", "torch", "triton")


@dataclass(frozen=True)
class SwapSettings:
    """``kv_connector_extra_config`` of the swap connector (validated at engine start)."""

    pool_bytes: int = DEFAULT_POOL_BYTES  # host pool bound, per worker
    min_swap_tokens: int = DEFAULT_MIN_SWAP_TOKENS  # shorter contexts are recomputed
    kernel: str = "auto"  # auto: Triton kernel on CUDA when usable, else torch

    @classmethod
    def from_mapping(cls, raw: dict[str, Any] | None) -> SwapSettings:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - {"pool_bytes", "min_swap_tokens", "kernel"})
        if unknown:
            raise ValueError(f"unknown swap connector setting(s) {unknown}")
        settings = cls(**raw)
        for name in ("pool_bytes", "min_swap_tokens"):
            value = getattr(settings, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if settings.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {settings.kernel!r}")
        return settings


def swap_kv_transfer_config(
    pool_bytes: int = DEFAULT_POOL_BYTES, min_swap_tokens: int = DEFAULT_MIN_SWAP_TOKENS, kernel: str = "auto"
) -> dict[str, Any]:
    """The ``kv_transfer_config`` engine argument that turns swap preemption on."""
    settings = SwapSettings.from_mapping(
        {"pool_bytes": pool_bytes, "min_swap_tokens": min_swap_tokens, "kernel": kernel}
    )
    return {
        "kv_connector": CONNECTOR_NAME,
        "kv_connector_module_path": MODULE_PATH,
        "kv_role": "kv_both",
        "kv_load_failure_policy": "recompute",  # a lost host entry means recompute, not an error
        "kv_connector_extra_config": asdict(settings),
    }
