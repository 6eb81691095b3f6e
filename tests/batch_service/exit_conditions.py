"""Resolving a completed task's ``exitConditions`` into its dependency and job actions.

Defaults, as in Batch: exit code 0 satisfies dependents and takes no job action; any failure
blocks dependents and asks for ``terminate`` (which only happens when the job's
``onTaskFailure`` is ``performexitoptionsjobaction``).
"""
from __future__ import annotations

from typing import Any

from .job_entities import TaskRecord


def _explicit_options(task: TaskRecord) -> dict[str, Any]:
    """The ``exitOptions`` the task's ``exitConditions`` give for how it ended ({} when none)."""
    conditions: dict[str, Any] = task.spec.get("exitConditions") or {}
    found = _matching_options(task, conditions)
    return dict(found) if isinstance(found, dict) else {}


def _matching_options(task: TaskRecord, conditions: dict[str, Any]) -> Any:
    exit_code = task.execution.get("exitCode")
    if task.failure_kind == "preprocessing":
        return conditions.get("preProcessingError") or conditions.get("default")
    if task.failure_kind == "upload" and conditions.get("fileUploadError"):
        return conditions["fileUploadError"]
    if exit_code is not None:
        for mapping in conditions.get("exitCodes") or []:
            if mapping.get("code") == exit_code:
                return mapping.get("exitOptions") or {}
        for mapping in conditions.get("exitCodeRanges") or []:
            if int(mapping.get("start", 0)) <= exit_code <= int(mapping.get("end", -1)):
                return mapping.get("exitOptions") or {}
    return None if task.succeeded() else conditions.get("default")


def dependency_action(task: TaskRecord) -> str:
    """``satisfy`` or ``block`` for tasks that depend on this completed task."""
    options = _explicit_options(task)
    default = "satisfy" if task.succeeded() else "block"
    return str(options.get("dependencyAction") or default).lower()


def job_action(task: TaskRecord) -> str:
    """``none``, ``disable`` or ``terminate`` for this completed task's job."""
    options = _explicit_options(task)
    default = "none" if task.succeeded() else "terminate"
    return str(options.get("jobAction") or default).lower()


def dependency_ids(task: TaskRecord) -> list[str]:
    """Ids this task depends on: ``taskIds`` plus every id in ``taskIdRanges`` (inclusive)."""
    depends_on = task.spec.get("dependsOn") or {}
    ids = [str(item) for item in depends_on.get("taskIds") or []]
    for id_range in depends_on.get("taskIdRanges") or []:
        ids.extend(str(number) for number in range(int(id_range["start"]), int(id_range["end"]) + 1))
    return ids
