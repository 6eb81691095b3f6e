"""What the CLI shows about money: ``orch cost``, the spend column of ``orch status``, trial costs
of ``orch sweep results`` and budget warnings while a job is followed.

Everything is computed from the backends' cost ledgers (``backend.CostLedger.usage``), which
hold the engine's own records, so it needs no process that watched the work. Pools deleted from
this machine are asked too (their retired records name the backend that kept their ledger).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backend import Backend, CostLedger, capability, load_backend, supports
from orchestrator.cost.budgets import Limit, job_limits, pool_limit
from orchestrator.cost.spend import PoolSpend, spent_until, summarize
from orchestrator.errors import OrchError
from orchestrator.model import JobRef, TaskInfo, UsageSpan
from orchestrator.records import job_index, pool_records
from orchestrator.records.pool_records import PoolRecord
from orchestrator.spec.pool import PoolSpec


@dataclass
class PoolCost:
    """One pool's spend (``None`` when its backend keeps no ledger or could not be read: ``note``)."""

    pool_id: str
    backend: str
    deleted: bool
    spec: PoolSpec | None
    created_at: float
    spend: PoolSpend | None = None
    note: str | None = None

    @property
    def unpriced(self) -> bool:
        """Node hours were counted at 0 USD for want of a price."""
        return self.spend is not None and self.spend.total.unpriced_hours > 0


@dataclass
class CostReport:
    since: float | None
    pools: list[PoolCost] = field(default_factory=list)

    def notes(self) -> list[str]:
        """What the figures leave out or count at no price, one line each."""
        out = [f"pool {p.pool_id}: {p.note}" for p in self.pools if p.note]
        for pool in self.pools:
            if pool.unpriced and pool.spend is not None:
                out.append(f"pool {pool.pool_id}: {pool.spend.total.unpriced_hours:.2f} node hour(s) counted at 0 USD: "
                           "it has no price (set price_per_node_hour in the pool file)")
        return out


def known_pools(pool_id: str | None = None) -> list[tuple[PoolRecord, bool]]:
    """Pools to report: this machine's records, then retired ones (deleted pools) not live again."""
    live = {record.id: record for record in pool_records.all_records()}
    found = [(record, False) for record in live.values()]
    found += [(record, True) for record in pool_records.retired_records() if record.id not in live]
    return [(record, deleted) for record, deleted in found if pool_id is None or record.id == pool_id]


def usage(backend: Backend, pool_id: str, since: float | None = None) -> list[UsageSpan] | None:
    """The pool's spans from its backend's ledger, or None when the backend keeps none."""
    if not supports(backend, CostLedger):
        return None
    return list(capability(backend, CostLedger).usage(pool_id, since=since))


def pool_cost(record: PoolRecord, deleted: bool, *, since: float | None = None,
              config_dir: Path | None = None) -> PoolCost:
    """One pool's spend since ``since``; a backend that fails to answer becomes a note."""
    try:
        spec: PoolSpec | None = record.pool_spec()
    except ValueError:
        spec = None
    out = PoolCost(pool_id=record.id, backend=record.backend, deleted=deleted, spec=spec,
                   created_at=record.created_at)
    try:
        backend = load_backend(record.backend, config_dir=config_dir)
        asked = time.time()
        spans = usage(backend, record.id, since)
    except OrchError as exc:
        out.note = f"its ledger could not be read: {exc.message}"
        return out
    if spans is None:
        out.note = f"the {record.backend} backend keeps no cost ledger"
        return out
    out.spend = summarize(record.id, spans, since=since, asked=asked)
    return out


def cost_report(*, pool_id: str | None = None, job_id: str | None = None, since: float | None = None,
                config_dir: Path | None = None) -> CostReport:
    """``orch cost``: spend per pool, job and task since ``since``. ``job_id`` keeps the pools that
    ran it (its pool from the job index when known)."""
    if job_id is not None and pool_id is None:
        entry = job_index.lookup(job_id)
        pool_id = entry.pool_id if entry is not None else None
    report = CostReport(since=since)
    for record, deleted in known_pools(pool_id):
        cost = pool_cost(record, deleted, since=since, config_dir=config_dir)
        if job_id is not None and (cost.spend is None or job_id not in cost.spend.jobs):
            continue
        report.pools.append(cost)
    return report


