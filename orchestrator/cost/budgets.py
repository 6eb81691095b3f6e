"""Budgets: checked before anything is created, and measured against spend while the work runs.

- **Before the first cloud call** (``check_job``, ``check_pool``): an amount must be above zero
  (a budget of 0 lets nothing run), the pool's backend must keep a cost ledger (it is what
  enforces the budget where the work runs), and the pool must have a price (``price_per_node_hour``
  or the backend's price list): an unpriced pool spends 0 USD and would never reach a budget.
- **Scopes**: a job's ``limits.budget`` covers every task of the job; a sweep task's
  ``limits.budget`` covers its trials (task ids ``<sweep>-NNNNN``, see ``sweep_of``); a pool's
  ``max_spend`` covers all its node time since the pool was created, idle time included.
- **Levels**: a scope at 80 % (``WARN_AT``) of its limit is worth a warning; at 100 % it is
  reached: the backend starts no task in it and stops the running ones.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from orchestrator.backend import Backend, CostLedger, PriceList, capability, supports
from orchestrator.cost.spend import PoolSpend
from orchestrator.errors import SpecError, UnsupportedError, Where
from orchestrator.spec.job import JobSpec
from orchestrator.spec.money import format_money
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.trial import trial_index, trial_task_id

WARN_AT = 0.8


def job_budgets(job: JobSpec) -> tuple[float | None, dict[str, float]]:
    """The job's ``limits.budget`` and each sweep task's (sweep task id -> USD)."""
    sweeps = {task_id: task.limits.budget for task_id, task in zip(job.task_ids(), job.tasks)
              if task.is_sweep() and task.limits is not None and task.limits.budget is not None}
    return (job.limits.budget if job.limits else None), sweeps


def check_amounts(job: JobSpec) -> None:
    """``SpecError`` (at the key) for a budget of 0 or below (pure; planning calls it)."""
    if job.limits is not None and job.limits.budget is not None and job.limits.budget <= 0:
        raise SpecError("limits.budget is 0: no task could start", where=Where(key_path="limits.budget"),
                        hint="give an amount above 0 USD, or leave limits.budget out for no cap")
    for index, task in enumerate(job.tasks):
        if task.limits is not None and task.limits.budget is not None and task.limits.budget <= 0:
            raise SpecError("limits.budget is 0: no trial could start",
                            where=Where(key_path=f"tasks[{index}].limits.budget"),
                            hint="give an amount above 0 USD, or leave limits.budget out for no cap")


def check_job(job: JobSpec, pool: PoolSpec, backend: Backend) -> None:
    """The job's budgets can be kept on ``pool`` (see the module docstring); no backend call."""
    check_amounts(job)
    budget, sweeps = job_budgets(job)
    if budget is None and not sweeps:
        return
    where = "limits.budget" if budget is not None else f"tasks[{job.task_ids().index(next(iter(sweeps)))}].limits.budget"
    _check_priced(pool, backend, f"job {job.id!r}: {where}", Where(key_path=where))


def check_pool(pool: PoolSpec, backend: Backend) -> None:
    """The pool's ``max_spend`` can be kept (see the module docstring); no backend call."""
    if pool.max_spend is None:
        return
    if pool.max_spend <= 0:
        raise SpecError("max_spend is 0: no task could start", where=Where(key_path="max_spend"),
                        hint="give an amount above 0 USD, or leave max_spend out for no cap")
    _check_priced(pool, backend, f"pool {pool.id!r}: max_spend", Where(key_path="max_spend"))


def _check_priced(pool: PoolSpec, backend: Backend, what: str, where: Where) -> None:
    if not supports(backend, CostLedger):
        raise UnsupportedError(f"{what}: the {backend.name} backend keeps no cost ledger, so nothing could "
                               "enforce a budget", hint="remove the budget, or use a pool whose backend keeps one")
    if pool.price_per_node_hour is not None:
        return
    if supports(backend, PriceList):
        quote = capability(backend, PriceList).quote(pool)
        if all(estimate.total_per_hour is not None for _, estimate in quote.estimates):
            return
    raise SpecError(f"{what}: pool {pool.id!r} has no price, so its spend stays 0 USD and never reaches a budget",
                    where=where, hint="set price_per_node_hour (USD per node hour) in the pool file and create "
                                      "the pool again")


def sweep_of(task_id: str, sweeps: Iterable[str]) -> str | None:
    """The sweep task (of ``sweeps``) whose trial ``task_id`` is, or None."""
    index = trial_index(task_id)
    if index is None:
        return None
    for base in sweeps:
        if trial_task_id(base, index) == task_id:
            return base
    return None


@dataclass(frozen=True)
class Limit:
    """One budget and what its scope spent. ``what`` names it for people; ``job_id`` is the job
    whose budget it is (None for a pool's ``max_spend``)."""

    what: str
    limit: float
    spent: float
    job_id: str | None = None

    @property
    def fraction(self) -> float:
        return self.spent / self.limit if self.limit > 0 else 1.0

    @property
    def level(self) -> str:
        """``ok``, ``warn`` (at 80 %) or ``reached``."""
        return "reached" if self.fraction >= 1.0 else "warn" if self.fraction >= WARN_AT else "ok"

    def text(self) -> str:
        said = "reached: its tasks are stopped" if self.level == "reached" else f"{self.fraction:.0%}"
        return f"{self.what} has spent {format_money(self.spent)} of {format_money(self.limit)} ({said})"


def job_limits(job_id: str, spend: PoolSpend, budget: float | None, sweeps: Mapping[str, float]) -> list[Limit]:
    """The job's budget and each sweep's, against ``spend`` (the job's pool's)."""
    limits = []
    if budget is not None:
        limits.append(Limit(f"job {job_id} (limits.budget)", budget, spend.job(job_id).usd, job_id))
    if sweeps:
        spent = dict.fromkeys(sweeps, 0.0)
        for (job, task_id), tally in spend.tasks.items():
            base = sweep_of(task_id, sweeps) if job == job_id else None
            if base is not None:
                spent[base] += tally.usd
        limits += [Limit(f"sweep {base} of job {job_id} (limits.budget)", amount, spent[base], job_id)
                   for base, amount in sweeps.items()]
    return limits


def pool_limit(pool: PoolSpec, spend_since_created: PoolSpend) -> Limit | None:
    """The pool's ``max_spend`` against what it spent since it was created, or None without one."""
    if pool.max_spend is None:
        return None
    return Limit(f"pool {pool.id} (max_spend)", pool.max_spend, spend_since_created.total.usd)
