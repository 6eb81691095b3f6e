"""Pool, node, job and task records and their Batch JSON views."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .samples import MetricHistory
from .timekeeping import (
    UNLIMITED_DURATION,
    Lifecycle,
    Revision,
    format_timestamp,
    utc_now,
)

if TYPE_CHECKING:
    from .runner import ExecutionHandle


@dataclass
class NodeRecord:
    """One compute node: a directory under the service root plus scheduling bookkeeping.

    ``running`` maps a running task key (``job/task``, ``job/task#instance``) to the slots it
    holds; ``removal_pending`` marks a node that leaves the pool once its tasks finish. A
    preempted node (``preemption``) keeps its id and record until Batch replaces its capacity.
    """

    id: str
    pool_id: str
    ip_address: str
    is_dedicated: bool
    vm_size: str
    root_dir: Path
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("creating"))
    allocation_time: datetime = field(default_factory=utc_now)
    last_boot_time: datetime | None = None
    running: dict[str, int] = field(default_factory=dict)
    total_tasks_run: int = 0
    total_tasks_succeeded: int = 0
    start_task_info: dict[str, Any] | None = None
    start_task_handle: ExecutionHandle | None = None
    removal_pending: bool = False
    boot_generation: int = 0  # bumped when the node is preempted: an older boot thread gives up

    @property
    def state(self) -> str:
        return self.lifecycle.state

    @property
    def used_slots(self) -> int:
        return sum(self.running.values())

    def schedulable(self) -> bool:
        """Whether new tasks may start here."""
        return self.state in ("idle", "running") and not self.removal_pending

    def url(self, base_url: str) -> str:
        return f"{base_url}/pools/{quote(self.pool_id)}/nodes/{quote(self.id)}"

    def to_json(self, base_url: str, start_task: dict[str, Any] | None) -> dict[str, Any]:
        """The ``BatchNode`` JSON."""
        body: dict[str, Any] = {
            "id": self.id, "url": self.url(base_url), "state": self.state, "schedulingState": "enabled",
            "stateTransitionTime": format_timestamp(self.lifecycle.transition_time),
            "allocationTime": format_timestamp(self.allocation_time), "ipAddress": self.ip_address,
            "affinityId": f"TVM:{self.id}", "vmSize": self.vm_size, "isDedicated": self.is_dedicated,
            "totalTasksRun": self.total_tasks_run, "totalTasksSucceeded": self.total_tasks_succeeded,
            "runningTasksCount": len(self.running), "runningTaskSlotsCount": self.used_slots,
            "nodeAgentInfo": {"version": "1.0.0-local", "lastUpdateTime": format_timestamp(self.allocation_time)},
        }
        if self.last_boot_time:
            body["lastBootTime"] = format_timestamp(self.last_boot_time)
        if start_task:
            body["startTask"] = start_task
        if self.start_task_info:
            body["startTaskInfo"] = dict(self.start_task_info)
        return body


@dataclass
class PoolRecord:
    """A pool: the stored create body (``spec``) plus allocation state and nodes (keyed lower-case).

    ``allocation_generation`` increases with each resize so that a superseded allocation worker
    gives up; ``allocation_in_flight`` is true until the current worker has applied the targets.
    ``deleting_since``, ``last_autoscale`` (the evaluation schedule's last slot) and
    ``last_enabled`` (the last ``enableautoscale``) are ``time.monotonic()`` instants; ``samples``
    its metric history (``scaling``), ``stats_*`` its last statistics roll-up (``node_lives``).
    """

    id: str
    spec: dict[str, Any]
    target_dedicated: int = 0
    target_low_priority: int = 0
    resize_timeout: str = "PT15M"
    deallocation_option: str = "requeue"
    auto_scale_run: dict[str, Any] | None = None
    revision: Revision = field(default_factory=Revision)
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("active"))
    allocation: Lifecycle = field(default_factory=lambda: Lifecycle("resizing"))
    allocation_generation: int = 0
    allocation_in_flight: bool = False
    deleting_since: float | None = None
    last_autoscale: float = 0.0
    last_enabled: float | None = None
    samples: MetricHistory = field(default_factory=MetricHistory)
    stats_updated: datetime | None = None
    stats_core_seconds: float = 0.0
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    resize_errors: list[dict[str, Any]] = field(default_factory=list)
    identities: list[dict[str, Any]] = field(default_factory=list)  # user-assigned: resourceId, clientId, principalId

    @property
    def enable_auto_scale(self) -> bool:
        return bool(self.spec.get("enableAutoScale"))

    @property
    def auto_scale_interval(self) -> str:
        return str(self.spec.get("autoScaleEvaluationInterval") or "PT15M")

    @property
    def task_slots_per_node(self) -> int:
        return int(self.spec.get("taskSlotsPerNode") or 1)

    @property
    def inter_node_communication(self) -> bool:
        return bool(self.spec.get("enableInterNodeCommunication", False))

    @property
    def container_configuration(self) -> dict[str, Any] | None:
        config: dict[str, Any] | None = (self.spec.get("virtualMachineConfiguration") or {}).get("containerConfiguration")
        return config

    @property
    def node_fill_type(self) -> str:
        return str((self.spec.get("taskSchedulingPolicy") or {}).get("nodeFillType") or "spread").lower()

    def current_counts(self) -> tuple[int, int]:
        """(dedicated, low-priority) nodes currently in the pool."""
        dedicated = sum(1 for node in self.nodes.values() if node.is_dedicated)
        return dedicated, len(self.nodes) - dedicated

    def url(self, base_url: str) -> str:
        return f"{base_url}/pools/{quote(self.id)}"

    def to_json(self, base_url: str) -> dict[str, Any]:
        """The ``BatchPool`` JSON: the create body plus service-owned state."""
        body = dict(self.spec)
        dedicated, low_priority = self.current_counts()
        body.update(
            id=self.id, url=self.url(base_url), **self.revision.json_fields(),
            **self.lifecycle.json_fields(with_previous=False), allocationState=self.allocation.state,
            allocationStateTransitionTime=format_timestamp(self.allocation.transition_time),
            resizeTimeout=self.resize_timeout, currentDedicatedNodes=dedicated, currentLowPriorityNodes=low_priority,
            targetDedicatedNodes=self.target_dedicated, targetLowPriorityNodes=self.target_low_priority,
            enableAutoScale=self.enable_auto_scale, taskSlotsPerNode=self.task_slots_per_node,
            enableInterNodeCommunication=self.inter_node_communication,
            taskSchedulingPolicy={**(self.spec.get("taskSchedulingPolicy") or {}), "nodeFillType": self.node_fill_type},
        )
        if self.enable_auto_scale:
            body.update(autoScaleEvaluationInterval=self.auto_scale_interval, autoScaleRun=self.auto_scale_run)
        if self.resize_errors:
            body["resizeErrors"] = list(self.resize_errors)
        if self.identities:
            body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": [dict(i) for i in self.identities]}
        return body


DEFAULT_TASK_CONSTRAINTS = {"maxWallClockTime": UNLIMITED_DURATION, "retentionTime": "P7D", "maxTaskRetryCount": 0}
DEFAULT_JOB_CONSTRAINTS = {"maxWallClockTime": UNLIMITED_DURATION, "maxTaskRetryCount": 0}
TASK_ENDED = {"category": "usererror", "code": "TaskEnded", "message": "Task Was Ended by User Request"}
WALL_CLOCK_EXCEEDED = {
    "category": "usererror", "code": "TaskEnded",
    "message": "The task exceeded its maximum wall clock time (constraints.maxWallClockTime) and was ended.",
    "details": [{"name": "Reason", "value": "MaxWallClockTimeExpiry"}],
}


@dataclass
class TaskRecord:
    """A task: its stored add body (``spec``) plus execution state.

    ``execution`` holds the ``executionInfo`` fields; ``task_dir`` is the (primary instance's)
    task directory once the task has been scheduled; ``handle`` is set while it runs.
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
    handle: ExecutionHandle | None = None
    subtasks: list[dict[str, Any]] = field(default_factory=list)  # a multi-instance task's other instances

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
        body.update(id=self.id, url=self.url(base_url), **self.revision.json_fields(), **self.lifecycle.json_fields(),
                    constraints=self.constraints, requiredSlots=self.required_slots,
                    executionInfo=dict(self.execution))
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
            id=self.id, url=self.url(base_url), **self.revision.json_fields(), **self.lifecycle.json_fields(),
            usesTaskDependencies=bool(self.spec.get("usesTaskDependencies", False)),
            priority=int(self.spec.get("priority") or 0), maxParallelTasks=int(self.spec.get("maxParallelTasks", -1)),
            allowTaskPreemption=bool(self.spec.get("allowTaskPreemption", False)),
            constraints={**DEFAULT_JOB_CONSTRAINTS, **(self.spec.get("constraints") or {})},
            onAllTasksComplete=self.on_all_tasks_complete, onTaskFailure="noaction", executionInfo=execution,
        )
        return body
