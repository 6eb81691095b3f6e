"""Collect trials' reported metrics through a backend and rank them by the objective."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from orchestrator.backend import Backend
from orchestrator.metrics import MetricsReader, metric_history
from orchestrator.model import TaskInfo


@dataclass(frozen=True)
class TrialResult:
    task: TaskInfo
    value: float | None
    last: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[tuple[int, float], ...] = ()


def collect(backend: Backend, job_id: str, metric: str | None) -> list[TrialResult]:
    """Every task of the job with its metrics and the history of ``metric`` (default: the first
    numeric metric a trial reported)."""
    out = []
    for task in backend.list_tasks(job_id):
        reader = MetricsReader()
        records = []
        while True:
            chunk = backend.read_file(job_id, task.id, "metrics", offset=reader.offset)
            if chunk is None or not chunk.data:
                break
            records += reader.feed(chunk.data)
        records += reader.finish()
        last: dict[str, Any] = {}
        for record in records:
            last.update(record.values)
        chosen = metric or next((k for r in records for k, v in r.values.items() if isinstance(v, (int, float))), None)
        history = tuple(metric_history(records, chosen)) if chosen else ()
        out.append(TrialResult(task=task, value=None, last=last, history=history))
    return out


def rank(results: list[TrialResult], metric: str | None, goal: str) -> list[TrialResult]:
    """Best trial first; trials without the metric last."""
    scored = []
    for result in results:
        values = [v for _, v in result.history]
        best = (max(values) if goal == "maximize" else min(values)) if values else None
        scored.append(TrialResult(task=result.task, value=best, last=result.last, history=result.history))
    sign = -1.0 if goal == "maximize" else 1.0
    return sorted(scored, key=lambda r: (r.value is None, sign * (r.value or 0.0), r.task.id))
