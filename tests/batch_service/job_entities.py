"""Job, task and subtask records and their Batch JSON views."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .lifecycle import Lifecycle
from .revision import Revision
from .times import UNLIMITED_DURATION, format_timestamp, utc_now

if TYPE_CHECKING:
    from .runner import ExecutionHandle

DEFAULT_TASK_CONSTRAINTS = {"maxWallClockTime": UNLIMITED_DURATION, "retentionTime": "P7D", "maxTaskRetryCount": 0}
DEFAULT_JOB_CONSTRAINTS = {"maxWallClockTime": UNLIMITED_DURATION, "maxTaskRetryCount": 0}


@dataclass
class SubtaskRecord:
    """One non-primary instance of a multi-instance task (ids 1..N-1)."""

    id: int
    pool_id: str
    node_id: str
    node_url: str
    task_root: str
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("preparing"))
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    failure_info: dict[str, Any] | None = None
    result: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``BatchSubtask`` JSON."""
        body: dict[str, Any] = {
            "id": self.id,
            "nodeInfo": {
                "affinityId": f"TVM:{self.node_id}", "nodeUrl": self.node_url, "poolId": self.pool_id,
                "nodeId": self.node_id, "taskRootDirectory": self.task_root,
                "taskRootDirectoryUrl": f"{self.node_url}/files/{quote(self.task_root, safe='')}",
            },
            **self.lifecycle.json_fields(),
        }
        optional: dict[str, Any] = {
            "startTime": format_timestamp(self.start_time) if self.start_time else None,
            "endTime": format_timestamp(self.end_time) if self.end_time else None,
            "exitCode": self.exit_code,
            "failureInfo": self.failure_info,
            "result": self.result,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        return body


@dataclass
class TaskRecord:
    """A task: its stored add body (``spec``) plus execution state.

    ``execution`` holds the ``executionInfo`` fields; ``task_dir`` is the primary instance's
    task directory once the task has been scheduled (its files live there); ``handle`` is set
    while it runs; ``failure_kind`` tells which exit condition a failure falls under
    (``exitcode``, ``preprocessing``, ``upload`` or ``ended``).
    """

    job_id: str
    id: str
    spec: dict[str, Any]
    is_job_manager: bool = False
    revision: Revision = field(default_factory=Revision)
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("active"))
    execution: dict[str, Any] = field(default_factory=lambda: {"retryCount": 0, "requeueCount": 0})
    node_info: dict[str, Any] | None = None
    task_dir: Path | None = None
    subtasks: list[SubtaskRecord] = field(default_factory=list)
    handle: ExecutionHandle | None = None
    failure_kind: str | None = None

    @property
    def state(self) -> str:
        return self.lifecycle.state

    @property
    def key(self) -> str:
        return f"{self.job_id.lower()}/{self.id.lower()}"

    @property
    def required_slots(self) -> int:
        return int(self.spec.get("requiredSlots") or 1)

    @property
    def instances(self) -> int:
        return int((self.spec.get("multiInstanceSettings") or {}).get("numberOfInstances") or 1)

    @property
    def constraints(self) -> dict[str, Any]:
        return {**DEFAULT_TASK_CONSTRAINTS, **(self.spec.get("constraints") or {})}

    def move(self, state: str) -> None:
        """Change state and bump the revision."""
        if self.lifecycle.move(state):
            self.revision.touch()

    def succeeded(self) -> bool:
        return self.state == "completed" and self.execution.get("result") == "success"

    def url(self, base_url: str) -> str:
        return f"{base_url}/jobs/{quote(self.job_id)}/tasks/{quote(self.id)}"

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchTask`` JSON."""
        body = dict(self.spec)
        body.update(
            id=self.id,
            url=self.url(base_url),
            **self.revision.json_fields(),
            **self.lifecycle.json_fields(),
            constraints=self.constraints,
            requiredSlots=self.required_slots,
            executionInfo=dict(self.execution),
        )
        if self.node_info:
            body["nodeInfo"] = dict(self.node_info)
        return body


@dataclass
class JobRecord:
    """A job: its stored add body (``spec``), state, execution info and tasks (keyed lower-case).

    ``deleting_since`` is the ``time.monotonic()`` instant a delete was requested.
    """

    id: str
    spec: dict[str, Any]
    revision: Revision = field(default_factory=Revision)
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("active"))
    start_time: datetime = field(default_factory=utc_now)
    end_time: datetime | None = None
    terminate_reason: str | None = None
    deleting_since: float | None = None
    tasks: dict[str, TaskRecord] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.lifecycle.state

    @property
    def pool_id(self) -> str:
        return str((self.spec.get("poolInfo") or {}).get("poolId") or "")

    @property
    def on_all_tasks_complete(self) -> str:
        return str(self.spec.get("onAllTasksComplete") or "noaction").lower()

    @property
    def on_task_failure(self) -> str:
        return str(self.spec.get("onTaskFailure") or "noaction").lower()

    def move(self, state: str) -> None:
        if self.lifecycle.move(state):
            self.revision.touch()

    def running_tasks(self) -> list[TaskRecord]:
        """Tasks that hold nodes (preparing or running)."""
        return [task for task in self.tasks.values() if task.state in ("preparing", "running")]

    def url(self, base_url: str) -> str:
        return f"{base_url}/jobs/{quote(self.id)}"

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchJob`` JSON."""
        execution: dict[str, Any] = {"startTime": format_timestamp(self.start_time), "poolId": self.pool_id}
        if self.end_time:
            execution["endTime"] = format_timestamp(self.end_time)
        if self.terminate_reason:
            execution["terminateReason"] = self.terminate_reason
        body = dict(self.spec)
        body.update(
            id=self.id,
            url=self.url(base_url),
            **self.revision.json_fields(),
            **self.lifecycle.json_fields(),
            usesTaskDependencies=bool(self.spec.get("usesTaskDependencies", False)),
            priority=int(self.spec.get("priority") or 0),
            maxParallelTasks=int(self.spec.get("maxParallelTasks", -1)),
            allowTaskPreemption=bool(self.spec.get("allowTaskPreemption", False)),
            constraints={**DEFAULT_JOB_CONSTRAINTS, **(self.spec.get("constraints") or {})},
            onAllTasksComplete=self.on_all_tasks_complete,
            onTaskFailure=self.on_task_failure,
            executionInfo=execution,
        )
        return body
