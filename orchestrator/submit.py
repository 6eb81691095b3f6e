"""Submission: run a ``Plan`` on its pool's backend. The one path for jobs and sweeps alike.

Order, so that an interruption at any point converges when the command is run again: every
check first (budgets the pool can price and its backend enforce, planning, the sweep-host
capability a controller needs, and what the job already holds), then the workdir snapshot, then the job index entry (so the job is routable even if
interrupted), then the backend's ``submit`` (idempotent on task ids), then the controller's start.

Submitting a job id again is idempotent for the same spec (after Ctrl-C it adds what is
missing). Another spec under that id is a conflict (exit 5) that names the tasks that differ;
a spec that only adds tasks may ``append`` them to a job that is still active.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterator

from orchestrator import workdir
from orchestrator.backend import Backend, BlobFiles, SweepHost, capability, supports
from orchestrator.cost import budgets
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.model import Snapshot, SubmitReport, TaskLaunch
from orchestrator.plan import Plan, dry_run_launches, make_plan, preflight, reads_blobs
from orchestrator.pools import pool_backend
from orchestrator.records import job_index, pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.task_factory import BlobLister

Warn = Callable[[str], None]


def submit_job(job: JobSpec, *, config_dir: Path, warn: Warn | None = None, append: bool = False,
               backend: Backend | None = None) -> SubmitReport:
    """Plan ``job`` against its pool and submit it (idempotent on job and task ids). ``backend``:
    an instance to use instead of the registry's (see ``pools.pool_backend``)."""
    if pool_records.load(job.pool) is None:
        known = ", ".join(r.id for r in pool_records.all_records()) or "none"
        raise NotFoundError(f"job {job.id!r} names pool {job.pool!r}, which does not exist (known pools: {known})",
                            hint="create it with `orch pool create`, or fix `pool:` in the job file")
    backend, pool = pool_backend(job.pool, config_dir=config_dir, backend=backend)
    budgets.check_job(job, pool, backend)
    plan = make_plan(job, pool, base_dir=config_dir, blob_lister=blob_lister(job, backend, pool))
    return run_plan(plan, backend, warn=warn, append=append)


def dry_run(job: JobSpec, *, config_dir: Path) -> tuple[list[str], Iterator[TaskLaunch]]:
    """What ``orch sweep --dry-run`` shows: warnings and the launches, no pool needed (except to
    list the blobs of an ``azure_storage`` file factory, through the pool's backend)."""
    lister = None
    if any(reads_blobs(task) for task in job.tasks) and pool_records.load(job.pool) is not None:
        backend, pool = pool_backend(job.pool, config_dir=config_dir)
        lister = blob_lister(job, backend, pool)
    return preflight(job, base_dir=config_dir, blob_lister=lister), dry_run_launches(job, base_dir=config_dir,
                                                                                     blob_lister=lister)


def blob_lister(job: JobSpec, backend: Backend, pool: PoolSpec) -> BlobLister | None:
    """How the job's ``azure_storage`` file factories list blobs: through the backend's
    ``BlobFiles`` capability (None when no task needs it, or the backend has none)."""
    if not any(reads_blobs(task) for task in job.tasks) or not supports(backend, BlobFiles):
        return None
    files = capability(backend, BlobFiles)
    return lambda container, prefix: files.blob_files(pool, container, prefix)


def run_plan(plan: Plan, backend: Backend, *, warn: Warn | None = None, append: bool = False) -> SubmitReport:
    """Carry out ``plan`` on ``backend`` (see the module docstring)."""
    host = capability(backend, SweepHost) if plan.controller is not None else None
    check_resubmission(plan, backend, append=append)
    for warning in plan.warnings:
        if warn is not None:
            warn(warning)
    launch = replace(plan.job, workdir=snapshot_workdir(plan.spec, plan.base_dir, warn=warn))
    job_index.record(plan.index)
    report = backend.submit(launch, plan.launches())
    if host is not None and plan.controller is not None:
        host.start_sweep(launch, plan.spec, plan.controller)
    return replace(report, controlled=launch.controlled)


def check_resubmission(plan: Plan, backend: Backend, *, append: bool) -> None:
    """``ConflictError`` when the job exists from another spec (see the module docstring)."""
    existing = backend.get_job(plan.job.ref)
    if existing is None or existing.spec_digest in (None, plan.job.spec_digest):
        return
    present = {task.id: task.fingerprint for task in backend.list_tasks(plan.job.ref)}
    changed: list[str] = []
    added = 0
    for launch in plan.launches():
        if launch.id not in present:
            added += 1
        elif present[launch.id] not in (None, launch.fingerprint):
            changed.append(launch.id)
    job_id = plan.job.id
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more" if len(changed) > 10 else "")
        raise ConflictError(f"job {job_id!r} exists with other tasks under the same ids: {shown}",
                            hint=f"give the job a new id, or `orch jobs delete {job_id}` and submit again")
    if added and existing.finished:
        raise ConflictError(f"job {job_id!r} has {existing.state}; this file adds {added} task(s) to it",
                            hint="give the job a new id")
    if added and not append:
        raise ConflictError(f"job {job_id!r} was submitted from another version of this file, which adds "
                            f"{added} task(s) to it", hint="pass --append to add them to the running job, "
                                                           "or give the job a new id")


def snapshot_workdir(job: JobSpec, base_dir: Path, *, warn: Warn | None = None) -> Snapshot | None:
    """The job's workdir, packed (None when the job has none); ``warn`` hears what was left out."""
    if job.workdir is None:
        return None
    snapshot = workdir.snapshot((base_dir / job.workdir).resolve())
    for item in snapshot.left_out if warn is not None else ():
        warn(f"workdir: left out {item}")
    return snapshot
