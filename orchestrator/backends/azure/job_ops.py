"""Batch jobs: create before tasks (``noaction`` on all tasks complete), seal after every task
is in (``terminatejob``), and read jobs and tasks back as orch's ``JobInfo``/``TaskInfo``.

Task states map as: active → pending (cancelled in a cancelled job, stopped in a job its manager
ended for a budget); preparing, running → running; completed → succeeded (result success),
stopped (stopped early through ``stop_tasks``, or by the job's manager at a budget: the budget is
its error), cancelled (killed by a cancel), else failed with its exit code or failure.
Ended attempts (retried, requeued by a preemption, the last one) come from ``task_attempts``.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from azure.batch import models as m
from orchestrator.backends.azure import naming
from orchestrator.backends.azure.batch_client import BatchApi, text
from orchestrator.backends.azure.budgets import BudgetState
from orchestrator.backends.azure.retries import redact
from orchestrator.backends.azure.task_attempts import task_attempts
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.model import JobInfo, TaskInfo, TaskState
from orchestrator.records.pool_records import pool_state_dir

TASK_FIELDS = ["id", "displayName", "state", "executionInfo", "nodeInfo", "creationTime", "dependsOn"]


def get(api: BatchApi, job_id: str) -> Any | None:
    return api.get_or_none(f"reading job {job_id!r}", api.client.get_job, job_id)


def ensure(api: BatchApi, job_id: str, pool_id: str, *, uses_dependencies: bool, lifetime: float,
           max_parallel: int | None = None, manager: m.BatchJobManagerTask | None = None,
           spec_digest: str | None = None, sweep: bool | None = None, budget: bool = False) -> tuple[Any, bool]:
    """The Batch job (created now if new, open for tasks) and whether it was created now.

    ``lifetime`` bounds the job's wall-clock time (and so the SAS URLs its tasks get);
    ``max_parallel`` caps its tasks in flight (a sweep's ``max_concurrent_trials``); it needs a
    Batch account feature (a default account answers 403), so it is sent only when given;
    ``manager`` is the job's manager task (only given at creation), which runs its sweep
    controller (``sweep``; by default: when there is a manager) and keeps its budgets (``budget``).
    """
    existing = get(api, job_id)
    if existing is None:
        parallel = {"max_parallel_tasks": max_parallel} if max_parallel is not None else {}
        sweep = manager is not None if sweep is None else sweep
        options = m.BatchJobCreateOptions(
            id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), uses_task_dependencies=uses_dependencies,
            **parallel, all_tasks_complete_mode="noaction", constraints=m.BatchJobConstraints(
                max_wall_clock_time=timedelta(seconds=lifetime)), job_manager_task=manager,
            metadata=[m.BatchMetadataItem(name=naming.METADATA_MARK, value="1")]
            + ([m.BatchMetadataItem(name=naming.METADATA_SWEEP, value="1")] if sweep else [])
            + ([m.BatchMetadataItem(name=naming.METADATA_BUDGET, value="1")] if budget else [])
            + ([m.BatchMetadataItem(name=naming.METADATA_SPEC_DIGEST, value=spec_digest)] if spec_digest else []))
        try:
            api.call(f"creating job {job_id!r}", api.client.create_job, options)
            created = True
        except ConflictError:
            created = False  # a retried create, or a job deleted just now: read what is there
        job = get(api, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} vanished right after it was created", hint="submit again")
        return job, created
    if existing.pool_info is None or existing.pool_info.pool_id != pool_id:
        pool = existing.pool_info.pool_id if existing.pool_info else "?"
        raise ConflictError(f"job {job_id!r} exists on pool {pool!r}, not {pool_id!r}",
                            hint="use another job id, or `orch jobs delete` the old job")
    if uses_dependencies and not existing.uses_task_dependencies:
        raise ConflictError(f"job {job_id!r} was created without task dependencies",
                            hint="`orch jobs delete` it and submit again")
    return existing, False


def existing_task_ids(api: BatchApi, job_id: str) -> set[str]:
    tasks = api.listed(f"listing tasks of {job_id!r}", api.client.list_tasks, job_id, select=["id"])
    return {task.id for task in tasks} - {naming.SWEEP_MANAGER_ID}


def seal(api: BatchApi, job_id: str) -> None:
    """Let the job complete once all its tasks have: only call after every task is in."""
    update = m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob")
    api.call(f"sealing job {job_id!r}", api.client.update_job, job_id, update)


def list_raw_tasks(api: BatchApi, job_id: str) -> list[Any]:
    """The job's tasks, its sweep manager task left out."""
    tasks = api.listed(f"listing tasks of {job_id!r}", api.client.list_tasks, job_id, select=TASK_FIELDS)
    return [task for task in tasks if task.id != naming.SWEEP_MANAGER_ID]


def spec_digest(job: Any) -> str | None:
    return next((item.value for item in job.metadata or [] if item.name == naming.METADATA_SPEC_DIGEST), None)


def record_spec_digest(api: BatchApi, job: Any, digest: str) -> None:
    """Keep ``digest`` as the spec the job was last submitted from (metadata is replaced whole)."""
    items = [item for item in job.metadata or [] if item.name != naming.METADATA_SPEC_DIGEST]
    items.append(m.BatchMetadataItem(name=naming.METADATA_SPEC_DIGEST, value=digest))
    api.call(f"updating job {job.id!r}", api.client.update_job, job.id, m.BatchJobUpdateOptions(metadata=items))


def has_sweep_manager(job: Any) -> bool:
    return any(item.name == naming.METADATA_SWEEP for item in job.metadata or [])


def keeps_budgets(job: Any) -> bool:
    return any(item.name == naming.METADATA_BUDGET for item in job.metadata or [])


def ended_for_budget(job: Any) -> bool:
    info = job.execution_info
    return text(job.state) in ("completed", "terminating") and info is not None and (
        info.termination_reason == naming.BUDGET_REASON)


def cancelled(job: Any) -> bool:
    info = job.execution_info
    return text(job.state) in ("completed", "terminating") and info is not None and (
        info.termination_reason == naming.CANCEL_REASON)


def job_state(job: Any) -> str:
    if cancelled(job) or text(job.state) == "deleting":
        return "cancelled"
    return "completed" if text(job.state) == "completed" else "active"


def task_infos(tasks: list[Any], job_id: str, *, job_cancelled: bool, stopped: set[str],
               budget: BudgetState | None = None, budget_ended: bool = False) -> list[TaskInfo]:
    """The job's tasks as orch reports them; tasks blocked behind a failed dependency are failed.
    ``budget``: what the job's manager stopped for a budget; ``budget_ended``: it ended the job."""
    infos = [task_info(task, job_id, job_cancelled=job_cancelled, stopped=stopped) for task in tasks]
    if budget is not None or budget_ended:
        infos = [_budget_stop(info, task, budget or BudgetState(), budget_ended) for info, task in zip(infos, tasks)]
    blocked = blocked_by_failure(tasks, {info.id: info.state for info in infos})
    return [replace(info, state=TaskState.FAILED, error=f"dependency {blocked[info.id]!r} did not succeed")
            if info.id in blocked and info.state == TaskState.PENDING else info for info in infos]


def blocked_by_failure(tasks: list[Any], states: dict[str, TaskState]) -> dict[str, str]:
    """Active tasks that can never run because a task they depend on (or one that one waits for)
    ended without succeeding; Batch keeps them blocked. Task id -> the dependency that failed."""
    blocked: dict[str, str] = {}
    changed = True
    while changed:
        changed = False
        for task in tasks:
            if task.id in blocked or text(task.state) != "active" or task.depends_on is None:
                continue
            for dependency in task.depends_on.task_ids or []:
                state = states.get(dependency)
                if dependency in blocked or (state is not None and state.is_terminal()
                                             and state != TaskState.SUCCEEDED):
                    blocked[task.id] = dependency
                    changed = True
                    break
    return blocked


def _budget_stop(info: TaskInfo, task: Any, budget: BudgetState, ended: bool) -> TaskInfo:
    """``info`` as stopped for a budget, when the manager stopped it (or ended its job) before it succeeded."""
    if info.state in (TaskState.SUCCEEDED, TaskState.RUNNING):
        return info
    reason = budget.stopped.get(info.id)
    if reason is None and ended:
        failure = task.execution_info.failure_info if task.execution_info is not None else None
        never_ran = text(task.state) == "active"
        if never_ran or (failure is not None and failure.code == "TaskEnded"):
            reason = budget.job_reason or "budget: the job's budget was reached"
    if reason is None:
        return info
    return replace(info, state=TaskState.STOPPED, error=reason)


def ended_state(task: Any) -> TaskState:
    """A raw Batch task as far as dependencies go: succeeded, failed, or not ended (pending)."""
    if text(task.state) != "completed":
        return TaskState.PENDING
    info = task.execution_info
    return TaskState.SUCCEEDED if info is not None and text(info.result) == "success" else TaskState.FAILED


def settled(job: Any, tasks: list[TaskInfo]) -> bool:
    """A sealed job whose tasks have all ended, some blocked behind failed dependencies: Batch
    never completes it by itself (blocked tasks stay active), so orch ends it."""
    return (text(job.state) == "active" and text(job.all_tasks_complete_mode) == "terminatejob"
            and bool(tasks) and all(task.state.is_terminal() for task in tasks))


def task_info(task: Any, job_id: str, *, job_cancelled: bool, stopped: set[str]) -> TaskInfo:
    info = task.execution_info
    state = _task_state(task, job_cancelled=job_cancelled, stopped=stopped)
    failure = info.failure_info if info is not None else None
    error = None
    if failure is not None and state not in (TaskState.SUCCEEDED, TaskState.STOPPED):
        error = redact(f"{failure.code}: {failure.message}" if failure.message else str(failure.code))
    node = task.node_info.node_id if task.node_info is not None else None
    return TaskInfo(id=task.id, job_id=job_id, state=state, exit_code=info.exit_code if info else None,
                    node_id=node, started_at=_seconds(info.start_time if info else None),
                    ended_at=_seconds(info.end_time if info else None),
                    retries=(info.retry_count or 0) if info else 0, error=error, fingerprint=task.display_name,
                    attempts=task_attempts(task, state, node_id=node, error=error))


def _task_state(task: Any, *, job_cancelled: bool, stopped: set[str]) -> TaskState:
    state = text(task.state)
    if state == "active":
        return TaskState.CANCELLED if job_cancelled else TaskState.PENDING
    if state in ("preparing", "running"):
        return TaskState.RUNNING
    info = task.execution_info
    if info is not None and text(info.result) == "success":
        return TaskState.SUCCEEDED  # it finished before a stop reached it: nothing was cut short
    if task.id in stopped:
        return TaskState.STOPPED
    failure = info.failure_info if info is not None else None
    if job_cancelled and failure is not None and failure.code == "TaskEnded":
        return TaskState.CANCELLED
    return TaskState.FAILED


def job_info(job: Any, tasks: list[TaskInfo]) -> JobInfo:
    counts = Counter(task.state.value for task in tasks)
    info = job.execution_info
    return JobInfo(id=job.id, pool_id=job.pool_info.pool_id if job.pool_info else "", state=job_state(job),
                   created_at=_seconds(job.creation_time) or 0.0, task_counts=dict(counts),
                   ended_at=_seconds(info.end_time) if info is not None else None, spec_digest=spec_digest(job))


def _seconds(when: datetime | None) -> float | None:
    return when.timestamp() if when is not None else None


# -- tasks stopped early (sweeps): kept on this machine, next to the pool's other state ---------------
def _stopped_file(pool_id: str, job_id: str) -> Any:
    return pool_state_dir(pool_id) / "stopped" / f"{job_id}.json"


def stopped_ids(pool_id: str, job_id: str) -> set[str]:
    try:
        return set(json.loads(_stopped_file(pool_id, job_id).read_text()))
    except (FileNotFoundError, ValueError):
        return set()


def remember_stopped(pool_id: str, job_id: str, task_ids: list[str]) -> None:
    path = _stopped_file(pool_id, job_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(sorted(stopped_ids(pool_id, job_id) | set(task_ids))))
    tmp.replace(path)


def forget_stopped(pool_id: str, job_id: str) -> None:
    _stopped_file(pool_id, job_id).unlink(missing_ok=True)
