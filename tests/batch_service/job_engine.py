"""Job lifecycle: create, update, terminate, delete, and reacting to finished tasks.

Terminating a job kills its running tasks (they complete with ``TaskEnded``), leaves active
tasks active but unscheduled, and moves the job ``terminating`` → ``completed`` once nothing
runs. Deleting kills everything, then removes the job and its task directories after
``deletion_delay_s``. ``terminateReason`` values follow Batch: ``UserTerminate``,
``AllTasksComplete``, ``JMComplete``, ``TaskFailed``, ``MaxWallClockTimeExpiry``. A disabled
job schedules nothing until enabled.
"""
from __future__ import annotations

import shutil
import threading
import time
from typing import Any

from .errors import BatchApiError
from .exit_conditions import job_action
from .job_entities import JobRecord, TaskRecord
from .specs import validate_job_spec, validate_job_update
from .state import BatchState
from .task_completion import TASK_ENDED
from .times import UNLIMITED_DURATION, format_timestamp, parse_duration, utc_now

JOB_UPDATABLE = ("priority", "maxParallelTasks", "allowTaskPreemption", "constraints", "poolInfo",
                 "onAllTasksComplete", "onTaskFailure", "metadata", "networkConfiguration")


def check_job_accepts_changes(job: JobRecord) -> None:
    """409 when the job's state forbids updates and new tasks."""
    errors = {"completed": "JobCompleted", "terminating": "JobBeingTerminated", "deleting": "JobBeingDeleted"}
    if job.state in errors:
        raise BatchApiError(errors[job.state], values=[("JobId", job.id)])


