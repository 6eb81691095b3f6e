"""Turn a job spec into the stream of ``TaskLaunch`` a backend receives.

Job-level defaults (env, retries, wall time) are merged into each task here, once, so backends
see final values. Tasks are yielded lazily: a task that expands into a sweep streams its trials.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from orchestrator.sweep import expand as sweep, substitute
from orchestrator.launch.plans import DistributedSpec as LaunchSpec
from orchestrator.model import Resources, TaskLaunch
from orchestrator.spec import JobSpec, TaskSpec
from orchestrator.sweep.trial import Trial, trial_task_id


def launches(job: JobSpec, *, pool_env: dict[str, str] | None = None, gpus_per_node: int = 0,
             pool_nodes: int = 1, base_dir: Path | None = None) -> Iterator[TaskLaunch]:
    """Every task of ``job`` with defaults applied, in spec order; sweep tasks stream their trials."""
    for index, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks)):
        if not task.is_sweep():
            yield launch_for(job, task, task_id, pool_env=pool_env or {}, gpus_per_node=gpus_per_node,
                             pool_nodes=pool_nodes)
            continue
        for trial in sweep.expand(task, key_path=f"tasks[{index}]", base_dir=base_dir):
            yield launch_for(job, task, trial_task_id(task_id, trial.index), pool_env=pool_env or {},
                             gpus_per_node=gpus_per_node, pool_nodes=pool_nodes, trial=trial,
                             key_path=f"tasks[{index}].command")


def job_concurrency(job: JobSpec) -> int | None:
    """The job's cap on tasks in flight: the smallest ``limits.max_concurrent_trials`` of its sweeps."""
    caps = [t.limits.max_concurrent_trials for t in job.tasks if t.limits and t.limits.max_concurrent_trials]
    return min(caps) if caps else None


def launch_for(job: JobSpec, task: TaskSpec, task_id: str, *, pool_env: dict[str, str],
               gpus_per_node: int, pool_nodes: int, trial: Trial | None = None, key_path: str = "") -> TaskLaunch:
    params = dict(trial.params) if trial else {}
    command = substitute.render(task.command, params, key_path=key_path) if trial else task.command
    return TaskLaunch(
        id=task_id,
        command=command if isinstance(command, str) else tuple(command),
        env={**pool_env, **job.env, **task.env, **substitute.param_env(params)},
        params=params,
        resources=Resources(cpus=task.resources.cpus, gpus=task.resources.gpus),
        max_retries=task.max_retries if task.max_retries is not None else job.max_retries,
        max_wall_time=_wall_time(job, task),
        depends_on=tuple(task.depends_on),
        output_files=tuple(task.output_files),
        distributed=_distributed(task, gpus_per_node, pool_nodes),
    )


def _wall_time(job: JobSpec, task: TaskSpec) -> float | None:
    if task.max_wall_time is not None:
        return task.max_wall_time
    if task.limits and task.limits.trial_timeout:
        return task.limits.trial_timeout
    return job.max_wall_time


def _distributed(task: TaskSpec, gpus_per_node: int, pool_nodes: int) -> LaunchSpec | None:
    """The launch spec with ``nodes`` and ``processes_per_node`` resolved against the pool."""
    spec = task.distributed
    if spec is None:
        return None
    nodes = pool_nodes if spec.nodes == "pool" else int(spec.nodes)
    procs = spec.processes_per_node or (gpus_per_node or 1)
    mpi = spec.mpi
    return LaunchSpec(launcher=spec.launcher, nodes=nodes, processes_per_node=procs,
                      mpi_runtime=mpi.runtime if mpi else None, mpi_options=tuple(mpi.options) if mpi else ())
