"""Collect a sweep's trials with their reported metrics, and rank them by the objective.

A trial's value is the *best* value of the objective metric it reported (max or min by the
goal): the value Bayesian search was told and the one early termination judged. The objective
is, in order: the ``--metric``/``--goal`` asked for, the sweep's ``objective`` recorded when it
was submitted, else the first numeric metric a trial reported, maximized. Stopped trials keep
their state and rank by what they reached; trials without the metric come last.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.backend import Backend
from orchestrator.model import JobRef, TaskInfo
from orchestrator.sweep.metrics import MetricRecord, MetricsReader, metric_history

DEFAULT_GOAL = "maximize"


@dataclass(frozen=True)
class TrialResult:
    """One trial: its task, value (best of the objective), last reported values, and histories."""

    task: TaskInfo
    value: float | None
    last: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[tuple[int, float], ...] = ()
    best_step: int | None = None


@dataclass(frozen=True)
class Objective:
    metric: str | None
    goal: str


def resolve_objective(metric: str | None, goal: str | None, recorded: Mapping[str, str] | None) -> Objective:
    """The objective to rank by (see the module docstring); ``metric`` None means "first numeric"."""
    if metric is None and recorded:
        return Objective(metric=recorded["metric"], goal=goal or recorded.get("goal", DEFAULT_GOAL))
    if metric is not None and recorded and recorded.get("metric") == metric and goal is None:
        return Objective(metric=metric, goal=recorded.get("goal", DEFAULT_GOAL))
    return Objective(metric=metric, goal=goal or DEFAULT_GOAL)


def read_records(backend: Backend, job: JobRef, task_id: str) -> list[MetricRecord]:
    """Every metric line the task reported so far."""
    reader = MetricsReader()
    records: list[MetricRecord] = []
    while True:
        chunk = backend.read_file(job, task_id, "metrics", offset=reader.offset)
        if chunk is None or not chunk.data:
            break
        records += reader.feed(chunk.data)
        if reader.offset >= chunk.size:
            break
    return records + reader.finish()


def collect(backend: Backend, job: JobRef, objective: Objective) -> tuple[list[TrialResult], str | None]:
    """Every task of the job with its metrics, and the metric used (``objective.metric`` or the
    first numeric metric any trial reported)."""
    tasks = backend.list_tasks(job)
    return summarize(tasks, {task.id: read_records(backend, job, task.id) for task in tasks}, objective)


def summarize(tasks: list[TaskInfo], reports: Mapping[str, list[MetricRecord]],
              objective: Objective) -> tuple[list[TrialResult], str | None]:
    """``collect`` over metrics already read (``reports``: each task's records; callers that read
    incrementally, such as the dashboard, pass what they hold)."""
    metric = objective.metric or next((name for records in reports.values() for record in records
                                       for name, value in record.values.items()
                                       if isinstance(value, (int, float)) and not isinstance(value, bool)), None)
    maximize = objective.goal == "maximize"
    results = []
    for task in tasks:
        records = reports.get(task.id, [])
        last: dict[str, Any] = {}
        for record in records:
            last.update(record.values)
        history = tuple(metric_history(records, metric)) if metric else ()
        best = (max if maximize else min)(history, key=lambda point: point[1]) if history else None
        results.append(TrialResult(task=task, value=best[1] if best else None, last=last, history=history,
                                   best_step=best[0] if best else None))
    return results, metric


def rank(results: list[TrialResult], goal: str) -> list[TrialResult]:
    """Best trial first; trials without a value last; ties by trial id."""
    sign = -1.0 if goal == "maximize" else 1.0
    return sorted(results, key=lambda r: (r.value is None, sign * (r.value or 0.0), r.task.id))


def rows(ranked: list[TrialResult], metric: str | None,
         costs: Mapping[str, float] | None = None) -> list[dict[str, Any]]:
    """Table/JSON/CSV rows: rank, trial, state, value, step of the best value, cost in USD (when
    ``costs`` is given: the backend keeps a cost ledger), parameters."""
    name = metric or "value"
    out = []
    for position, r in enumerate(ranked):
        row: dict[str, Any] = {"rank": position + 1, "trial": r.task.id, "state": r.task.state.value,
                               name: r.value, "best_step": r.best_step}
        if costs is not None:
            row["cost_usd"] = costs.get(r.task.id, 0.0)
        row.update({f"param.{k}": v for k, v in r.task.params.items()})
        out.append(row)
    return out


def best(ranked: list[TrialResult]) -> TrialResult | None:
    """The best trial (the first ranked) if any trial reported the objective."""
    return ranked[0] if ranked and ranked[0].value is not None else None