class JobEngine:
    """Operations on jobs; public methods take the state lock themselves unless noted."""

    def __init__(self, state: BatchState) -> None:
        self.state = state

    def create_job(self, spec: dict[str, Any]) -> JobRecord:
        """Add a job (and its job manager task); 409 JobExists / JobBeingDeleted."""
        validate_job_spec(spec)
        with self.state.lock:
            existing = self.state.jobs.get(spec["id"].lower())
            if existing is not None:
                code = "JobBeingDeleted" if existing.state == "deleting" else "JobExists"
                raise BatchApiError(code, values=[("JobId", spec["id"])])
            job = JobRecord(spec["id"], dict(spec))
            manager = spec.get("jobManagerTask")
            if manager:
                job.tasks[manager["id"].lower()] = TaskRecord(job.id, manager["id"], dict(manager), is_job_manager=True)
            self.state.jobs[job.id.lower()] = job
            self.state.wake()
            return job

    def update_job(self, job_id: str, body: dict[str, Any], *, replace: bool) -> JobRecord:
        """PATCH merges the given updatable properties; PUT replaces them all."""
        validate_job_update(body)
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            for key in JOB_UPDATABLE:
                if key in body:
                    job.spec[key] = body[key]
                elif replace and key != "poolInfo":
                    job.spec.pop(key, None)
            job.revision.touch()
            self.state.wake()
            return job

    def terminate_job(self, job_id: str, reason: str | None) -> None:
        """User termination (``UserTerminate`` unless a reason is given)."""
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            self.terminate(job, reason or "UserTerminate")

    def disable_job(self, job_id: str, disable_tasks: str) -> None:
        """Stop scheduling the job; running tasks are requeued, terminated or left to finish (``wait``)."""
        with self.state.lock:
            job = self.state.job(job_id)
            check_job_accepts_changes(job)
            if job.state != "active":
                raise BatchApiError("OperationInvalidForCurrentState", values=[("JobState", job.state)])
            if disable_tasks in ("requeue", "terminate"):
                for task in job.running_tasks():
                    if task.handle:
                        task.handle.cancel(disable_tasks)
            job.move("disabled")
            self.state.wake()

    def enable_job(self, job_id: str) -> None:
        """Resume scheduling a disabled job."""
        with self.state.lock:
            job = self.state.job(job_id)
            if job.state != "disabled":
                raise BatchApiError("OperationInvalidForCurrentState", values=[("JobState", job.state)])
            job.move("active")
            self.state.wake()

    def delete_job(self, job_id: str) -> None:
        """Start deleting a job: state ``deleting``, all its tasks killed."""
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

    def terminate_task(self, job_id: str, task_id: str) -> None:
        """End a task: an active one completes at once, a running one is killed."""
        with self.state.lock:
            job = self.state.job(job_id)
            task = self.state.task(job_id, task_id)
            if task.state == "completed":
                raise BatchApiError("TaskCompleted", values=[("TaskId", task.id)])
            if task.handle is not None:
                task.handle.cancel("terminate")
                return
            now = format_timestamp(utc_now())
            task.execution.update(endTime=now, result="failure", failureInfo=dict(TASK_ENDED))
            task.failure_kind = "ended"
            task.move("completed")
            self.on_task_finished(job, task)
            self.state.wake()

    def delete_task(self, job_id: str, task_id: str) -> None:
        """Remove a task (killing it if it runs) and, once it has stopped, its directory."""
        with self.state.lock:
            job = self.state.job(job_id)
            task = self.state.task(job_id, task_id)
            del job.tasks[task.id.lower()]
            handle, task_dir = task.handle, task.task_dir
            if handle is not None:
                handle.cancel("delete")
            self.state.wake()
        if task_dir is not None:
            threading.Thread(target=_remove_when_stopped, args=(task_dir, handle), daemon=True).start()

    def terminate(self, job: JobRecord, reason: str) -> None:
        """Move ``job`` to ``terminating`` and kill its running tasks; lock held."""
        job.terminate_reason = reason
        job.move("terminating")
        for task in job.running_tasks():
            if task.handle:
                task.handle.cancel("terminate")
        self.state.wake()

    def on_task_finished(self, job: JobRecord, task: TaskRecord) -> None:
        """Job manager completion and ``onTaskFailure`` actions; lock held."""
        if job.state != "active":
            return
        if task.is_job_manager and task.spec.get("killJobOnCompletion", True):
            self.terminate(job, "JMComplete")
        elif not task.succeeded() and job.on_task_failure == "performexitoptionsjobaction":
            action = job_action(task)
            if action == "terminate":
                self.terminate(job, "TaskFailed")
            elif action == "disable":
                job.move("disabled")

    def housekeeping(self) -> None:
        """Finish terminations and deletions, apply ``onAllTasksComplete``; lock held."""
        for job in list(self.state.jobs.values()):
            if job.state == "active" and _wall_clock_expired(job):
                self.terminate(job, "MaxWallClockTimeExpiry")
            elif job.state == "active" and job.on_all_tasks_complete == "terminatejob" and all(
                task.state == "completed" for task in job.tasks.values()
            ):
                self.terminate(job, "AllTasksComplete")
            elif job.state == "terminating" and not job.running_tasks():
                job.end_time = utc_now()
                job.move("completed")
            elif job.state == "deleting" and not job.running_tasks() and job.deleting_since is not None:
                if time.monotonic() - job.deleting_since >= self.state.settings.deletion_delay_s:
                    del self.state.jobs[job.id.lower()]
                    for job_dir in self.state.nodes_dir().glob(f"*/workitems/{job.id}"):
                        shutil.rmtree(job_dir, ignore_errors=True)


def _wall_clock_expired(job: JobRecord) -> bool:
    limit = (job.spec.get("constraints") or {}).get("maxWallClockTime")
    if not limit or limit == UNLIMITED_DURATION:
        return False
    return utc_now() - job.start_time > parse_duration(limit)


def _remove_when_stopped(task_dir: Any, handle: Any) -> None:
    if handle is not None:
        handle.finished.wait(timeout=30)
    shutil.rmtree(task_dir, ignore_errors=True)
