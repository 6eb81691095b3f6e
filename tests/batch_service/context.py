"""The engines a route handler can reach."""
from __future__ import annotations

from dataclasses import dataclass

from .faults import FaultInjector, RequestLog
from .job_engine import JobEngine
from .pool_engine import PoolEngine
from .pool_scaling import PoolScaling
from .state import BatchState


@dataclass(frozen=True)
class ServiceContext:
    """State, engines, fault rules and request log of one service instance."""

    state: BatchState
    pools: PoolEngine
    scaling: PoolScaling
    jobs: JobEngine
    faults: FaultInjector
    requests: RequestLog
