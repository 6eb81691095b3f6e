"""Submit a sweep job: the trials known up front go to the backend, adaptive sweeps get a controller.

Non-adaptive sweeps (grid, random, sobol, factories; no early termination, no sweep timeout) are
submitted like any job: every trial, sealed. A job with an adaptive sweep (see
``adaptive_sweep.is_adaptive``) is created unsealed with every trial known up front (all but the
Bayesian ones), then the backend starts its in-cluster controller (``Backend.start_sweep``),
which adds Bayesian trials, applies early termination and the timeout, and seals the job.
Both paths are idempotent on task ids, so re-running after Ctrl-C submits only what is missing.

Everything that can be checked is checked before the first backend call: placeholders (by
rendering each sweep's first trial) and factories without a known count (file and custom
factories are expanded once in full), so a failing generator submits nothing. Errors found
while expanding get the spec file's line and column.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from orchestrator.records import job_index
from orchestrator.sweep import expand as sweep, substitute
from orchestrator.sweep.adaptive import is_adaptive
from orchestrator.sweep.bayes import BayesianSearch
from orchestrator.errors import SpecError
from orchestrator.task_launch import launch_for
from orchestrator.model import SubmitReport, TaskLaunch
from orchestrator.spec import JobSpec, TaskSpec
from orchestrator.spec.yaml_source import read_yaml
from orchestrator.submit import check_fits, resolve_pool, snapshot_workdir
from orchestrator.sweep.trial import Trial, trial_task_id

_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def job_is_adaptive(job: JobSpec) -> bool:
    return any(is_adaptive(task) for task in job.tasks)


def planned_trials(job: JobSpec) -> int:
    """Tasks the job will have: each sweep's trial count (Bayesian: ``max_total_trials``), 1 per plain task."""
    return sum(sweep.count(task) or 0 for task in job.tasks)


def first_proposals(task: TaskSpec, count: int) -> list[Trial]:
    """The Bayesian trials a fresh controller asks first (before any result), in order."""
    assert task.search_space is not None and task.objective is not None
    search = BayesianSearch(task.search_space, task.objective, seed=task.effective_seed())
    return [search.ask() for _ in range(count)]


def static_launches(job: JobSpec, *, gpus_per_node: int = 0, pool_nodes: int = 1,
                    base_dir: Path | None = None) -> Iterator[TaskLaunch]:
    """Every task known up front, in spec order, streamed: sweeps their trials, Bayesian ones none."""
    for index, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks)):
        if task.is_sweep() and task.sampling == "bayesian":
            continue
        trials = sweep.expand(task, key_path=f"tasks[{index}]", base_dir=base_dir) if task.is_sweep() else [None]
        for trial in trials:
            yield launch_for(job, task, trial_task_id(task_id, trial.index) if trial else task_id, pool_env={},
                             gpus_per_node=gpus_per_node, pool_nodes=pool_nodes, trial=trial,
                             key_path=f"tasks[{index}].command")


def dry_run_launches(job: JobSpec, *, base_dir: Path | None = None) -> Iterator[TaskLaunch]:
    """What ``--dry-run`` shows: the static launches, then each Bayesian sweep's first proposals
    (as many as run at once; later ones depend on results)."""
    yield from static_launches(job, base_dir=base_dir)
    for index, (task_id, task) in enumerate(zip(job.task_ids(), job.tasks)):
        if task.is_sweep() and task.sampling == "bayesian":
            limits = task.limits
            first = min(limits.max_total_trials or 1, limits.max_concurrent_trials or 1) if limits else 1
            for trial in first_proposals(task, first):
                yield launch_for(job, task, trial_task_id(task_id, trial.index), pool_env={}, gpus_per_node=0,
                                 pool_nodes=1, trial=trial, key_path=f"tasks[{index}].command")


def preflight(job: JobSpec, *, base_dir: Path | None = None) -> list[str]:
    """Check every sweep before submitting (see the module docstring); returns warnings."""
    warnings: list[str] = []
    for index, task in enumerate(job.tasks):
        if not task.is_sweep():
            continue
        where = f"tasks[{index}]"
        if task.sampling == "bayesian":
            first: Trial | None = first_proposals(task, 1)[0]
        else:
            first = next(iter(sweep.expand(task, key_path=where, base_dir=base_dir, limit=1)), None)
            if sweep.count(task) is None:
                for _ in sweep.expand(task, key_path=where, base_dir=base_dir):
                    pass
        if first is not None:
            warnings += substitute.check([task.command], first.params, key_path=f"{where}.command")
            launch_for(job, task, "preflight", pool_env={}, gpus_per_node=0, pool_nodes=1, trial=first,
                       key_path=f"{where}.command")
    return warnings


def submit_sweep(job: JobSpec, config_dir: Path, *, warn: Callable[[str], None] | None = None) -> SubmitReport:
    """Check, submit the static trials and start the controller when needed (see the module docstring)."""
    backend, pool = resolve_pool(job, config_dir)
    check_fits(job, pool)
    for warning in preflight(job, base_dir=config_dir):
        if warn:
            warn(warning)
    objective = next((task.objective for task in job.tasks if task.objective), None)
    job_index.record(job.id, job.pool, backend.name, kind="sweep", trials=planned_trials(job),
                     objective=objective.model_dump() if objective else None)
    snap = snapshot_workdir(job, config_dir)
    adaptive = job_is_adaptive(job)
    created = job.model_copy(update={"auto_complete": False}) if adaptive else job
    launches = static_launches(job, gpus_per_node=pool.gpus_per_node, pool_nodes=pool.nodes.total, base_dir=config_dir)
    report = backend.submit(created, launches, workdir=snap)
    if adaptive:
        backend.start_sweep(job)
    return report


def with_place(error: SpecError, spec_file: Path) -> SpecError:
    """``error`` with the spec file's line and column for its key path, when it has none yet."""
    where = error.where
    if where is None or where.file is not None or not where.key_path:
        return error
    try:
        source = read_yaml(spec_file)
    except SpecError:
        return error
    path = tuple(int(index) if index else name for name, index in _KEY_PART.findall(where.key_path))
    return SpecError(error.message, hint=error.hint, where=source.where(path))
