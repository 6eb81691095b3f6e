"""An in-memory Backend for fast tests of the core pipeline (planning, submission, bookkeeping).

It keeps the contract's promises that the core relies on (idempotent submit, every task
accounted for, NotFoundError for unknown jobs) and records every call in ``calls``, so tests can
check what the core asked and in which order. Tasks never run: tests move them with ``finish``.
It stands in for no engine; the contract suite runs the real backends.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from orchestrator.backend import Capability, ProgressFn
from orchestrator.errors import NotFoundError
from orchestrator.model import (
    FileChunk,
    JobInfo,
    JobLaunch,
    JobRef,
    NodeInfo,
    PoolInfo,
    SubmitReport,
    TaskInfo,
    TaskLaunch,
    TaskState,
)
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.controller import ControllerSettings


@dataclass
class MemoryJob:
    launch: JobLaunch
    created_at: float
    tasks: dict[str, TaskLaunch] = field(default_factory=dict)
    states: dict[str, TaskState] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)


class MemoryBackend:
    name = "memory"

    def __init__(self, capabilities: frozenset[Capability] = frozenset({Capability.SWEEP_HOST}),
                 *, fail_create: BaseException | None = None, engine: dict[str, Any] | None = None) -> None:
        self.capabilities = capabilities
        self.fail_create, self.engine = fail_create, engine
        self.pools: dict[str, PoolSpec] = {}
        self.jobs: dict[JobRef, MemoryJob] = {}
        self.calls: list[tuple[str, Any]] = []
        self.sweeps: list[tuple[JobLaunch, JobSpec, ControllerSettings]] = []

    # -- pools ---------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        self.calls.append(("ensure_pool", spec.id))
        pool_records.require(spec.id)  # the core writes the record first
        if self.engine is not None:
            pool_records.save_engine(spec.id, self.engine)
        if self.fail_create is not None:
            raise self.fail_create
        self.pools[spec.id] = spec
        return self._info(spec)

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        spec = self.pools.get(pool_id)
        return self._info(spec) if spec is not None else None

    def resize_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        self.calls.append(("resize_pool", spec.nodes.total))
        self.pools[spec.id] = spec
        return self._info(spec)

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        self.calls.append(("delete_pool", pool_id))
        self.pools.pop(pool_id, None)
        for ref in [ref for ref in self.jobs if ref.pool_id == pool_id]:
            del self.jobs[ref]

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job: JobLaunch, tasks: Iterable[TaskLaunch]) -> SubmitReport:
        self.calls.append(("submit", job))
        record = self.jobs.setdefault(job.ref, MemoryJob(launch=job, created_at=time.time()))
        record.launch = replace(record.launch, spec_digest=job.spec_digest or record.launch.spec_digest)
        added = present = 0
        for task in tasks:
            if task.id in record.tasks:
                present += 1
                continue
            record.tasks[task.id] = task
            record.states[task.id] = TaskState.PENDING
            added += 1
        return SubmitReport(job_id=job.id, submitted=added, already_present=present)

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        return [self._job_info(ref) for ref in self.jobs if ref.pool_id == pool_id]

    def get_job(self, job: JobRef) -> JobInfo | None:
        return self._job_info(job) if job in self.jobs else None

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        record = self._job(job)
        return [TaskInfo(id=task_id, job_id=job.job_id, state=state, params=dict(record.tasks[task_id].params),
                         fingerprint=record.tasks[task_id].fingerprint)
                for task_id, state in record.states.items()]

    def stop_tasks(self, job: JobRef, task_ids: Sequence[str]) -> None:
        self.calls.append(("stop_tasks", list(task_ids)))
        record = self._job(job)
        for task_id in task_ids:
            if task_id in record.states and not record.states[task_id].is_terminal():
                record.states[task_id] = TaskState.STOPPED

    def cancel_job(self, job: JobRef) -> None:
        self.calls.append(("cancel_job", job.job_id))
        record = self._job(job)
        for task_id, state in record.states.items():
            if not state.is_terminal():
                record.states[task_id] = TaskState.CANCELLED

    def delete_job(self, job: JobRef) -> None:
        self.calls.append(("delete_job", job.job_id))
        self._job(job)
        del self.jobs[job]

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        data = self._job(job).files.get((task_id, name))
        return None if data is None else FileChunk(data=data[offset:], size=len(data))

    # -- sweep host ----------------------------------------------------------------------
    def start_sweep(self, job: JobLaunch, spec: JobSpec, settings: ControllerSettings) -> None:
        self.calls.append(("start_sweep", job.id))
        self.sweeps.append((job, spec, settings))

    def sweep_state(self, job: JobRef) -> dict[str, Any] | None:
        return {"running": True, "passes": 1} if any(j.ref == job for j, _, _ in self.sweeps) else None

    # -- test controls -------------------------------------------------------------------
    def finish(self, job: JobRef, task_id: str, state: TaskState, output: bytes = b"") -> None:
        record = self._job(job)
        record.states[task_id] = state
        record.files[(task_id, "stdout")] = output

    def _job(self, job: JobRef) -> MemoryJob:
        if job not in self.jobs:
            raise NotFoundError(f"job {job.job_id!r} does not exist")
        return self.jobs[job]

    def _job_info(self, job: JobRef) -> JobInfo:
        record = self.jobs[job]
        counts: dict[str, int] = {}
        for state in record.states.values():
            counts[state.value] = counts.get(state.value, 0) + 1
        done = record.launch.seal and all(state.is_terminal() for state in record.states.values())
        return JobInfo(id=job.job_id, pool_id=job.pool_id, state="completed" if done else "active",
                       created_at=record.created_at, task_counts=counts, spec_digest=record.launch.spec_digest)

    def _info(self, spec: PoolSpec) -> PoolInfo:
        nodes = tuple(NodeInfo(id=f"n{i}", address="127.0.0.1", state="idle", cpus=spec.cpus_per_node,
                               gpus=spec.gpus_per_node, free_slots=spec.slots_per_node)
                      for i in range(spec.nodes.total))
        return PoolInfo(id=spec.id, backend=spec.backend, state="ready", nodes=nodes, target_nodes=spec.nodes.total)

