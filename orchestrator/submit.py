"""Submit a job spec: check it against its pool, snapshot the workdir, stream tasks to the backend.

Everything is validated before the first backend call that creates anything.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from orchestrator import workdir
from orchestrator.records import job_index, pool_records
from orchestrator.backend import Backend, load_backend
from orchestrator.errors import CapacityError, NotFoundError, SpecError
from orchestrator.task_launch import launches
from orchestrator.model import SubmitReport
from orchestrator.spec import JobSpec, PoolSpec


def resolve_pool(job: JobSpec, config_dir: Path | None = None) -> tuple[Backend, PoolSpec]:
    record = pool_records.load(job.pool)
    if record is None:
        known = ", ".join(r.id for r in pool_records.all_records()) or "none"
        raise NotFoundError(f"job {job.id!r} names pool {job.pool!r}, which does not exist (known pools: {known})",
                            hint="create it with `orch pool create`, or fix `pool:` in the job file")
    return load_backend(record.backend, config_dir=config_dir), PoolSpec.model_validate(record.spec)


def check_fits(job: JobSpec, pool: PoolSpec) -> None:
    """Every task must fit on one node of the pool (and distributed tasks on enough nodes)."""
    for index, task in enumerate(job.tasks):
        where = f"tasks[{index}]"
        if task.resources.cpus > pool.cpus_per_node:
            raise CapacityError(f"{where} needs {task.resources.cpus:g} CPUs but pool {pool.id!r} nodes have "
                                f"{pool.cpus_per_node:g}", hint="lower resources.cpus or use a bigger pool")
        if task.resources.gpus > pool.gpus_per_node:
            raise CapacityError(f"{where} needs {task.resources.gpus:g} GPUs but pool {pool.id!r} nodes have "
                                f"{pool.gpus_per_node}", hint="lower resources.gpus or use a GPU pool")
        dist = task.distributed
        if dist is not None and dist.launcher == "mpi" and pool.backend == "ray":
            raise SpecError(f"{where}.distributed: launcher mpi starts ranks over ssh, which Ray pools do not have",
                            hint="on Ray use launcher horovod or torchrun (no ssh needed); mpi runs on Azure Batch pools")
        if dist is not None and dist.nodes != "pool" and int(dist.nodes) > pool.nodes.total:
            raise CapacityError(f"{where}.distributed asks {dist.nodes} nodes but pool {pool.id!r} has "
                                f"{pool.nodes.total}", hint="lower distributed.nodes, use nodes: pool, or resize")


def snapshot_workdir(job: JobSpec, config_dir: Path) -> tuple[str, bytes] | None:
    if job.workdir is None:
        return None
    return workdir.snapshot((config_dir / job.workdir).resolve())


def submit_job(job: JobSpec, config_dir: Path, *, warn: Callable[[str], None] | None = None) -> SubmitReport:
    """Validate against the pool, then submit every task. Idempotent on job and task ids.

    A job with sweep tasks goes through ``sweep_submit.submit_sweep`` (checks every sweep first;
    adaptive sweeps get their controller), so ``orch jobs add`` and ``orch sweep`` agree.
    """
    if any(task.is_sweep() for task in job.tasks):
        from orchestrator.sweep_submit import submit_sweep

        return submit_sweep(job, config_dir, warn=warn)
    backend, pool = resolve_pool(job, config_dir)
    check_fits(job, pool)
    snap = snapshot_workdir(job, config_dir)
    tasks = launches(job, gpus_per_node=pool.gpus_per_node, pool_nodes=pool.nodes.total, base_dir=config_dir)
    report = backend.submit(job, tasks, workdir=snap)
    job_index.record(job.id, job.pool, backend.name)
    return report
