"""What an execution needs, snapshotted under the lock when the scheduler launches a task,
plus the small state updates an execution makes while it runs."""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from .job_entities import JobRecord, TaskRecord
from .job_tokens import wants_job_token
from .layout import apply_settings, node_environment
from .runner import ExecutionHandle
from .settings import AutoStorage
from .state import BatchState
from .task_completion import Placement
from .times import UNLIMITED_DURATION, format_timestamp, parse_duration, utc_now


@dataclass(frozen=True)
class TaskPlan:
    """A launched task: its spec, environment inputs, limits, handle and node placements
    (the primary first), and its job token when the spec asks for one."""

    job_id: str
    task_id: str
    spec: dict[str, Any]
    common_environment: list[dict[str, Any]]
    account: str
    account_url: str
    max_retries: int
    wall_clock_s: float | None
    auto_storage: AutoStorage | None
    handle: ExecutionHandle
    placements: tuple[Placement, ...]
    auth_token: str | None = None

    def environment(self, placement: Placement, task_dir: Any) -> dict[str, str]:
        """Environment of this task's process on ``placement``'s node."""
        env = node_environment(self.account, self.account_url, placement.node, task_dir)
        env["AZ_BATCH_JOB_ID"] = self.job_id
        env["AZ_BATCH_TASK_ID"] = self.task_id
        if self.auth_token is not None:
            env["AZ_BATCH_AUTHENTICATION_TOKEN"] = self.auth_token
        apply_settings(env, self.common_environment)
        return apply_settings(env, self.spec.get("environmentSettings"))

    def deadline(self) -> float | None:
        """``time.monotonic()`` instant at which an attempt started now must end."""
        return None if self.wall_clock_s is None else time.monotonic() + self.wall_clock_s


def build_plan(state: BatchState, job: JobRecord, task: TaskRecord, placements: list[Placement],
               handle: ExecutionHandle) -> TaskPlan:
    """Snapshot a task for execution; call with the state lock held."""
    constraints = task.constraints
    job_retries = int((job.spec.get("constraints") or {}).get("maxTaskRetryCount") or 0)
    explicit = (task.spec.get("constraints") or {}).get("maxTaskRetryCount")
    wall_clock = constraints.get("maxWallClockTime") or UNLIMITED_DURATION
    return TaskPlan(
        job_id=job.id,
        task_id=task.id,
        spec=copy.deepcopy(task.spec),
        common_environment=copy.deepcopy(job.spec.get("commonEnvironmentSettings") or []),
        account=state.account,
        account_url=state.base_url,
        max_retries=int(explicit if explicit is not None else job_retries),
        wall_clock_s=None if wall_clock == UNLIMITED_DURATION else parse_duration(wall_clock).total_seconds(),
        auto_storage=state.settings.auto_storage,
        handle=handle,
        placements=tuple(placements),
        auth_token=state.job_tokens.issue(job.id) if wants_job_token(task.spec) else None,
    )


def _current_task(state: BatchState, plan: TaskPlan) -> TaskRecord | None:
    job = state.jobs.get(plan.job_id.lower())
    task = job.tasks.get(plan.task_id.lower()) if job else None
    return task if task is not None and task.handle is plan.handle else None


def mark_running(state: BatchState, plan: TaskPlan) -> None:
    """Move the task (and its subtasks) from ``preparing`` to ``running``."""
    with state.lock:
        task = _current_task(state, plan)
        if task is None:
            return
        now = utc_now()
        task.execution.setdefault("startTime", format_timestamp(now))
        task.move("running")
        for subtask in task.subtasks:
            subtask.lifecycle.move("running")
            subtask.start_time = now


def record_retry(state: BatchState, plan: TaskPlan, retry_count: int) -> None:
    """Count a retry: ``retryCount``, ``lastRetryTime`` and a fresh ``startTime``."""
    with state.lock:
        task = _current_task(state, plan)
        if task is None:
            return
        now = format_timestamp(utc_now())
        task.execution.update(retryCount=retry_count, lastRetryTime=now, startTime=now)
        task.revision.touch()
