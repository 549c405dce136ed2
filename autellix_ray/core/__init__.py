"""The pure Autellix policy core: process table, scheduling and routing policies, and the
cluster tier's services (program table service, router pins).

Imports no ray, vllm or torch; time (and stores, metric hooks) come in as arguments. The vLLM plugin, the
replay simulator and the unit tests all run these same objects.
"""

from autellix_ray.core.program_service import ProgramService, ProgramState, TableHooks
from autellix_ray.core.program_table import (
    ProgramRow,
    ProgramTable,
    ProgramTableFull,
    ThreadRow,
    UnknownProgram,
)
from autellix_ray.core.routing import (
    ROUTERS,
    EngineLoad,
    ProgramRouter,
    RouteDecision,
    RouteRequest,
    Router,
    make_router,
)
from autellix_ray.core.scheduling import (
    SCHEDULING_POLICIES,
    Call,
    FinishedCall,
    QueueConfig,
    SchedulingPolicy,
    ServiceModel,
    make_scheduling_policy,
)

__all__ = [
    "ROUTERS",
    "SCHEDULING_POLICIES",
    "Call",
    "EngineLoad",
    "FinishedCall",
    "ProgramRouter",
    "ProgramRow",
    "ProgramService",
    "ProgramState",
    "ProgramTable",
    "ProgramTableFull",
    "QueueConfig",
    "RouteDecision",
    "RouteRequest",
    "Router",
    "SchedulingPolicy",
    "ServiceModel",
    "TableHooks",
    "ThreadRow",
    "UnknownProgram",
    "make_router",
    "make_scheduling_policy",
]
