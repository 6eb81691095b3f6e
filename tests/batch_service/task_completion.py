"""Ending a task execution: record the outcome, release node slots, tell the job engine.

Shared by single- and multi-instance executions. A ``requeue`` cancellation puts the task
back to ``active``; anything else completes it (``terminate`` and ``delete`` with ``TaskEnded``).
A task that was removed (or replaced) meanwhile only gets its node slots freed.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .job_entities import JobRecord, TaskRecord
from .layout import NodeIdentity
from .pool_entities import RECENT_TASKS_KEPT
from .runner import ExecutionHandle
from .state import BatchState
from .times import format_timestamp, utc_now

TASK_ENDED = {"category": "usererror", "code": "TaskEnded", "message": "Task Was Ended by User Request"}
WALL_CLOCK_EXCEEDED = {
    "category": "usererror",
    "code": "TaskEnded",
    "message": "The task exceeded its maximum wall clock time (constraints.maxWallClockTime) and was ended.",
    "details": [{"name": "Reason", "value": "MaxWallClockTimeExpiry"}],
}

TaskFinishedCallback = Callable[[JobRecord, TaskRecord], None]


@dataclass(frozen=True)
class Placement:
    """One node slot reservation of a running task (``slot_key`` indexes ``node.running``)."""

    node: NodeIdentity
    slot_key: str


@dataclass
class RunResult:
    """Outcome of an execution; ``failure_kind`` is ``exitcode``/``preprocessing``/``upload``/``ended``."""

    exit_code: int | None = None
    failure_info: dict[str, Any] | None = None
    failure_kind: str | None = None
    cancel_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.failure_info is None and self.cancel_reason is None


def _release(state: BatchState, placements: list[Placement], task_info: dict[str, Any], succeeded: bool) -> None:
    for placement in placements:
        node = state.find_node(placement.node.pool_id, placement.node.node_id)
        if node is None:
            continue
        node.running.pop(placement.slot_key, None)
        if succeeded:
            node.total_tasks_succeeded += 1
        node.recent_tasks = (node.recent_tasks + [task_info])[-RECENT_TASKS_KEPT:]
        if not node.running and node.state == "running":
            node.lifecycle.move("idle")


def _record_outcome(task: TaskRecord, result: RunResult) -> None:
    now = format_timestamp(utc_now())
    if result.cancel_reason == "requeue":
        task.execution["requeueCount"] = int(task.execution.get("requeueCount", 0)) + 1
        task.execution["lastRequeueTime"] = now
        for key in ("startTime", "endTime", "exitCode", "failureInfo", "result"):
            task.execution.pop(key, None)
        task.node_info = None
        task.subtasks = []
        task.move("active")
        return
    task.execution["endTime"] = now
    task.execution.setdefault("startTime", now)
    if result.exit_code is not None:
        task.execution["exitCode"] = result.exit_code
    failure = result.failure_info
    if result.cancel_reason in ("terminate", "delete") and failure is None:
        failure, task.failure_kind = dict(TASK_ENDED), "ended"
    else:
        task.failure_kind = None if result.succeeded else (result.failure_kind or "exitcode")
    if failure is not None:
        task.execution["failureInfo"] = failure
    task.execution["result"] = "success" if result.succeeded else "failure"
    task.move("completed")


def finish_execution(
    state: BatchState,
    job_id: str,
    task_id: str,
    handle: ExecutionHandle,
    placements: list[Placement],
    result: RunResult,
    on_finished: TaskFinishedCallback,
) -> None:
    """Record ``result`` on the task (if it is still this execution's), free its slots, notify."""
    with state.lock:
        job = state.jobs.get(job_id.lower())
        task = job.tasks.get(task_id.lower()) if job else None
        current = task is not None and task.handle is handle
        if job is not None and task is not None and current:
            _record_outcome(task, result)
            task.handle = None
        info = {
            "taskUrl": task.url(state.base_url) if task else "",
            "jobId": job_id,
            "taskId": task_id,
            "taskState": task.state if task else "completed",
            "executionInfo": dict(task.execution) if task else {},
        }
        _release(state, placements, info, result.succeeded)
        if job is not None and task is not None and current and task.state == "completed":
            on_finished(job, task)
        handle.finished.set()
        state.wake()
