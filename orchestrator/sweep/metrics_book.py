"""Each trial's reported metrics, read incrementally at an offset while trials run.

``TrialMetricsBook.refresh(task)`` reads only what a task's metrics file gained since the last
read; a file that shrank (a retried attempt started afresh) is read again from the start. Once a
task is terminal its file is read one last time (a final line without a newline included) and
never again. Pure bookkeeping over a ``read(task_id, offset)`` callable: no I/O of its own.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.model import FileChunk, TaskInfo, TaskState
from orchestrator.sweep.metrics import MetricRecord, MetricsReader, metric_history

ReadAt = Callable[[str, int], "FileChunk | None"]
MAX_READS_PER_REFRESH = 64


@dataclass
class TrialMetrics:
    """What one trial reported so far; ``final`` once its file will not change again."""

    reader: MetricsReader = field(default_factory=MetricsReader)
    records: list[MetricRecord] = field(default_factory=list)
    final: bool = False
    _histories: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def add(self, records: list[MetricRecord]) -> None:
        if records:
            self.records.extend(records)
            self._histories.clear()

    def restart(self) -> None:
        self.reader, self.records = MetricsReader(), []
        self._histories.clear()

    def history(self, metric: str) -> list[tuple[int, float]]:
        """``(step, value)`` of ``metric`` (see ``metrics.metric_history``), cached until new records."""
        if metric not in self._histories:
            self._histories[metric] = metric_history(self.records, metric)
        return self._histories[metric]


class TrialMetricsBook:
    """Metrics of many trials, refreshed through ``read(task_id, offset) -> FileChunk | None``."""

    def __init__(self, read: ReadAt) -> None:
        self.read = read
        self.trials: dict[str, TrialMetrics] = {}

    def refresh(self, task: TaskInfo) -> None:
        """Read what ``task``'s metrics file gained; pending tasks have nothing to read."""
        entry = self.trials.setdefault(task.id, TrialMetrics())
        if entry.final or task.state == TaskState.PENDING:
            return
        for _ in range(MAX_READS_PER_REFRESH):
            chunk = self.read(task.id, entry.reader.offset)
            if chunk is None:
                break
            if chunk.size < entry.reader.offset:
                entry.restart()
                continue
            if not chunk.data:
                break
            entry.add(entry.reader.feed(chunk.data))
            if entry.reader.offset >= chunk.size:
                break
        if task.state.is_terminal():
            entry.add(entry.reader.finish())
            entry.final = True

    def history(self, task_id: str, metric: str) -> list[tuple[int, float]]:
        entry = self.trials.get(task_id)
        return entry.history(metric) if entry else []

    def best(self, task_id: str, metric: str, *, maximize: bool) -> float | None:
        """The best value of ``metric`` the trial reported, or None when it reported none."""
        values = [value for _, value in self.history(task_id, metric)]
        if not values:
            return None
        return max(values) if maximize else min(values)
