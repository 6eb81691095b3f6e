"""Test helpers: submit a job spec given as a dict through the real submission path, and wait."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orchestrator.backend import Backend, load_backend
from orchestrator.model import JobInfo, JobRef, SubmitReport, TaskState
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.submit import submit_job

REPO = Path(__file__).resolve().parent.parent.parent


def job_spec(pool: str, spec: dict[str, Any]) -> JobSpec:
    """``spec`` on ``pool``, without a workdir unless it names one."""
    return JobSpec.model_validate({"pool": pool, "workdir": None, **spec})


def submit(pool: str, spec: dict[str, Any] | JobSpec, *, base_dir: Path = REPO) -> SubmitReport:
    """Plan and submit like ``orch jobs add`` (the pool must exist)."""
    job = spec if isinstance(spec, JobSpec) else job_spec(pool, spec)
    return submit_job(job, config_dir=base_dir)


def backend_of(pool: str) -> Backend:
    return load_backend(pool_records.require(pool).backend)


def wait_job(pool: str, job_id: str, timeout: float = 60.0, *, pause: float = 0.1) -> JobInfo:
    backend, ref = backend_of(pool), JobRef(pool, job_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = backend.get_job(ref)
        if info and info.finished:
            return info
        time.sleep(pause)
    raise AssertionError(f"job {job_id} did not finish: {backend.get_job(ref)}")


def wait_state(pool: str, job_id: str, task_id: str, state: TaskState, timeout: float = 30.0) -> None:
    backend, ref = backend_of(pool), JobRef(pool, job_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(t.id == task_id and t.state == state for t in backend.list_tasks(ref)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{task_id} never reached {state}")


def submit_first(pool: str, job: JobSpec, count: int, *, base_dir: Path = REPO) -> SubmitReport:
    """What an interrupted submission leaves: the job unsealed with its first ``count`` tasks."""
    from dataclasses import replace
    from itertools import islice

    from orchestrator.plan import make_plan

    plan = make_plan(job, pool_records.require(pool).pool_spec(), base_dir=base_dir)
    return backend_of(pool).submit(replace(plan.job, seal=False), islice(plan.launches(), count))
