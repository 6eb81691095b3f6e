"""Job verbs the CLI calls: check a job offline, find a job's pool and backend, list, show, cancel, delete.

A job id is routed through the local job index; a job the index does not know (submitted from
another machine) is looked for on every known pool and then indexed, so the next lookup is direct.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.backend import Backend, SweepHost, capability, load_backend, supports
from orchestrator.errors import NotFoundError
from orchestrator.model import JobInfo, JobRef
from orchestrator.records import job_index, pool_records
from orchestrator.records.job_index import JobEntry

if TYPE_CHECKING:
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.pool import PoolSpec


@dataclass(frozen=True)
class JobHandle:
    """A job and the backend that holds it."""

    backend: Backend
    ref: JobRef

    @property
    def id(self) -> str:
        return self.ref.job_id


def check_offline(job: JobSpec, *, base_dir: Path, pool: PoolSpec | None) -> list[str]:
    """Every check submission runs that needs no backend (``orch validate``), through the functions
    submission calls: sweeps' placeholders and factories (``plan.preflight``; blob listings need the
    backend and are taken as empty), local inputs, budgets' amounts, the workdir's size from
    ``stat`` (and what its snapshot would leave out), and, when ``pool`` is given, that every task
    fits it (``plan.check_fits``). Returns warnings; raises ``OrchError``."""
    from orchestrator import plan, workdir
    from orchestrator.cost import budgets

    budgets.check_amounts(job)
    if pool is not None:
        plan.check_fits(job, pool)
    warnings = plan.preflight(job, base_dir=base_dir, blob_lister=lambda container, prefix: ())
    if any(plan.reads_blobs(task) for task in job.tasks):
        warnings.append("file factories over blob storage (azure_storage) are expanded only at submission")
    plan.check_inputs(job, base_dir)
    root = (base_dir / job.workdir).resolve() if job.workdir is not None else None
    if root is not None and root.is_dir():
        _, left_out = workdir.scan(root, max_bytes=workdir.MAX_BYTES, what=f"workdir {root}")
        warnings += [f"workdir: a snapshot would leave out {item}" for item in left_out]
    return warnings


def locate(job_id: str, *, config_dir: Path | None = None) -> JobHandle:
    """The job's handle; ``NotFoundError`` when no known pool has it."""
    entry = job_index.lookup(job_id)
    if entry is not None and pool_records.load(entry.pool_id) is not None:
        return JobHandle(load_backend(entry.backend, config_dir=config_dir), JobRef(entry.pool_id, job_id))
    for record in pool_records.all_records():
        backend = load_backend(record.backend, config_dir=config_dir)
        ref = JobRef(record.id, job_id)
        if backend.get_job(ref) is not None:
            job_index.record(JobEntry(id=job_id, pool_id=record.id, backend=record.backend))
            return JobHandle(backend, ref)
    raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")


def existing_job(job_id: str, *, config_dir: Path | None = None) -> tuple[JobHandle, JobInfo]:
    """The job's handle and its state; ``NotFoundError`` if there is none."""
    handle = locate(job_id, config_dir=config_dir)
    info = handle.backend.get_job(handle.ref)
    if info is None:
        raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")
    return handle, info


def latest_job_id() -> str:
    """The most recently submitted job from this machine whose pool still exists."""
    for entry in job_index.entries():
        if pool_records.load(entry.pool_id) is not None:
            return entry.id
    raise NotFoundError("no jobs yet", hint="submit one with `orch jobs add FILE`")


def list_jobs(pool_id: str | None = None, *, config_dir: Path | None = None) -> list[JobInfo]:
    """Jobs of every known pool (or of ``pool_id``), oldest first; new ones are indexed."""
    out: list[JobInfo] = []
    for record in pool_records.all_records():
        if pool_id is not None and record.id != pool_id:
            continue
        for info in load_backend(record.backend, config_dir=config_dir).list_jobs(record.id):
            if job_index.lookup(info.id) is None:
                job_index.record(JobEntry(id=info.id, pool_id=record.id, backend=record.backend))
            out.append(info)
    return sorted(out, key=lambda job: job.created_at)


def cancel_job(handle: JobHandle) -> None:
    handle.backend.cancel_job(handle.ref)


def delete_job(handle: JobHandle) -> None:
    """Delete the job on its backend and forget it here."""
    handle.backend.delete_job(handle.ref)
    job_index.forget(handle.id)


def sweep_state(handle: JobHandle) -> dict[str, Any] | None:
    """The job's sweep controller summary, or None when none runs (or the backend hosts none)."""
    if not supports(handle.backend, SweepHost):
        return None
    return capability(handle.backend, SweepHost).sweep_state(handle.ref)
