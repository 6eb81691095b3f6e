"""Runtime nouns shared by the core, the backends and the CLI: frozen dataclasses and enums.

These describe what exists (pools, nodes, tasks) and what is asked of a backend (``TaskLaunch``).
They carry no behaviour beyond small derived properties, and never import an SDK.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping

from orchestrator.launch.plans import DistributedSpec


class TaskState(str, Enum):
    """Lifecycle of a task; the last four are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # stopped early by a sweep policy: not a failure

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.STOPPED})


@dataclass(frozen=True)
class Resources:
    """What one task (or one rank's node share) needs on a node."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class TaskLaunch:
    """One task as a backend receives it: fully expanded, ids final, commands rendered."""

    id: str
    command: str | tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    resources: Resources = Resources()
    max_retries: int = 0
    max_wall_time: float | None = None
    depends_on: tuple[str, ...] = ()
    output_files: tuple[str, ...] = ()
    distributed: DistributedSpec | None = None  # nodes resolved to a count
    params: Mapping[str, object] = field(default_factory=dict)

    @property
    def uses_shell(self) -> bool:
        return isinstance(self.command, str)


@dataclass(frozen=True)
class NodeInfo:
    id: str
    address: str
    state: str
    cpus: float
    gpus: float
    free_slots: int
    running_tasks: int = 0


@dataclass(frozen=True)
class PoolInfo:
    id: str
    backend: str
    state: str
    nodes: tuple[NodeInfo, ...] = ()
    target_nodes: int = 0
    address: str | None = None
    detail: str = ""

    @property
    def free_slots(self) -> int:
        return sum(n.free_slots for n in self.nodes)


@dataclass(frozen=True)
class TaskInfo:
    id: str
    job_id: str
    state: TaskState
    exit_code: int | None = None
    node_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    retries: int = 0
    error: str | None = None
    params: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class JobInfo:
    id: str
    pool_id: str
    state: str  # active | completed | cancelled
    created_at: float
    task_counts: Mapping[str, int] = field(default_factory=dict)
    ended_at: float | None = None

    @property
    def total_tasks(self) -> int:
        return sum(self.task_counts.values())

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "cancelled")

    @property
    def all_succeeded(self) -> bool:
        done = self.task_counts.get(TaskState.SUCCEEDED.value, 0) + self.task_counts.get(TaskState.STOPPED.value, 0)
        return self.finished and done == self.total_tasks


@dataclass(frozen=True)
class SubmitReport:
    """Every task accounted for: submitted now, already present, or failed with a reason."""

    job_id: str
    submitted: int = 0
    already_present: int = 0
    failed: Mapping[str, str] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.submitted + self.already_present + len(self.failed)


@dataclass(frozen=True)
class FileChunk:
    """Bytes read from a file at an offset, with the file's size at the time of the read."""

    data: bytes
    size: int
