"""A sweep's live leaderboard and chart series, from metrics read incrementally.

Metrics are read with the sweep controller's own bookkeeping (``sweep.metrics_book``: only what a
trial's file gained, read one last time once it ended); trials are valued and ranked by
``sweep.results`` exactly as ``orch sweep results`` does. The series are what the page draws:
the objective against each parameter (log axis as ``orch sweep results --plot`` decides),
learning curves with stopped trials marked, the best value so far over time, and (where the pool
has a ledger and a price) each trial's cost, "best found after" and the best value over spend.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from orchestrator.cost.report import SweepCost
from orchestrator.model import JobInfo, TaskInfo, TaskState
from orchestrator.sweep.metrics_book import ReadAt, TrialMetricsBook
from orchestrator.sweep.plot import is_log_scale
from orchestrator.sweep.results import (
    Objective,
    TrialResult,
    best,
    rank,
    rows,
    summarize,
)
from orchestrator.ui.cost_view import sweep_spend

Pricing = Callable[[TaskInfo | None], SweepCost | None]  # the best trial -> the sweep's costs

MAX_CURVES = 200  # learning curves drawn: the best trials first


class SweepBoard:
    """One sweep's metrics, kept between refreshes so each refresh reads only new bytes."""

    def __init__(self, read: ReadAt) -> None:
        self.book = TrialMetricsBook(read)

    def view(self, tasks: list[TaskInfo], objective: Objective, job: JobInfo, *, pricing: Pricing,
             note: str | None = None) -> dict[str, Any]:
        """Read what grew, then the leaderboard rows (with ``cost_usd`` when priced) and every
        chart's series. ``pricing``: the sweep's costs given its best trial (``report.sweep_cost``);
        ``note``: why there are none (no ledger, no price)."""
        for task in tasks:
            self.book.refresh(task)
        reports = {t.id: self.book.trials[t.id].records if t.id in self.book.trials else [] for t in tasks}
        results, metric = summarize(tasks, reports, objective)
        ranked = rank(results, objective.goal)
        top = best(ranked)
        cost = pricing(top.task if top else None) if note is None else None
        return {"metric": metric, "goal": objective.goal, "value_key": metric or "value",
                "rows": rows(ranked, metric, cost.trials if cost else None), "params": parameter_series(ranked),
                "curves": curves(ranked), "curves_total": sum(1 for r in ranked if r.history),
                "best_over_time": best_over_time(ranked, reports, metric, objective.goal, job.created_at),
                "spend": sweep_spend(ranked, cost, note, objective.goal)}


def parameter_series(ranked: Sequence[TrialResult]) -> list[dict[str, Any]]:
    """Per parameter: its scale (log, linear or category) and one point per trial with a value."""
    names = sorted({name for result in ranked for name in result.task.params})
    out = []
    for name in names:
        points = [{"x": r.task.params[name], "y": r.value, "trial": r.task.id,
                   "stopped": r.task.state == TaskState.STOPPED}
                  for r in ranked if name in r.task.params and r.value is not None]
        xs = [p["x"] for p in points]
        numeric = bool(xs) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        scale = ("log" if is_log_scale(xs) else "linear") if numeric else "category"
        if scale == "category":
            for point in points:
                point["x"] = str(point["x"])
        out.append({"name": name, "scale": scale, "points": points,
                    "categories": sorted({p["x"] for p in points}) if scale == "category" else None})
    return out


def curves(ranked: Sequence[TrialResult]) -> list[dict[str, Any]]:
    """Learning curves ``(step, value)`` of the best ``MAX_CURVES`` trials, best first."""
    drawn = [r for r in ranked if r.history][:MAX_CURVES]
    return [{"trial": r.task.id, "state": r.task.state.value, "stopped": r.task.state == TaskState.STOPPED,
             "best": position == 0, "points": [[step, value] for step, value in r.history]}
            for position, r in enumerate(drawn)]


def best_over_time(ranked: Sequence[TrialResult], reports: dict[str, list[Any]], metric: str | None, goal: str,
                   start: float) -> list[dict[str, Any]]:
    """Each time the best value so far improved: seconds since ``start``, the value and its trial.

    A report counts at the time it carries (``report()`` stamps one); a trial whose reports carry
    none (a shell ``echo``) counts once, with its value, when it ended."""
    if metric is None:
        return []
    events = []
    for result in ranked:
        timed = [(record.time, float(record.values[metric])) for record in reports.get(result.task.id, [])
                 if record.time is not None and _numeric(record.values.get(metric))]
        if not timed and result.value is not None and result.task.ended_at is not None:
            timed = [(result.task.ended_at, result.value)]
        events += [(at, value, result.task.id) for at, value in timed]
    better = (lambda a, b: a > b) if goal == "maximize" else (lambda a, b: a < b)
    out: list[dict[str, Any]] = []
    for at, value, trial in sorted(events):
        if not out or better(value, out[-1]["value"]):
            out.append({"t": round(max(0.0, at - start), 3), "value": value, "trial": trial})
    return out


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
