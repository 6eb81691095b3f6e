"""Submission: run a ``Plan`` on its pool's backend. The one path for jobs and sweeps alike.

Order, so that an interruption at any point converges when the command is run again: every
check first (planning, and the sweep-host capability a controller needs), then the workdir
snapshot, then the job index entry (so the job is routable even if interrupted), then the
backend's ``submit`` (idempotent on task ids), then the sweep controller's start.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from orchestrator import workdir
from orchestrator.backend import Backend, SweepHost, capability
from orchestrator.errors import NotFoundError
from orchestrator.model import Snapshot, SubmitReport
from orchestrator.plan import Plan, make_plan
from orchestrator.pools import pool_backend
from orchestrator.records import job_index, pool_records
from orchestrator.spec.job import JobSpec

Warn = Callable[[str], None]


def submit_job(job: JobSpec, *, config_dir: Path, warn: Warn | None = None,
               backend: Backend | None = None) -> SubmitReport:
    """Plan ``job`` against its pool and submit it (idempotent on job and task ids). ``backend``:
    an instance to use instead of the registry's (see ``pools.pool_backend``)."""
    if pool_records.load(job.pool) is None:
        known = ", ".join(r.id for r in pool_records.all_records()) or "none"
        raise NotFoundError(f"job {job.id!r} names pool {job.pool!r}, which does not exist (known pools: {known})",
                            hint="create it with `orch pool create`, or fix `pool:` in the job file")
    backend, pool = pool_backend(job.pool, config_dir=config_dir, backend=backend)
    return run_plan(make_plan(job, pool, base_dir=config_dir), backend, warn=warn)


def run_plan(plan: Plan, backend: Backend, *, warn: Warn | None = None) -> SubmitReport:
    """Carry out ``plan`` on ``backend`` (see the module docstring)."""
    host = capability(backend, SweepHost) if plan.controller is not None else None
    for warning in plan.warnings:
        if warn is not None:
            warn(warning)
    launch = replace(plan.job, workdir=snapshot_workdir(plan.spec, plan.base_dir))
    job_index.record(plan.index)
    report = backend.submit(launch, plan.launches())
    if host is not None and plan.controller is not None:
        host.start_sweep(launch, plan.spec, plan.controller)
    return replace(report, controlled=launch.controlled)


def snapshot_workdir(job: JobSpec, base_dir: Path) -> Snapshot | None:
    """The job's workdir, packed (None when the job has none)."""
    if job.workdir is None:
        return None
    return workdir.snapshot((base_dir / job.workdir).resolve())
