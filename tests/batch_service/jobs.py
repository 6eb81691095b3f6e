"""Jobs and their tasks: create, update, terminate, delete jobs; add and terminate tasks.

Terminating kills a job's running tasks (they complete with ``TaskEnded``), leaves active ones
unscheduled, and completes the job once nothing runs; ``terminateReason`` is ``UserTerminate``
(or the request's), ``AllTasksComplete``, ``JMComplete`` or ``MaxWallClockTimeExpiry``. A deleted
job and its task directories go ``deletion_delay_s`` after its tasks stopped. A task collection
answers per task: ``success``, or ``clienterror`` with the Batch error (``TaskExists`` too for
an id an earlier attempt of the same request added); over ``max_tasks_per_collection`` tasks, or
two tasks whose ids differ only by case, fail the whole request.

Container settings must match the job's pool: a task (or job manager task) on a pool with a
container configuration must have ``containerSettings`` and one on a pool without must not
(checked when the pool exists; else when the task is scheduled). A job update may not turn
``onAllTasksComplete`` from ``terminatejob`` back to ``noaction``, nor move an enabled job to
another pool.
"""
from __future__ import annotations

import shutil
import time
from typing import Any

from .entities import TASK_ENDED, JobRecord, PoolRecord, TaskRecord
from .errors import BatchApiError, invalid_property
from .schema import check
from .shapes import TASK_COLLECTION
from .specs import validate_job_spec, validate_job_update, validate_task_spec
from .state import BatchState
from .timekeeping import UNLIMITED_DURATION, format_timestamp, parse_duration, utc_now

JOB_UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo",
                 "onAllTasksComplete", "onTaskFailure", "metadata", "networkConfiguration")


def check_job_accepts_changes(job: JobRecord) -> None:
    """409 when the job's state forbids updates and new tasks."""
    errors = {"completed": "JobCompleted", "terminating": "JobBeingTerminated", "deleting": "JobBeingDeleted"}
    if job.state in errors:
        raise BatchApiError(errors[job.state], values=[("JobId", job.id)])


