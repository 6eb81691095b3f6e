"""The dashboard's money figures, shaped for the page from ``orchestrator.cost``.

Every figure comes from the layer ``orch status``, ``orch cost`` and ``orch sweep results`` use:
a pool's spend since it was created, its burn rate and budget levels from ``report.pool_status``;
a job's and a task's spend from the same ``PoolSpend``; a sweep's trial costs and "best found
after" from ``report.sweep_cost``. Nothing here sums spans. A pool whose backend keeps no ledger,
or whose node hours had no price, gets no figure (``None``) and a ``cost_note`` saying why, never
a reassuring 0. Autostop is read from ``PoolInfo`` (``state``, ``stops_at``) and the pool's spec.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.cost.report import PoolStatus, SweepCost
from orchestrator.cost.spend import PoolSpend
from orchestrator.duration import format_duration
from orchestrator.errors import redact
from orchestrator.model import PoolInfo
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.results import TrialResult

NO_PRICE = "no price set: price_per_node_hour"
NO_LEDGER = "no cost ledger"


@dataclass(frozen=True)
class PoolMoney:
    """One pool's ``orch status`` money (``status``) and its spec (autostop, price), if known."""

    status: PoolStatus
    spec: PoolSpec | None = None

    @property
    def note(self) -> str | None:
        """Why the pool's figures are not shown (no ledger, unreadable, no price), or None."""
        if self.status.spend is None:
            return redact(self.status.note) or NO_LEDGER
        return NO_PRICE if self.status.unpriced else None

    @property
    def priced(self) -> PoolSpend | None:
        """The pool's spend since it was created, when it has a ledger and a price."""
        return self.status.spend if self.note is None else None

    def job_usd(self, job_id: str) -> float | None:
        spend = self.priced
        return None if spend is None else spend.job(job_id).usd

    def task_usd(self, job_id: str, task_id: str) -> float | None:
        spend = self.priced
        return None if spend is None else spend.task(job_id, task_id).usd


def pool_fields(info: PoolInfo, money: PoolMoney, now: float) -> dict[str, Any]:
    """A pool's money keys: ``spend`` (USD since created), ``burn_rate`` (USD/h now), ``node_hours``,
    ``cost_note`` (why figures are None), ``budgets`` (each limit with its level) and ``autostop``."""
    spend = money.priced
    return {"spend": spend.total.usd if spend else None, "burn_rate": spend.burn_per_hour if spend else None,
            "node_hours": money.status.spend.total.node_hours if money.status.spend else None,
            "price_per_node_hour": money.spec.price_per_node_hour if money.spec else None,
            "cost_note": money.note,
            "budgets": [{"what": limit.what, "limit": limit.limit, "spent": limit.spent, "level": limit.level,
                         "text": limit.text()} for limit in money.status.limits],
            "autostop": autostop(info, money.spec, now)}


def autostop(info: PoolInfo, spec: PoolSpec | None, now: float) -> dict[str, Any]:
    """When the pool stops (or deletes) itself: ``state`` is ``deleted`` or ``stopped`` once it did,
    ``scheduled`` while it is idle (``stops_at``, ``in_seconds``, ``in_text``), ``armed`` while it
    works (it acts ``idle_timeout`` after its last task), ``never`` without an ``idle_timeout``."""
    timeout = spec.idle_timeout if spec else None
    autodelete = bool(spec and spec.autodelete)
    verb = "deletes" if autodelete else "stops"
    out: dict[str, Any] = {"idle_timeout": timeout, "autodelete": autodelete, "stops_at": None,
                           "in_seconds": None, "in_text": None}
    if info.state == "deleted":
        return {**out, "state": "deleted", "text": "deleted itself after its idle_timeout"}
    if info.state == "stopped":
        return {**out, "state": "stopped", "text": "stopped itself after its idle_timeout; a new job starts it again"}
    if info.stops_at is not None:
        left = max(0.0, info.stops_at - now)
        return {**out, "state": "scheduled", "stops_at": info.stops_at, "in_seconds": round(left, 1),
                "in_text": format_duration(round(left)), "text": f"idle: {verb} itself unless a task starts"}
    if timeout is None:
        return {**out, "state": "never", "text": "never (no idle_timeout)"}
    return {**out, "state": "armed", "text": f"{verb} itself after {format_duration(timeout)} without work"}


def sweep_spend(ranked: Sequence[TrialResult], cost: SweepCost | None, note: str | None,
                goal: str) -> dict[str, Any]:
    """A sweep's money: its trials' ``total``, ``best_after`` (what it had spent when its best trial
    ended, as ``orch sweep results`` says), and ``best_over_spend``; ``note`` says why when ``cost``
    is None (no ledger or no price: ``note`` given; else the ledger failed to answer)."""
    if cost is None or note is not None:
        return {"total": None, "best_after": None, "best_trial": None, "best_over_spend": [],
                "note": note or "its cost ledger could not be read"}
    best = ranked[0].task.id if ranked and ranked[0].value is not None and cost.best_after is not None else None
    return {"total": cost.total, "best_after": cost.best_after if best else None, "best_trial": best,
            "best_over_spend": best_over_spend(ranked, cost.trials, goal), "note": None}


def best_over_spend(ranked: Sequence[TrialResult], trial_usd: Mapping[str, float], goal: str) -> list[dict[str, Any]]:
    """Each time the best value so far improved, with trials taken in the order they ended: the USD
    the ended trials had cost by then (that trial's own included), the value and its trial. Ended
    trials whose backend gave no end time come last, in id order."""
    ended = sorted((r for r in ranked if r.task.state.is_terminal()),
                   key=lambda r: (r.task.ended_at if r.task.ended_at is not None else math.inf, r.task.id))
    better = (lambda a, b: a > b) if goal == "maximize" else (lambda a, b: a < b)
    spent = 0.0
    out: list[dict[str, Any]] = []
    for result in ended:
        spent += trial_usd.get(result.task.id, 0.0)
        if result.value is not None and (not out or better(result.value, out[-1]["value"])):
            out.append({"usd": round(spent, 6), "value": result.value, "trial": result.task.id})
    return out
