"""Budgets on Azure: what a job's manager enforces, and what it leaves for clients to show.

A job with ``limits.budget``, a sweep task with one, or any job on a pool with ``max_spend`` gets
a job manager task (``sweep_manager``) that reaches Batch as the pool's identity and keeps the
limits while the job runs, CLI or not (``budget_keeper``). Spend is the cost ledger's
(``ledger``): a job's is the node time its tasks held (its manager's included), a sweep's that
of its trials, a pool's all its node time, idle included.

At a limit nothing of what it covers starts again and what runs is stopped: a sweep's unfinished
trials are terminated and its controller adds none; a job (its budget, or its pool's
``max_spend``) is terminated whole with ``BUDGET_REASON``. First the manager writes
``BudgetState`` (which tasks stopped and why) to the pool's container, so every client shows
those tasks ``stopped`` with the budget as their reason.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.backends.azure.ledger_model import Prices
from orchestrator.backends.azure.naming import budget_state_blob
from orchestrator.errors import NotFoundError
from orchestrator.model import UsageSpan
from orchestrator.spec.money import format_money
from orchestrator.sweep.trial import trial_index, trial_task_id

PAYLOAD_URL_ENV = "ORCH_BUDGET_PAYLOAD_URL"


@dataclass(frozen=True)
class Limits:
    """USD limits: the job's, per sweep task id, and the pool's ``max_spend``."""

    job: float | None = None
    sweeps: Mapping[str, float] = field(default_factory=dict)
    pool: float | None = None

    def __bool__(self) -> bool:
        return self.job is not None or bool(self.sweeps) or self.pool is not None


@dataclass(frozen=True)
class BudgetPayload:
    """What a job's manager needs to keep its limits."""

    job_id: str
    pool_id: str
    limits: Limits
    prices: Prices
    slots_per_node: int
    ledger_url: str  # the pool container: read, write, list, delete (ledger, budget state)
    poll_seconds: float = 5.0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BudgetPayload:
        raw: dict[str, Any] = json.loads(data)
        return cls(**{**raw, "limits": Limits(**raw["limits"]), "prices": Prices(**raw["prices"])})


@dataclass
class BudgetState:
    """What a manager stopped for a budget: the whole job (``job_reason``), or tasks by id."""

    job_reason: str | None = None
    stopped: dict[str, str] = field(default_factory=dict)  # task id -> reason

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> BudgetState:
        raw = json.loads(data)
        return cls(job_reason=raw.get("job_reason"), stopped=dict(raw.get("stopped") or {}))

    def reason(self, task_id: str) -> str | None:
        return self.stopped.get(task_id) or self.job_reason


@dataclass(frozen=True)
class Breach:
    """A limit reached: the whole job, or one sweep (``sweep`` its task id)."""

    reason: str
    sweep: str | None = None


def owner(task_id: str, sweeps: Iterable[str]) -> str | None:
    """The sweep task whose trial ``task_id`` is, if any."""
    index = trial_index(task_id)
    if index is None:
        return None
    return next((sweep for sweep in sweeps if trial_task_id(sweep, index) == task_id), None)


@dataclass(frozen=True)
class Spend:
    """Spend so far and burn rate (USD per second), for the job, each limited sweep and the pool."""

    job: float
    sweeps: dict[str, float]
    pool: float
    job_rate: float
    sweep_rates: dict[str, float]
    pool_rate: float


def spend(spans: list[UsageSpan], job_id: str, sweeps: Iterable[str], now: float) -> Spend:
    names = list(sweeps)
    totals = {name: 0.0 for name in names}
    rates = {name: 0.0 for name in names}
    job = pool = job_rate = pool_rate = 0.0
    for span in spans:
        rate = span.share * span.price_per_hour / 3600 if span.end >= now - 1e-6 else 0.0
        pool, pool_rate = pool + span.cost, pool_rate + rate
        if span.job_id != job_id:
            continue
        job, job_rate = job + span.cost, job_rate + rate
        sweep = owner(span.task_id or "", names)
        if sweep is not None:
            totals[sweep] += span.cost
            rates[sweep] += rate
    return Spend(job, totals, pool, job_rate, rates, pool_rate)


def breaches(limits: Limits, used: Spend, halted: Iterable[str] = ()) -> list[Breach]:
    """The limits ``used`` has reached: the pool's or the job's (the whole job), else sweeps'."""
    if limits.pool is not None and used.pool >= limits.pool:
        return [Breach(f"budget: the pool's max_spend of {format_money(limits.pool)} is reached "
                       f"(spent {format_money(used.pool)})")]
    if limits.job is not None and used.job >= limits.job:
        return [Breach(f"budget: the job's budget of {format_money(limits.job)} is reached "
                       f"(spent {format_money(used.job)})")]
    done = set(halted)
    return [Breach(f"budget: sweep {sweep!r} reached its budget of {format_money(limit)} "
                   f"(spent {format_money(used.sweeps.get(sweep, 0.0))})", sweep)
            for sweep, limit in limits.sweeps.items()
            if sweep not in done and used.sweeps.get(sweep, 0.0) >= limit]


def seconds_to_limit(limits: Limits, used: Spend, halted: Iterable[str] = ()) -> float | None:
    """How long, at the current burn rates, until the nearest limit is reached (None: no burn)."""
    done = set(halted)
    pairs = [(limits.pool, used.pool, used.pool_rate), (limits.job, used.job, used.job_rate)]
    pairs += [(limit, used.sweeps.get(s, 0.0), used.sweep_rates.get(s, 0.0))
              for s, limit in limits.sweeps.items() if s not in done]
    waits = [(limit - spent) / rate for limit, spent, rate in pairs if limit is not None and rate > 0]
    return max(0.0, min(waits)) if waits else None


def read_state(store: Any, container: str, job_id: str) -> BudgetState | None:
    """What the job's manager stopped for a budget (None: nothing yet); ``store`` a ``BlobStore``."""
    try:
        return BudgetState.from_json(store.get(container, budget_state_blob(job_id)))
    except NotFoundError:
        return None
