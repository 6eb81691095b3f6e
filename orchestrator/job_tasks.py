"""Turn a job spec into the stream of ``TaskLaunch`` a backend receives.

Job-level defaults (env, retries, wall time) are merged into each task here, once, so backends
see final values. Tasks are yielded lazily: a task that expands into a sweep streams its trials.
"""
from __future__ import annotations

from typing import Iterator

from orchestrator.model import DistributedLaunch, Resources, TaskLaunch
from orchestrator.spec import JobSpec, TaskSpec


def launches(job: JobSpec, *, pool_env: dict[str, str] | None = None,
             gpus_per_node: int = 0, pool_nodes: int = 1) -> Iterator[TaskLaunch]:
    """Every task of ``job`` with defaults applied, in spec order."""
    for task_id, task in zip(job.task_ids(), job.tasks):
        yield launch_for(job, task, task_id, pool_env=pool_env or {}, gpus_per_node=gpus_per_node,
                         pool_nodes=pool_nodes)


def launch_for(job: JobSpec, task: TaskSpec, task_id: str, *, pool_env: dict[str, str],
               gpus_per_node: int, pool_nodes: int) -> TaskLaunch:
    command = task.command if isinstance(task.command, str) else tuple(task.command)
    return TaskLaunch(
        id=task_id,
        command=command,
        env={**pool_env, **job.env, **task.env},
        resources=Resources(cpus=task.resources.cpus, gpus=task.resources.gpus),
        max_retries=task.max_retries if task.max_retries is not None else job.max_retries,
        max_wall_time=task.max_wall_time if task.max_wall_time is not None else job.max_wall_time,
        depends_on=tuple(task.depends_on),
        output_files=tuple(task.output_files),
        distributed=_distributed(task, gpus_per_node, pool_nodes),
    )


def _distributed(task: TaskSpec, gpus_per_node: int, pool_nodes: int) -> DistributedLaunch | None:
    spec = task.distributed
    if spec is None:
        return None
    nodes = pool_nodes if spec.nodes == "pool" else int(spec.nodes)
    procs = spec.processes_per_node or (gpus_per_node or 1)
    mpi = spec.mpi
    return DistributedLaunch(launcher=spec.launcher, nodes=nodes, processes_per_node=procs,
                             mpi_runtime=mpi.runtime if mpi else "openmpi",
                             mpi_options=tuple(mpi.options) if mpi else ())
