"""The in-memory backend with a cost ledger, for fast tests of what the CLI and the dashboard show
about money: spans per pool (kept after the pool is deleted, as real ledgers are), the times tasks
ended, and a pool's autostop state as a test sets them. It stands in for no engine."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from orchestrator.backend import Capability
from orchestrator.cost.spend import clip
from orchestrator.model import JobRef, PoolInfo, TaskInfo, TaskState, UsageSpan
from orchestrator.spec.pool import PoolSpec
from tests.support.memory_backend import MemoryBackend


def span(start: float, end: float, *, job: str | None = None, task: str | None = None, share: float = 1.0,
         price: float = 2.0, node: str = "n0", pool: str = "p") -> UsageSpan:
    """A ledger span (``price`` USD per node hour; no job: idle)."""
    return UsageSpan(pool_id=pool, node_id=node, start=start, end=end, price_per_hour=price, share=share,
                     job_id=job, task_id=task)


@dataclass(frozen=True)
class PoolOverride:
    """What ``get_pool`` says of a pool instead of ``ready``: its state and when it stops itself."""

    state: str = "ready"
    stops_at: float | None = None


class LedgerBackend(MemoryBackend):
    """The memory backend with a ledger (``spans`` per pool id; ``usage_calls`` counts its reads),
    task end times (``ended``) and pool states (``overrides``)."""

    def __init__(self) -> None:
        super().__init__(frozenset({Capability.COST_LEDGER, Capability.SWEEP_HOST}))
        self.spans: dict[str, list[UsageSpan]] = {}
        self.ended: dict[tuple[str, str], float] = {}
        self.overrides: dict[str, PoolOverride] = {}
        self.usage_calls = 0

    def usage(self, pool_id: str, *, since: float | None = None) -> Iterator[UsageSpan]:
        self.usage_calls += 1
        return clip(self.spans.get(pool_id, []), since)

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        return [replace(task, ended_at=self.ended.get((job.job_id, task.id))) for task in super().list_tasks(job)]

    def end(self, job: JobRef, task_id: str, state: TaskState, at: float, *, usd: float = 0.0,
            metrics: bytes | None = None) -> None:
        """Task ``task_id`` ended at ``at`` having cost ``usd`` (one span on n0 at 3600 USD/h)."""
        self.finish(job, task_id, state)
        self.ended[(job.job_id, task_id)] = at
        if metrics is not None:
            self.jobs[job].files[(task_id, "metrics")] = metrics
        if usd:
            self.spans.setdefault(job.pool_id, []).append(
                span(at - usd, at, job=job.job_id, task=task_id, price=3600.0, pool=job.pool_id))

    def _info(self, spec: PoolSpec) -> PoolInfo:
        info = super()._info(spec)
        override = self.overrides.get(spec.id)
        return info if override is None else replace(info, state=override.state, stops_at=override.stops_at)
