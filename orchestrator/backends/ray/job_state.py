"""Job and task records kept by the pool manager, with the state transitions they allow.

Pure bookkeeping (no Ray): readiness from dependencies, retries, lost attempts (their node went
away: retried within ``max_retries``, else the task ends ``lost``), cascading failure of
dependents, counts by state, when a job is finished, and which records changed since the
manager last journaled them (``changed``, ``new``, ``ended_attempts``).
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

from orchestrator.backends.ray.journal import AttemptRow, JobRow, TaskRow
from orchestrator.model import AttemptInfo, JobInfo, TaskInfo, TaskLaunch, TaskState

STOPPED_ERROR = "stopped early by the sweep's policy"


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
    dispatched: bool = False  # the current attempt was sent to an agent
    waiting_on: int = 0
    dependents: list[str] = field(default_factory=list)
    history: list[AttemptRow] = field(default_factory=list)

    def info(self, job_id: str) -> TaskInfo:
        attempts = tuple(AttemptInfo(number=a.attempt, state=a.state, node_id=None if a.node is None else str(a.node),
                                     started_at=a.started_at, ended_at=a.ended_at, exit_code=a.exit_code,
                                     error=a.error) for a in self.history)
        return TaskInfo(id=self.launch.id, job_id=job_id, state=self.state, exit_code=self.exit_code,
                        node_id=None if self.node is None else str(self.node), started_at=self.started_at,
                        ended_at=self.ended_at, retries=self.attempt, error=self.error,
                        params=dict(self.launch.params), fingerprint=self.launch.fingerprint, attempts=attempts)


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
    workdir: str | None = None  # the snapshot's digest (its bytes are in the journal)
    inputs: tuple[tuple[str, str, str | None], ...] = ()  # (to, digest, file name or None)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    ready: collections.deque[str] = field(default_factory=collections.deque)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    durations: list[float] = field(default_factory=list)
    stop_requested: set[str] = field(default_factory=set)
    stop_reasons: dict[str, str] = field(default_factory=dict)  # task -> why it is stopped, when not the policy
    changed: set[str] = field(default_factory=set)
    new: list[str] = field(default_factory=list)
    ended_attempts: list[tuple[str, AttemptRow]] = field(default_factory=list)
    awaiting: dict[str, list[str]] = field(default_factory=dict)  # a dependency not added yet -> its dependents

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
            self.new.append(launch.id)
            self.counts[TaskState.PENDING.value] += 1
            added += 1
            record.dependents.extend(self.awaiting.pop(launch.id, []))
            self._link(record)
            failed_dep = next((d for d in launch.depends_on if d in self.tasks
                               and self.tasks[d].state.is_terminal() and self.tasks[d].state != TaskState.SUCCEEDED), None)
            if failed_dep:
                self._set(record, TaskState.FAILED, error=f"dependency {failed_dep!r} did not succeed")
            elif self.cancelled:
                self._set(record, TaskState.CANCELLED, error="job cancelled")
            elif record.waiting_on == 0:
                self.ready.append(launch.id)
            if record.state.is_terminal():
                self._release_dependents(record)
        self.ended_at = None if added else self.ended_at
        return added, present

    def _link(self, record: TaskRecord) -> None:
        """Count the dependencies ``record`` waits for and register it with each (one added later
        learns of its dependents when it arrives)."""
        for dep in record.launch.depends_on:
            parent = self.tasks.get(dep)
            if parent is None or parent.state != TaskState.SUCCEEDED:
                record.waiting_on += 1
            if parent is not None:
                parent.dependents.append(record.launch.id)
            else:
                self.awaiting.setdefault(dep, []).append(record.launch.id)

    # -- transitions ---------------------------------------------------------------------
    def dispatched(self, task_id: str, node: int) -> None:
        record = self.tasks[task_id]
        record.dispatched, record.node = True, node
        self.changed.add(task_id)

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
            state, record.error = TaskState.STOPPED.value, self.stop_reasons.get(task_id, STOPPED_ERROR)
        if record.started_at is not None:
            self.durations.append(when - record.started_at)
        self._record_attempt(record, state, when)
        if state == "failed" and record.attempt < record.launch.max_retries and not self.cancelled:
            self._retry(record)
            return True
        record.ended_at = when
        self._set(record, TaskState(state))
        self._release_dependents(record)
        return False

    def lost(self, task_id: str, reason: str, when: float) -> bool:
        """The current attempt's node went away (or the pool restarted under it): the attempt ends
        ``lost`` and the task is retried within ``max_retries``, else ends ``lost``. True on retry."""
        record = self.tasks[task_id]
        if record.state.is_terminal():
            return False
        record.error = reason
        self._record_attempt(record, "lost", when)
        if self.cancelled or task_id in self.stop_requested:
            record.ended_at = when
            if not self.cancelled and task_id in self.stop_reasons:
                record.error = self.stop_reasons[task_id]
            self._set(record, TaskState.CANCELLED if self.cancelled else TaskState.STOPPED)
            self._release_dependents(record)
            return False
        if record.attempt < record.launch.max_retries:
            self._retry(record)
            return True
        record.ended_at = when
        self._set(record, TaskState.LOST)
        self._release_dependents(record)
        return False

    def requeue(self, task_id: str) -> None:
        """An attempt that was never started goes back to the front of the queue, uncounted."""
        record = self.tasks[task_id]
        record.dispatched, record.node = False, None
        self.changed.add(task_id)
        if record.state == TaskState.PENDING and task_id not in self.ready:
            self.ready.appendleft(task_id)

    def _retry(self, record: TaskRecord) -> None:
        record.attempt += 1
        record.dispatched, record.started_at = False, None  # the new attempt's start is its own
        self._set(record, TaskState.PENDING)
        self.ready.appendleft(record.launch.id)

    def _record_attempt(self, record: TaskRecord, state: str, when: float) -> None:
        row = AttemptRow(attempt=record.attempt, node=record.node, state=state, started_at=record.started_at,
                         ended_at=when, exit_code=record.exit_code, error=record.error)
        record.history.append(row)
        self.ended_attempts.append((record.launch.id, row))

    def stop(self, task_ids: list[str], reason: str = STOPPED_ERROR) -> list[str]:
        """Mark tasks stopped early (not failed): by a sweep's policy, or at a budget (``reason``
        says which and is the task's error). Pending ones stop now; returns those running."""
        running, dropped = [], set()
        for task_id in task_ids:
            record = self.tasks.get(task_id)
            if record is None or record.state.is_terminal():
                continue
            self.stop_requested.add(task_id)
            if reason != STOPPED_ERROR:
                self.stop_reasons[task_id] = reason
            if record.state == TaskState.PENDING and not record.dispatched:
                dropped.add(task_id)
                record.ended_at = time.time()
                self._set(record, TaskState.STOPPED, error=reason)
                self._release_dependents(record)
            else:
                running.append(task_id)
        if dropped:
            self.ready = collections.deque(task_id for task_id in self.ready if task_id not in dropped)
        return running

    def cancel_pending(self) -> list[str]:
        """Cancel every task not yet running; returns the ids running (or sent to a node)."""
        self.cancelled = True
        self.ready.clear()
        running = []
        for record in self.tasks.values():
            if record.state == TaskState.PENDING and not record.dispatched:
                self._set(record, TaskState.CANCELLED, error="job cancelled")
                record.ended_at = time.time()
            elif not record.state.is_terminal():
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
        self.changed.add(record.launch.id)

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

    def row(self) -> JobRow:
        return JobRow(id=self.id, created_at=self.created_at, max_running=self.max_running, sealed=self.sealed,
                      cancelled=self.cancelled, ended_at=self.ended_at, spec_digest=self.spec_digest,
                      workdir=self.workdir, inputs=list(self.inputs))

    # -- replay --------------------------------------------------------------------------
    @classmethod
    def restore(cls, pool_id: str, row: JobRow, tasks: list[TaskRow], attempts: dict[str, list[AttemptRow]]) -> JobRecord:
        """The job as journaled: tasks with their states, attempts and links; ready queue rebuilt.
        Tasks that were running or sent to a node stay so: the manager reconciles them with the
        agents (``manager_recovery``)."""
        job = cls(id=row.id, pool_id=pool_id, created_at=row.created_at, max_running=row.max_running,
                  spec_digest=row.spec_digest, sealed=row.sealed, cancelled=row.cancelled, ended_at=row.ended_at,
                  workdir=row.workdir, inputs=tuple(tuple(item) for item in row.inputs))  # type: ignore[misc]
        for saved in tasks:
            record = TaskRecord(launch=saved.launch, state=TaskState(saved.state), attempt=saved.attempt,
                                node=saved.node, exit_code=saved.exit_code, started_at=saved.started_at,
                                ended_at=saved.ended_at, error=saved.error, dispatched=saved.dispatched,
                                history=list(attempts.get(saved.launch.id, [])))
            job.tasks[saved.launch.id] = record
            job.counts[record.state.value] += 1
            if record.state == TaskState.STOPPED or (record.error == STOPPED_ERROR):
                job.stop_requested.add(saved.launch.id)
        for record in job.tasks.values():
            job._link(record)
            if record.state == TaskState.PENDING and not record.dispatched and record.waiting_on == 0:
                job.ready.append(record.launch.id)
        return job