class JobEngine:
    """Operations on jobs and tasks; public methods take the state lock themselves unless noted."""

    def __init__(self, state: BatchState) -> None:
        self.state = state

    def create_job(self, spec: dict[str, Any]) -> JobRecord:
        """Add a job (and its job manager task); 409 JobExists / JobBeingDeleted, 400 for a bad body."""
        validate_job_spec(spec, self.state.settings.account_features)
        with self.state.lock:
            existing = self.state.jobs.get(spec["id"].lower())
            if existing is not None:
                code = "JobBeingDeleted" if existing.state == "deleting" else "JobExists"
                raise BatchApiError(code, values=[("JobId", spec["id"])])
            job = JobRecord(spec["id"], dict(spec))
            manager = spec.get("jobManagerTask")
            if manager:
                check_container_settings(self.state.pools.get(job.pool_id.lower()), manager, "jobManagerTask.")
                job.tasks[manager["id"].lower()] = TaskRecord(job.id, manager["id"], dict(manager), is_job_manager=True)
            self.state.jobs[job.id.lower()] = job
            self.state.wake()
            return job

    def update_job(self, job_id: str, body: dict[str, Any]) -> JobRecord:
        """PATCH: replace the updatable properties the body gives; 409 for a finished job."""
        validate_job_update(body, self.state.settings.account_features)
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            if body.get("poolInfo") is not None:
                raise BatchApiError("OperationInvalidForCurrentState", "A job moves to another pool only while "
                                    "disabled.", values=[("JobId", job.id)])
            if job.on_all_tasks_complete == "terminatejob" and str(body.get("onAllTasksComplete") or "").lower() \
                    == "noaction":
                raise invalid_property("onAllTasksComplete", "Automatic job termination cannot be turned off.")
            job.spec.update({key: body[key] for key in JOB_UPDATABLE if key in body})
            job.revision.touch()
            self.state.wake()
            return job

    def terminate_job(self, job_id: str, reason: str | None) -> JobRecord:
        """User termination (``UserTerminate`` unless a reason is given); 409 for a finished job."""
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            self.terminate(job, reason or "UserTerminate")
            return job

    def delete_job(self, job_id: str) -> None:
        """Start deleting a job: state ``deleting``, all its tasks killed; 409 when already deleting."""
        with self.state.lock:
            job = self.state.job(job_id)
            if job.state == "deleting":
                raise BatchApiError("JobBeingDeleted", values=[("JobId", job.id)])
            job.move("deleting")
            job.deleting_since = time.monotonic()
            for task in job.running_tasks():
                if task.handle:
                    task.handle.cancel("delete")
            self.state.wake()

    def add_task(self, job_id: str, spec: dict[str, Any]) -> TaskRecord:
        """Add one task; 404 JobNotFound, 409 TaskExists/JobCompleted, 400 for a bad body."""
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            task = self._insert(job, spec)
            self.state.wake()
            return task

    def add_collection(self, job_id: str, body: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
        """Add the ``addtaskcollection`` body's tasks; one result per task (``success`` or ``clienterror``).
        400 when ``value`` is missing or too long, 409 for a finished job."""
        check(body, TASK_COLLECTION, ())
        tasks = body["value"]
        limit = self.state.settings.max_tasks_per_collection
        if len(tasks) > limit:
            raise invalid_property("value", f"A task collection may contain at most {limit} tasks; got {len(tasks)}.")
        _check_distinct_ids(tasks)
        results: list[dict[str, Any]] = []
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            for spec in tasks:
                try:
                    task = self._insert(job, spec)
                except BatchApiError as exc:
                    task_id = str(spec.get("id") or "") if isinstance(spec, dict) else ""
                    results.append({"status": "clienterror", "taskId": task_id, "error": exc.error_json(request_id)})
                    continue
                results.append({"status": "success", "taskId": task.id, "eTag": task.revision.etag,
                                "lastModified": task.revision.json_fields()["lastModified"],
                                "location": task.url(self.state.base_url)})
            self.state.wake()
        return results

    def _insert(self, job: JobRecord, spec: Any) -> TaskRecord:
        if not isinstance(spec, dict):
            raise invalid_property("value", "Each task must be an object.")
        validate_task_spec(spec, uses_dependencies=bool(job.spec.get("usesTaskDependencies", False)),
                           features=self.state.settings.account_features)
        check_container_settings(self.state.pools.get(job.pool_id.lower()), spec, "")
        if spec["id"].lower() in job.tasks:
            raise BatchApiError("TaskExists", values=[("TaskId", spec["id"])])
        task = job.tasks[spec["id"].lower()] = TaskRecord(job.id, spec["id"], dict(spec))
        return task

    def terminate_task(self, job_id: str, task_id: str) -> TaskRecord:
        """End a task: an active one completes at once, a running one is killed; 409 TaskCompleted."""
        with self.state.lock:
            job = self.state.job(job_id)
            task = self.state.task(job_id, task_id)
            if task.state == "completed":
                raise BatchApiError("TaskCompleted", values=[("TaskId", task.id)])
            if task.handle is not None:
                task.handle.cancel("terminate")
                return task
            task.execution.update(endTime=format_timestamp(utc_now()), result="failure", failureInfo=dict(TASK_ENDED))
            task.move("completed")
            self.on_task_finished(job, task)
            self.state.wake()
            return task

    def terminate(self, job: JobRecord, reason: str) -> None:
        """Move ``job`` to ``terminating`` and kill its running tasks; lock held."""
        job.terminate_reason = reason
        job.move("terminating")
        for task in job.running_tasks():
            if task.handle:
                task.handle.cancel("terminate")
        self.state.wake()

    def on_task_finished(self, job: JobRecord, task: TaskRecord) -> None:
        """A completed job manager task (``killJobOnCompletion``, default true) ends its job; lock held."""
        if job.state == "active" and task.is_job_manager and task.spec.get("killJobOnCompletion", True):
            self.terminate(job, "JMComplete")

    def housekeeping(self) -> None:
        """Apply the wall clock limit and ``onAllTasksComplete``, finish terminations and deletions; lock held."""
        for job in list(self.state.jobs.values()):
            if job.state == "active" and _wall_clock_expired(job):
                self.terminate(job, "MaxWallClockTimeExpiry")
            elif job.state == "active" and job.on_all_tasks_complete == "terminatejob" and all(
                    task.state == "completed" for task in job.tasks.values()):
                self.terminate(job, "AllTasksComplete")
            elif job.state == "terminating" and not job.running_tasks():
                job.end_time = utc_now()
                job.move("completed")
            elif job.state == "deleting" and not job.running_tasks() and job.deleting_since is not None:
                if time.monotonic() - job.deleting_since >= self.state.settings.deletion_delay_s:
                    del self.state.jobs[job.id.lower()]
                    for job_dir in self.state.nodes_dir().glob(f"*/workitems/{job.id}"):
                        shutil.rmtree(job_dir, ignore_errors=True)


def container_mismatch(pool: PoolRecord, task_spec: dict[str, Any]) -> str | None:
    """Why a task's container settings do not fit its pool, or None."""
    has_settings = task_spec.get("containerSettings") is not None
    if pool.container_configuration is not None and not has_settings:
        return "The pool has a container configuration, so the task must have containerSettings."
    if pool.container_configuration is None and has_settings:
        return "The pool has no container configuration, so the task must not have containerSettings."
    return None


def check_container_settings(pool: PoolRecord | None, task_spec: dict[str, Any], prefix: str) -> None:
    """400 when the task's container settings do not fit its (existing) pool."""
    reason = container_mismatch(pool, task_spec) if pool is not None else None
    if reason is None:
        return
    code = "MissingRequiredProperty" if task_spec.get("containerSettings") is None else "InvalidPropertyValue"
    raise BatchApiError(code, values=[("PropertyName", prefix + "containerSettings"), ("Reason", reason)])


def _check_distinct_ids(tasks: list[Any]) -> None:
    seen: dict[str, str] = {}
    for spec in tasks:
        task_id = spec.get("id") if isinstance(spec, dict) else None
        if not isinstance(task_id, str):
            continue
        if task_id.lower() in seen:
            raise invalid_property("value", f"Task ids must be unique within a job, ignoring case: "
                                            f"{seen[task_id.lower()]!r} and {task_id!r} are the same id.")
        seen[task_id.lower()] = task_id


def _wall_clock_expired(job: JobRecord) -> bool:
    limit = (job.spec.get("constraints") or {}).get("maxWallClockTime")
    if not limit or limit == UNLIMITED_DURATION:
        return False
    return utc_now() - job.start_time > parse_duration(limit)
