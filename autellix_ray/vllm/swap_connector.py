"""The swap connector under the module path users configure (``kv_connector_module_path``).

    kv_transfer_config={"kv_connector": "AutellixSwapConnector",
                        "kv_connector_module_path": "autellix_ray.vllm.swap_connector", ...}

The code lives in ``autellix_ray.vllm.swap`` (how it works: that package's doc); this
module re-exports it, including the older private names the tests use.
"""

from autellix_ray.vllm.swap.connector import (
    AutellixSwapConnector,
    SchedulerSide,
    SwapConnectorMetadata,
    SwapWorkerMetadata,
    wire_swap_priority,
)
from autellix_ray.vllm.swap.plan import (
    CallSwapStats,
    PoolCounters,
    SwapIn,
    SwapOut,
    SwapPlan,
    SwapPlanner,
    SwapPool,
    WorkerPoolStats,
)
from autellix_ray.vllm.swap.settings import (
    CONNECTOR_NAME,
    DEFAULT_MIN_SWAP_TOKENS,
    DEFAULT_POOL_BYTES,
    KERNELS,
    MODULE_PATH,
    SWAP_REPORT_KEY,
    SwapSettings,
    swap_kv_transfer_config,
)
from autellix_ray.vllm.swap.worker import SwapWorker

_SchedulerSide = SchedulerSide
_WorkerSide = SwapWorker

__all__ = [
    "CONNECTOR_NAME",
    "DEFAULT_MIN_SWAP_TOKENS",
    "DEFAULT_POOL_BYTES",
    "KERNELS",
    "MODULE_PATH",
    "SWAP_REPORT_KEY",
    "AutellixSwapConnector",
    "CallSwapStats",
    "PoolCounters",
    "SchedulerSide",
    "SwapConnectorMetadata",
    "SwapIn",
    "SwapOut",
    "SwapPlan",
    "SwapPlanner",
    "SwapPool",
    "SwapSettings",
    "SwapWorker",
    "SwapWorkerMetadata",
    "WorkerPoolStats",
    "swap_kv_transfer_config",
    "wire_swap_priority",
]
