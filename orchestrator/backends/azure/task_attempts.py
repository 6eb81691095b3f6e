"""A Batch task's ended attempts (``TaskInfo.attempts``), from what Batch keeps of them.

Batch keeps counts and the latest times, not a history: ``executionInfo.retryCount`` attempts
failed and were retried (the last such retry started at ``lastRetryTime``), ``requeueCount``
attempts were cut short when Batch requeued the task (a Spot node preempted, or a node removed:
the attempt ``preempted``, not counted as a retry; the last at ``lastRequeueTime``), and a
completed task's last attempt is its own outcome (node, start and end, exit code, failure).
Earlier attempts carry only what Batch tells: their kind, and the time of the latest of each
kind; groups are ordered by those times (all retries before all requeues when they tie).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.model import AttemptInfo, TaskState

RETRIED = "exited with a failure; Batch retried the task (it keeps only the last attempt's exit code)"
REQUEUED = ("its node was preempted (Spot) or removed; Batch requeued the task, which does not count "
            "against its retries")


def task_attempts(task: Any, state: TaskState, *, node_id: str | None, error: str | None) -> tuple[AttemptInfo, ...]:
    """The task's ended attempts, oldest first (see the module docstring)."""
    info = task.execution_info
    if info is None:
        return ()
    retried = _group("failed", int(info.retry_count or 0), info.last_retry_time, RETRIED)
    requeued = _group("preempted", int(info.requeue_count or 0), info.last_requeue_time, REQUEUED)
    groups = sorted([retried, requeued], key=lambda group: _when(group[-1].ended_at) if group else 0.0)
    earlier = [attempt for group in groups for attempt in group]
    if state.is_terminal() and info.start_time is not None:
        earlier.append(AttemptInfo(number=0, state=state.value, node_id=node_id, started_at=_seconds(info.start_time),
                                   ended_at=_seconds(info.end_time), exit_code=info.exit_code, error=error))
    return tuple(AttemptInfo(number=index, state=a.state, node_id=a.node_id, started_at=a.started_at,
                             ended_at=a.ended_at, exit_code=a.exit_code, error=a.error)
                 for index, a in enumerate(earlier, start=1))


def _group(state: str, count: int, last: datetime | None, why: str) -> list[AttemptInfo]:
    return [AttemptInfo(number=0, state=state, ended_at=_seconds(last) if index == count - 1 else None, error=why)
            for index in range(count)]


def _when(value: float | None) -> float:
    return value if value is not None else 0.0


def _seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None
