"""Job and task records kept by the pool manager, with the state transitions they allow.

Pure bookkeeping (no Ray): readiness from dependencies, retries, cascading failure of
dependents, counts by state, and when a job is finished.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from orchestrator.model import JobInfo, TaskInfo, TaskLaunch, TaskState


@dataclass
class TaskRecord:
    launch: TaskLaunch
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    node: int | None = None
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    waiting_on: int = 0
    dependents: list[str] = field(default_factory=list)

    def info(self, job_id: str) -> TaskInfo:
        return TaskInfo(id=self.launch.id, job_id=job_id, state=self.state, exit_code=self.exit_code,
                        node_id=None if self.node is None else str(self.node), started_at=self.started_at,
                        ended_at=self.ended_at, retries=self.attempt, error=self.error,
                        params=dict(self.launch.params), fingerprint=self.launch.fingerprint)


@dataclass
class JobRecord:
    """A job's tasks in submission order, the ready queue, and counts by state."""

    id: str
    pool_id: str
    created_at: float
    max_running: int | None = None
    spec_digest: str | None = None
    sealed: bool = False
    cancelled: bool = False
    ended_at: float | None = None
    workdir: tuple[str, object] | None = None
    inputs: tuple[object, ...] = ()
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    ready: collections.deque[str] = field(default_factory=collections.deque)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    durations: list[float] = field(default_factory=list)
    stop_requested: set[str] = field(default_factory=set)

    # -- adding --------------------------------------------------------------------------
    def add(self, launches: list[TaskLaunch]) -> tuple[int, int]:
        """Add tasks not yet present. Returns ``(added, already_present)``."""
        added = present = 0
        for launch in launches:
            if launch.id in self.tasks:
                present += 1
                continue
            record = TaskRecord(launch=launch)
            self.tasks[launch.id] = record
            self.counts[TaskState.PENDING.value] += 1
            added += 1
            for dep in launch.depends_on:
                parent = self.tasks.get(dep)
                if parent is None or parent.state != TaskState.SUCCEEDED:
                    record.waiting_on += 1
                if parent is not None:
                    parent.dependents.append(launch.id)
            failed_dep = next((d for d in launch.depends_on if d in self.tasks
                               and self.tasks[d].state.is_terminal() and self.tasks[d].state != TaskState.SUCCEEDED), None)
            if failed_dep:
                self._set(record, TaskState.FAILED, error=f"dependency {failed_dep!r} did not succeed")
            elif self.cancelled:
                self._set(record, TaskState.CANCELLED, error="job cancelled")
            elif record.waiting_on == 0:
                self.ready.append(launch.id)
        self.ended_at = None if added else self.ended_at
        return added, present

    # -- transitions ---------------------------------------------------------------------
    def started(self, task_id: str, attempt: int, node: int, when: float) -> None:
        record = self.tasks[task_id]
        if attempt != record.attempt or record.state.is_terminal():
            return
        record.started_at = record.started_at or when
        record.node = node
        self._set(record, TaskState.RUNNING)

    def ended(self, task_id: str, attempt: int, state: str, exit_code: int | None, error: str | None,
              when: float, node: int) -> bool:
        """Apply an attempt's end. Returns True when the task goes back to the ready queue (retry)."""
        record = self.tasks[task_id]
        if attempt != record.attempt or record.state.is_terminal():
            return False
        record.exit_code, record.error, record.node = exit_code, error, node
        if task_id in self.stop_requested and state in ("cancelled", "failed"):
            state, record.error = TaskState.STOPPED.value, "stopped early by the sweep's policy"

        if record.started_at is not None:
            self.durations.append(when - record.started_at)
        retries = record.launch.max_retries
        if state == "failed" and record.attempt < retries and not self.cancelled:
            record.attempt += 1
            self._set(record, TaskState.PENDING)
            self.ready.appendleft(task_id)
            return True
        record.ended_at = when
        self._set(record, TaskState(state))
        self._release_dependents(record)
        return False

    def stop(self, task_ids: list[str]) -> list[str]:
        """Mark tasks stopped early (not failed). Pending ones stop now; returns those running."""
        running = []
        for task_id in task_ids:
            record = self.tasks.get(task_id)
            if record is None or record.state.is_terminal():
                continue
            self.stop_requested.add(task_id)
            if record.state == TaskState.PENDING:
                if task_id in self.ready:
                    self.ready.remove(task_id)
                record.ended_at = time.time()
                self._set(record, TaskState.STOPPED, error="stopped early by the sweep's policy")
                self._release_dependents(record)
            else:
                running.append(task_id)
        return running

    def cancel_pending(self) -> list[str]:
        """Cancel every task not yet running; returns the ids still running."""
        self.cancelled = True
        self.ready.clear()
        running = []
        for record in self.tasks.values():
            if record.state == TaskState.PENDING:
                self._set(record, TaskState.CANCELLED, error="job cancelled")
                record.ended_at = time.time()
            elif record.state == TaskState.RUNNING:
                running.append(record.launch.id)
        return running

    def _release_dependents(self, record: TaskRecord) -> None:
        stack = [(record, record.state == TaskState.SUCCEEDED)]
        while stack:
            parent, ok = stack.pop()
            for child_id in parent.dependents:
                child = self.tasks[child_id]
                if child.state != TaskState.PENDING:
                    continue
                if ok:
                    child.waiting_on -= 1
                    if child.waiting_on == 0:
                        self.ready.append(child_id)
                else:
                    self._set(child, TaskState.FAILED, error=f"dependency {parent.launch.id!r} did not succeed")
                    child.ended_at = time.time()
                    stack.append((child, False))

    def _set(self, record: TaskRecord, state: TaskState, *, error: str | None = None) -> None:
        self.counts[record.state.value] -= 1
        record.state = state
        self.counts[state.value] += 1
        if error is not None:
            record.error = error

    # -- views ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        open_count = self.counts[TaskState.PENDING.value] + self.counts[TaskState.RUNNING.value]
        return (self.sealed or self.cancelled) and open_count == 0

    def mean_duration(self) -> float | None:
        recent = self.durations[-50:]
        return sum(recent) / len(recent) if len(recent) >= 4 else None

    def info(self) -> JobInfo:
        if self.finished and self.ended_at is None:
            self.ended_at = time.time()
        state = ("cancelled" if self.cancelled else "completed") if self.finished else "active"
        counts = {k: v for k, v in self.counts.items() if v}
        return JobInfo(id=self.id, pool_id=self.pool_id, state=state, created_at=self.created_at,
                       task_counts=counts, ended_at=self.ended_at if self.finished else None,
                       spec_digest=self.spec_digest)
