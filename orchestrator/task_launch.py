"""One task of a job spec (or one trial of a sweep task) as the ``TaskLaunch`` a backend receives.

Job-level defaults (env, retries, wall time) are merged into the task here, once, so backends
see final values; a trial's parameters are substituted into the command (shell-quoted) and
exported as ``ORCH_PARAM_<NAME>``; a distributed task's node and process counts are resolved
against the pool. Pure: no I/O.
"""
from __future__ import annotations

from orchestrator.launch.plans import resolve_num_nodes, resolve_procs_per_node
from orchestrator.model import Resources, TaskLaunch
from orchestrator.spec.job import DistributedSpec, JobSpec, TaskSpec
from orchestrator.sweep import substitute
from orchestrator.sweep.trial import Trial


def launch_for(job: JobSpec, task: TaskSpec, task_id: str, *, gpus_per_node: int, pool_nodes: int | None,
               trial: Trial | None = None, key_path: str = "") -> TaskLaunch:
    """``task`` of ``job`` as task ``task_id``; with ``trial``, that trial of the sweep task.
    ``key_path`` (``tasks[2].command``) places placeholder errors in the spec. ``pool_nodes``
    None (no pool yet, as in a dry run) leaves a distributed task's counts as the spec gives them."""
    params = dict(trial.params) if trial else {}
    command = substitute.render(task.command, params, key_path=key_path) if trial else task.command
    return TaskLaunch(
        id=task_id,
        command=command if isinstance(command, str) else tuple(command),
        env={**job.env, **task.env, **substitute.param_env(params)},
        params=params,
        resources=Resources(cpus=task.resources.cpus, gpus=task.resources.gpus),
        max_retries=task.max_retries if task.max_retries is not None else job.max_retries,
        max_wall_time=_wall_time(job, task),
        depends_on=tuple(task.depends_on),
        output_files=tuple(task.output_files),
        distributed=_resolved(task.distributed, gpus_per_node, pool_nodes),
        inputs=trial.inputs if trial else (),
    )


def _wall_time(job: JobSpec, task: TaskSpec) -> float | None:
    if task.max_wall_time is not None:
        return task.max_wall_time
    if task.limits and task.limits.trial_timeout:
        return task.limits.trial_timeout
    return job.max_wall_time


def _resolved(spec: DistributedSpec | None, gpus_per_node: int, pool_nodes: int | None) -> DistributedSpec | None:
    """The launch spec with ``nodes`` and ``processes_per_node`` resolved against the pool."""
    if spec is None or pool_nodes is None:
        return spec
    return spec.model_copy(update={"nodes": resolve_num_nodes(spec, pool_nodes),
                                   "processes_per_node": resolve_procs_per_node(spec, gpus_per_node)})
