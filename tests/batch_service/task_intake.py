"""Adding tasks to a job, one at a time or as a collection (``addtaskcollection``).

A collection answers per task: ``success``, or ``clienterror`` with the Batch error (e.g.
``TaskExists`` for an id already in the job, including one added by an earlier attempt of
the same request). More than ``max_tasks_per_collection`` tasks fail the whole request.
"""
from __future__ import annotations

from typing import Any

from .errors import BatchApiError, invalid_property
from .job_engine import check_job_accepts_changes
from .job_entities import JobRecord, TaskRecord
from .specs import validate_task_spec
from .state import BatchState


def _insert(state: BatchState, job: JobRecord, spec: Any) -> TaskRecord:
    if not isinstance(spec, dict):
        raise invalid_property("value", "Each task must be an object.")
    validate_task_spec(spec, uses_dependencies=bool(job.spec.get("usesTaskDependencies", False)))
    if spec["id"].lower() in job.tasks:
        raise BatchApiError("TaskExists", values=[("TaskId", spec["id"])])
    task = TaskRecord(job.id, spec["id"], dict(spec))
    job.tasks[task.id.lower()] = task
    return task


def add_task(state: BatchState, job_id: str, spec: dict[str, Any]) -> TaskRecord:
    """Add one task; 404 JobNotFound, 409 TaskExists/JobCompleted, 400 for a bad body."""
    with state.lock:
        job = state.job(job_id)
        check_job_accepts_changes(job)
        task = _insert(state, job, spec)
        state.wake()
        return task


def _client_error(task_id: Any, error: BatchApiError, request_id: str) -> dict[str, Any]:
    return {"status": "clienterror", "taskId": str(task_id or ""), "error": error.error_json(request_id)}


def add_task_collection(state: BatchState, job_id: str, body: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    """Add a collection; returns the ``value`` list of per-task results."""
    tasks = body.get("value")
    if tasks is None:
        raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "value")])
    if not isinstance(tasks, list):
        raise invalid_property("value", "The value must be an array of tasks.")
    limit = state.settings.max_tasks_per_collection
    if len(tasks) > limit:
        raise invalid_property("value", f"A task collection may contain at most {limit} tasks; got {len(tasks)}.")
    results: list[dict[str, Any]] = []
    with state.lock:
        job = state.job(job_id)
        check_job_accepts_changes(job)
        for spec in tasks:
            try:
                task = _insert(state, job, spec)
            except BatchApiError as exc:
                results.append(_client_error(spec.get("id") if isinstance(spec, dict) else "", exc, request_id))
                continue
            results.append({
                "status": "success", "taskId": task.id, "eTag": task.revision.etag,
                **{"lastModified": task.revision.json_fields()["lastModified"], "location": task.url(state.base_url)},
            })
        state.wake()
    return results
