"""Pool and compute node records and their Batch JSON views."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .lifecycle import Lifecycle
from .revision import Revision
from .times import format_timestamp, utc_now

if TYPE_CHECKING:
    from .runner import ExecutionHandle

# Pool fields the service owns; everything else in the create body is stored and echoed.
_POOL_SERVICE_FIELDS = (
    "targetDedicatedNodes", "targetLowPriorityNodes", "enableAutoScale", "autoScaleFormula",
    "autoScaleEvaluationInterval", "resizeTimeout",
)
RECENT_TASKS_KEPT = 10


@dataclass
class NodeRecord:
    """One compute node: a directory under the service root plus scheduling bookkeeping.

    ``running`` maps a running task key (``job/task`` or ``job/task#subtask``) to the slots it
    holds; ``removal_pending`` marks a node that leaves the pool once its tasks finish.
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
    scheduling_state: str = "enabled"
    running: dict[str, int] = field(default_factory=dict)
    total_tasks_run: int = 0
    total_tasks_succeeded: int = 0
    start_task_info: dict[str, Any] | None = None
    recent_tasks: list[dict[str, Any]] = field(default_factory=list)
    start_task_handle: ExecutionHandle | None = None
    removal_pending: bool = False

    @property
    def state(self) -> str:
        return self.lifecycle.state

    @property
    def used_slots(self) -> int:
        return sum(self.running.values())

    def schedulable(self) -> bool:
        """Whether new tasks may start here."""
        return (
            self.state in ("idle", "running")
            and self.scheduling_state == "enabled"
            and not self.removal_pending
        )

    def url(self, base_url: str) -> str:
        return f"{base_url}/pools/{quote(self.pool_id)}/nodes/{quote(self.id)}"

    def to_json(self, base_url: str, start_task: dict[str, Any] | None) -> dict[str, Any]:
        """The ``BatchNode`` JSON."""
        body: dict[str, Any] = {
            "id": self.id,
            "url": self.url(base_url),
            "state": self.state,
            "schedulingState": self.scheduling_state,
            "stateTransitionTime": format_timestamp(self.lifecycle.transition_time),
            "allocationTime": format_timestamp(self.allocation_time),
            "ipAddress": self.ip_address,
            "affinityId": f"TVM:{self.id}",
            "vmSize": self.vm_size,
            "totalTasksRun": self.total_tasks_run,
            "runningTasksCount": len(self.running),
            "runningTaskSlotsCount": self.used_slots,
            "totalTasksSucceeded": self.total_tasks_succeeded,
            "recentTasks": list(self.recent_tasks),
            "isDedicated": self.is_dedicated,
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
    """A pool: the stored create body (``spec``) plus allocation state and nodes.

    ``allocation_generation`` increases with each resize/stop so that a superseded
    allocation worker knows to give up; ``allocation_in_flight`` is true until the current
    worker has applied the targets. ``deleting_since`` and ``last_autoscale`` are
    ``time.monotonic()`` instants.
    """

    id: str
    spec: dict[str, Any]
    target_dedicated: int = 0
    target_low_priority: int = 0
    resize_timeout: str = "PT15M"
    deallocation_option: str = "requeue"
    enable_auto_scale: bool = False
    auto_scale_formula: str | None = None
    auto_scale_interval: str = "PT15M"
    auto_scale_run: dict[str, Any] | None = None
    revision: Revision = field(default_factory=Revision)
    lifecycle: Lifecycle = field(default_factory=lambda: Lifecycle("active"))
    allocation: Lifecycle = field(default_factory=lambda: Lifecycle("resizing"))
    allocation_generation: int = 0
    allocation_in_flight: bool = False
    deleting_since: float | None = None
    last_autoscale: float = 0.0
    nodes: dict[str, NodeRecord] = field(default_factory=dict)
    node_serial: int = 0
    resize_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def task_slots_per_node(self) -> int:
        return int(self.spec.get("taskSlotsPerNode") or 1)

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
        """The ``BatchPool`` JSON: stored properties plus service-owned state."""
        body = {key: value for key, value in self.spec.items() if key not in _POOL_SERVICE_FIELDS}
        dedicated, low_priority = self.current_counts()
        body.update(
            id=self.id,
            url=self.url(base_url),
            **self.revision.json_fields(),
            **self.lifecycle.json_fields(with_previous=False),
            allocationState=self.allocation.state,
            allocationStateTransitionTime=format_timestamp(self.allocation.transition_time),
            resizeTimeout=self.resize_timeout,
            currentDedicatedNodes=dedicated,
            currentLowPriorityNodes=low_priority,
            targetDedicatedNodes=self.target_dedicated,
            targetLowPriorityNodes=self.target_low_priority,
            enableAutoScale=self.enable_auto_scale,
            enableInterNodeCommunication=bool(self.spec.get("enableInterNodeCommunication", False)),
            taskSlotsPerNode=self.task_slots_per_node,
            taskSchedulingPolicy={**(self.spec.get("taskSchedulingPolicy") or {}), "nodeFillType": self.node_fill_type},
        )
        if self.enable_auto_scale:
            body["autoScaleFormula"] = self.auto_scale_formula
            body["autoScaleEvaluationInterval"] = self.auto_scale_interval
            if self.auto_scale_run:
                body["autoScaleRun"] = self.auto_scale_run
        if self.resize_errors:
            body["resizeErrors"] = list(self.resize_errors)
        return body
