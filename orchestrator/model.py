"""Runtime nouns shared by the core, the backends and the CLI: frozen dataclasses and enums.

These describe what exists (pools, nodes, tasks) and what is asked of a backend (``TaskLaunch``).
They carry no behaviour beyond small derived properties, and import nothing of orch's at run time.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from orchestrator.spec.job import DistributedSpec


class TaskState(str, Enum):
    """Lifecycle of a task; all but pending and running are terminal."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # stopped early by a sweep policy: not a failure
    LOST = "lost"  # its node was lost (or preempted) with no retries left

    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED, TaskState.STOPPED,
                             TaskState.LOST})


@dataclass(frozen=True)
class AttemptInfo:
    """One attempt of a task and how it ended: ``state`` is succeeded, failed, cancelled, stopped,
    lost (its node went away) or preempted (its node was taken back and the task requeued)."""

    number: int
    state: str
    node_id: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    error: str | None = None


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
    distributed: DistributedSpec | None = None  # nodes and processes_per_node resolved
    params: Mapping[str, object] = field(default_factory=dict)
    inputs: tuple[JobInput, ...] = ()  # files only this task gets (a file factory's blob)

    @cached_property
    def fingerprint(self) -> str:
        """What the task runs, hashed (16 hex digits): a task id submitted again with another
        fingerprint is another task, which re-submission must not silently ignore."""
        what = {"command": self.command, "env": dict(self.env), "resources": [self.resources.cpus, self.resources.gpus],
                "max_retries": self.max_retries, "max_wall_time": self.max_wall_time,
                "depends_on": list(self.depends_on), "output_files": list(self.output_files),
                "distributed": self.distributed.model_dump(mode="json") if self.distributed else None,
                "inputs": [[item.to, str(item.path) if item.path else None, item.blob] for item in self.inputs]}
        text = json.dumps(what, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class JobRef:
    """A job as backends name it: its pool and its id (unique within the pool)."""

    pool_id: str
    job_id: str


@dataclass(frozen=True)
class JobInput:
    """Files every task of a job finds at ``to`` in its working directory: a local file or
    folder (``path``, absolute) or every blob under ``blob`` (``container/prefix``)."""

    to: str
    path: Path | None = None
    blob: str | None = None

    @property
    def blob_container(self) -> str:
        """The blob container of a blob input."""
        assert self.blob is not None
        return self.blob.strip("/").split("/", 1)[0]

    @property
    def blob_prefix(self) -> str:
        """The blob prefix of a blob input (inside its container)."""
        assert self.blob is not None
        return self.blob.lstrip("/").split("/", 1)[1]


@dataclass(frozen=True)
class Snapshot:
    """A packed folder: the zip's bytes and their SHA-256 (hex), which names it everywhere;
    ``left_out``: what the folder has that could not be packed, ``"path (why)"``, for the user."""

    digest: str
    data: bytes
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobLaunch:
    """A job as a backend receives it, with the job-level settings planning resolved.

    ``seal``: every task is in after this submission, so the job completes once they all end.
    ``controlled``: a sweep controller (``SweepHost.start_sweep``) will add tasks and seal the job;
    only backends that declare the sweep-host capability get it. ``max_in_flight`` caps tasks
    running at once (the smallest ``limits.max_concurrent_trials``). ``workdir`` is linked into
    every task's working directory. ``spec_digest`` names the spec the job was planned from; the
    backend keeps the latest one it was given and reports it in ``JobInfo``.
    """

    id: str
    pool_id: str
    seal: bool = True
    controlled: bool = False
    max_in_flight: int | None = None
    uses_dependencies: bool = False
    inputs: tuple[JobInput, ...] = ()
    workdir: Snapshot | None = None
    spec_digest: str | None = None
    budget: float | None = None  # USD for the whole job (limits.budget)
    sweep_budgets: Mapping[str, float] = field(default_factory=dict)  # sweep task id -> USD for its trials

    @property
    def ref(self) -> JobRef:
        return JobRef(self.pool_id, self.id)


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
    stops_at: float | None = None  # when an idle pool will stop itself (idle_timeout), if it is idle

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
    fingerprint: str | None = None  # TaskLaunch.fingerprint of what was submitted; None if unknown
    attempts: tuple[AttemptInfo, ...] = ()  # ended attempts, oldest first, where the backend keeps them


@dataclass(frozen=True)
class JobInfo:
    id: str
    pool_id: str
    state: str  # active | completed | cancelled
    created_at: float
    task_counts: Mapping[str, int] = field(default_factory=dict)
    ended_at: float | None = None
    spec_digest: str | None = None  # JobLaunch.spec_digest it was last submitted with; None if unknown

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
    """Every task accounted for: submitted now, already present, or failed with a reason.
    ``controlled``: a sweep controller drives the job (adds trials, stops them, seals it)."""

    job_id: str
    submitted: int = 0
    already_present: int = 0
    failed: Mapping[str, str] = field(default_factory=dict)
    controlled: bool = False

    @property
    def total(self) -> int:
        return self.submitted + self.already_present + len(self.failed)


@dataclass(frozen=True)
class FileChunk:
    """Bytes read from a file at an offset, with the file's size at the time of the read.

    ``origin`` names which file it is where the backend can tell (e.g. its creation time): a
    chunk with another origin than the last one read is a new file (a retried or requeued
    attempt's), so a follower starts it from 0 even when it is already longer than the old one.
    """

    data: bytes
    size: int
    origin: str | None = None


@dataclass(frozen=True)
class CostEstimate:
    """Hourly cost of a pool; a part is None when its price is not in the table."""

    size: str
    dedicated_nodes: int
    low_priority_nodes: int
    dedicated_per_hour: float | None
    low_priority_per_hour: float | None
    region: str
    currency: str

    @property
    def total_per_hour(self) -> float | None:
        """Sum of both parts, or None when a part with nodes has no known price."""
        parts = [(self.dedicated_nodes, self.dedicated_per_hour),
                 (self.low_priority_nodes, self.low_priority_per_hour)]
        if any(nodes and price is None for nodes, price in parts):
            return None
        return round(sum(price or 0.0 for _, price in parts), 6)

    def total_for(self, hours: float) -> float | None:
        """Cost of running the pool for ``hours``; None when a needed price is unknown."""
        total = self.total_per_hour
        return None if total is None else round(total * hours, 4)

    def describe(self) -> str:
        """One line for humans, saying which prices are missing."""
        total = self.total_per_hour
        nodes = f"{self.dedicated_nodes} dedicated + {self.low_priority_nodes} spot × {self.size}"
        if total is None:
            return f"{nodes}: price unknown (not in orch's price table)"
        return f"{nodes}: about {total:.2f} {self.currency}/hour ({self.region} list price)"


@dataclass(frozen=True)
class PriceQuote:
    """What a pool would cost per hour: one estimate per labelled node count (a fixed pool has
    one; an autoscaling pool its minimum and maximum), with the price list's terms and source."""

    service: str
    estimates: tuple[tuple[str, CostEstimate], ...]
    terms: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class StoredFile:
    """A file in a pool's data store: its name (path) and size in bytes."""

    name: str
    size: int


@dataclass(frozen=True)
class TransferReport:
    """What an upload did: files sent, and files skipped because the store had them already."""

    sent: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageSpan:
    """A stretch of one node's time and who held it, priced. ``share`` is the fraction of the node
    the task held (its CPUs or GPUs over the node's, whichever is larger); idle time has no job.
    ``cost`` is ``(end - start) / 3600 * share * price_per_hour`` in USD."""

    pool_id: str
    node_id: str
    start: float
    end: float
    price_per_hour: float
    share: float = 1.0
    job_id: str | None = None
    task_id: str | None = None
    spot: bool = False

    @property
    def cost(self) -> float:
        return max(0.0, self.end - self.start) / 3600.0 * self.share * self.price_per_hour