@dataclass(frozen=True)
class PoolStatus:
    """``orch status``'s money columns for one pool, and the budgets worth a warning. ``note`` says
    why ``spend`` is None (no ledger, or it could not be read); ``unpriced``: node hours were
    counted at 0 USD for want of a price."""

    spend: PoolSpend | None
    limits: tuple[Limit, ...] = ()
    note: str | None = None
    unpriced: bool = False

    def warnings(self) -> list[str]:
        return [limit.text() for limit in self.limits if limit.level != "ok"]


def pool_status(pool_id: str, *, config_dir: Path | None = None) -> PoolStatus:
    """Spend since the pool was created (this pool, not earlier ones of the same id), its burn rate,
    and its ``max_spend`` and its jobs' budgets measured against it."""
    record = pool_records.load(pool_id)
    if record is None:
        return PoolStatus(spend=None, note=f"pool {pool_id} is not known on this machine")
    cost = pool_cost(record, False, since=record.created_at, config_dir=config_dir)
    if cost.spend is None:
        return PoolStatus(spend=None, note=cost.note)
    limits: list[Limit] = []
    if cost.spec is not None and (limit := pool_limit(cost.spec, cost.spend)) is not None:
        limits.append(limit)
    for entry in job_index.entries():
        if entry.pool_id == pool_id and (entry.budget is not None or entry.sweep_budgets):
            limits += job_limits(entry.id, cost.spend, entry.budget, entry.sweep_budgets or {})
    return PoolStatus(spend=cost.spend, limits=tuple(limits), unpriced=cost.unpriced)


@dataclass(frozen=True)
class SweepCost:
    """What a sweep's trials cost: each trial, in all, and ``best_after``: what the job had spent
    when its best trial ended (the best result was in hand then; None without a best trial).
    ``unpriced``: its node hours were all counted at 0 USD for want of a price, so the figures
    say nothing."""

    trials: dict[str, float]
    total: float
    best_after: float | None
    unpriced: bool = False


def sweep_cost(backend: Backend, job: JobRef, best: TaskInfo | None) -> SweepCost | None:
    """The cost of a job's trials (see ``SweepCost``), or None when the backend keeps no ledger."""
    spans = usage(backend, job.pool_id)
    if spans is None:
        return None
    mine = [span for span in spans if span.job_id == job.job_id]
    spend = summarize(job.pool_id, mine)
    best_after = None
    if best is not None:
        best_after = spent_until(mine, best.ended_at or time.time())
    tally = spend.job(job.job_id)
    return SweepCost(trials={task: tally.usd for (_, task), tally in spend.tasks.items()}, total=tally.usd,
                     best_after=best_after, unpriced=tally.usd == 0 and tally.unpriced_hours > 0)


class BudgetWatch:
    """Budget warnings for a followed job (``--tail``): each budget once when it passes 80 %, and
    again when it is reached; reads the ledger at most every ``every`` seconds."""

    def __init__(self, backend: Backend, job: JobRef, *, every: float = 10.0) -> None:
        self.backend, self.job, self.every = backend, job, every
        self.said: dict[str, str] = {}
        self.entry = job_index.lookup(job.job_id)
        record = pool_records.load(job.pool_id)
        self.record = record
        self.active = supports(backend, CostLedger) and record is not None and (
            record.pool_spec().max_spend is not None
            or (self.entry is not None and (self.entry.budget is not None or bool(self.entry.sweep_budgets))))

    def check(self) -> list[str]:
        """Warnings not said yet (empty when no budget applies)."""
        if not self.active or self.record is None:
            return []
        status = pool_status(self.job.pool_id)
        mine = [limit for limit in status.limits if limit.job_id in (None, self.job.job_id)]
        fresh = []
        for limit in mine:
            if limit.level != "ok" and self.said.get(limit.what) != limit.level:
                self.said[limit.what] = limit.level
                fresh.append(limit.text())
        return fresh
