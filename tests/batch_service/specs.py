"""Validation of pool, job and task bodies against Batch's rules, raising its 400 errors.

Properties whose behaviour this service does not model are refused with 400
``UnsupportedProperty`` rather than stored and ignored: job ``onTaskFailure`` other than
``noaction``, task ``exitConditions`` and ``dependsOn.taskIdRanges``, auto pools.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import BatchApiError, invalid_property, missing_property, unsupported_property
from .timekeeping import parse_duration

NODE_FILL_TYPES = ("spread", "pack")
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
JOB_COMPLETION_ACTIONS = ("noaction", "terminatejob")
MAX_TASK_SLOTS_PER_NODE = 256
_RESOURCE_SOURCES = ("httpUrl", "storageContainerUrl", "autoStorageContainerName")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def require(body: dict[str, Any], name: str, prefix: str = "") -> Any:
    """``body[name]``; 400 MissingRequiredProperty when absent, null or empty."""
    value = body.get(name)
    if value is None or value == "":
        raise missing_property(prefix + name)
    return value


def check_id(value: Any, name: str = "id") -> str:
    """An id of letters, digits, hyphens and underscores, 1 to 64 characters."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise invalid_property(name, "The id may contain letters, digits, hyphens and underscores, "
                                     "and must be 1 to 64 characters long.")
    return value


def check_int(body: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None,
              prefix: str = "") -> int | None:
    """An optional integer within bounds."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_property(prefix + name, "The value must be an integer.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise invalid_property(prefix + name, f"The value must be between {minimum} and {maximum}.")
    return value


def check_type(body: dict[str, Any], name: str, kind: type, prefix: str = "") -> Any:
    """An optional value of JSON type ``kind`` (bool, str, dict or list)."""
    value = body.get(name)
    if value is not None and not isinstance(value, kind):
        noun = {bool: "a boolean", str: "a string", dict: "an object", list: "an array"}[kind]
        raise invalid_property(prefix + name, f"The value must be {noun}.")
    return value


def check_enum(body: dict[str, Any], name: str, allowed: Iterable[str], prefix: str = "") -> str | None:
    """An optional string that is one of ``allowed`` (case-insensitive); returned lower-case."""
    value = check_type(body, name, str, prefix)
    if value is not None and value.lower() not in tuple(allowed):
        raise invalid_property(prefix + name, f"The value must be one of: {', '.join(allowed)}.")
    return value.lower() if value is not None else None


def check_duration(body: dict[str, Any], name: str, prefix: str = "") -> str | None:
    """An optional ISO-8601 duration string."""
    value = check_type(body, name, str, prefix)
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise invalid_property(prefix + name, "The value must be an ISO-8601 duration.") from exc
    return value


def check_list(body: dict[str, Any], name: str, prefix: str = "") -> list[Any]:
    """An optional JSON array (empty when absent)."""
    return check_type(body, name, list, prefix) or []


def _required_object(body: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    """A JSON object that must be present."""
    value = check_type(body, name, dict, prefix)
    if value is None:
        raise missing_property(prefix + name)
    return value


def _check_targets(body: dict[str, Any]) -> None:
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        check_int(body, name, minimum=0, maximum=10000)
        if body.get("enableAutoScale") and body.get(name) is not None:
            raise invalid_property(name, "Target node counts cannot be given when enableAutoScale is true.")
    check_duration(body, "resizeTimeout")


def validate_pool_spec(body: dict[str, Any]) -> None:
    """A pool create body."""
    check_id(require(body, "id"))
    if not isinstance(require(body, "vmSize"), str):
        raise invalid_property("vmSize", "The value must be a string.")
    require(_required_object(body, "virtualMachineConfiguration"), "nodeAgentSKUId", "virtualMachineConfiguration.")
    _check_targets(body)
    check_type(body, "enableAutoScale", bool)
    check_duration(body, "autoScaleEvaluationInterval")
    if body.get("enableAutoScale"):
        require(body, "autoScaleFormula")
    check_int(body, "taskSlotsPerNode", minimum=1, maximum=MAX_TASK_SLOTS_PER_NODE)
    check_type(body, "enableInterNodeCommunication", bool)
    check_enum(check_type(body, "taskSchedulingPolicy", dict) or {}, "nodeFillType", NODE_FILL_TYPES,
               "taskSchedulingPolicy.")
    start_task = check_type(body, "startTask", dict)
    if start_task is not None:
        if not isinstance(require(start_task, "commandLine", "startTask."), str):
            raise invalid_property("startTask.commandLine", "The value must be a string.")
        check_int(start_task, "maxTaskRetryCount", minimum=-1, prefix="startTask.")
        check_type(start_task, "waitForSuccess", bool, "startTask.")
        _check_resource_files(check_list(start_task, "resourceFiles", "startTask."), "startTask.resourceFiles")
    check_list(body, "metadata")


def validate_resize(body: dict[str, Any]) -> str:
    """A pool resize body; returns its ``nodeDeallocationOption`` (default ``requeue``)."""
    _check_targets(body)
    return check_enum(body, "nodeDeallocationOption", DEALLOCATION_OPTIONS) or "requeue"


def validate_job_spec(body: dict[str, Any]) -> None:
    """A job create body."""
    check_id(require(body, "id"))
    pool_info = _required_object(body, "poolInfo")
    if pool_info.get("autoPoolSpecification") is not None:
        raise unsupported_property("poolInfo.autoPoolSpecification", "Auto pools are not offered here.")
    check_id(require(pool_info, "poolId", "poolInfo."), "poolInfo.poolId")
    check_type(body, "usesTaskDependencies", bool)
    manager = check_type(body, "jobManagerTask", dict)
    if manager is not None:
        validate_task_spec(manager, uses_dependencies=False, prefix="jobManagerTask.")
    validate_job_update(body)


def validate_job_update(body: dict[str, Any]) -> None:
    """Properties a job create or update (PATCH) may carry."""
    check_enum(body, "onAllTasksComplete", JOB_COMPLETION_ACTIONS)
    if check_enum(body, "onTaskFailure", ("noaction", "performexitoptionsjobaction")) not in (None, "noaction"):
        raise unsupported_property("onTaskFailure", "Task exit conditions are not offered here.")
    check_int(body, "priority", minimum=-1000, maximum=1000)
    check_int(body, "maxParallelTasks", minimum=-1)
    constraints = check_type(body, "constraints", dict)
    if constraints is not None:
        check_duration(constraints, "maxWallClockTime", "constraints.")
        check_int(constraints, "maxTaskRetryCount", minimum=-1, prefix="constraints.")
    pool_info = check_type(body, "poolInfo", dict)
    if pool_info is not None and pool_info.get("poolId") is not None:
        check_id(pool_info["poolId"], "poolInfo.poolId")


def _check_resource_files(files: list[Any], where: str) -> None:
    for index, resource in enumerate(files):
        if not isinstance(resource, dict):
            raise invalid_property(where, "Each resource file must be an object.")
        sources = [name for name in _RESOURCE_SOURCES if resource.get(name)]
        if len(sources) != 1:
            raise invalid_property(f"{where}[{index}].httpUrl", "Exactly one of httpUrl, storageContainerUrl and "
                                                                "autoStorageContainerName must be given.")
        if sources == ["httpUrl"]:
            require(resource, "filePath", f"{where}[{index}].")


def _check_output_files(files: list[Any], where: str) -> None:
    for index, output in enumerate(files):
        prefix = f"{where}[{index}]."
        if not isinstance(output, dict):
            raise invalid_property(where, "Each output file must be an object.")
        require(output, "filePattern", prefix)
        destination = check_type(output, "destination", dict, prefix) or {}
        container = check_type(destination, "container", dict, prefix + "destination.") or {}
        require(container, "containerUrl", prefix + "destination.container.")
        options = _required_object(output, "uploadOptions", prefix)
        require(options, "uploadCondition", prefix + "uploadOptions.")
        check_enum(options, "uploadCondition", UPLOAD_CONDITIONS, prefix + "uploadOptions.")


def validate_task_spec(body: dict[str, Any], *, uses_dependencies: bool, prefix: str = "") -> None:
    """A task add body (a job manager task with ``prefix``); ``uses_dependencies`` is the job's setting."""
    check_id(require(body, "id", prefix), prefix + "id")
    if not isinstance(require(body, "commandLine", prefix), str):
        raise invalid_property(prefix + "commandLine", "The value must be a string.")
    check_int(body, "requiredSlots", minimum=1, prefix=prefix)
    constraints = check_type(body, "constraints", dict, prefix)
    if constraints is not None:
        check_duration(constraints, "maxWallClockTime", prefix + "constraints.")
        check_duration(constraints, "retentionTime", prefix + "constraints.")
        check_int(constraints, "maxTaskRetryCount", minimum=-1, prefix=prefix + "constraints.")
    for setting in check_list(body, "environmentSettings", prefix):
        if not isinstance(setting, dict):
            raise invalid_property(prefix + "environmentSettings", "Each setting must be an object.")
        require(setting, "name", prefix + "environmentSettings.")
    _check_resource_files(check_list(body, "resourceFiles", prefix), prefix + "resourceFiles")
    _check_output_files(check_list(body, "outputFiles", prefix), prefix + "outputFiles")
    multi = check_type(body, "multiInstanceSettings", dict, prefix)
    if multi is not None:
        where = prefix + "multiInstanceSettings."
        check_int(multi, "numberOfInstances", minimum=1, maximum=1000, prefix=where)
        require(multi, "coordinationCommandLine", where)
        _check_resource_files(check_list(multi, "commonResourceFiles", where), where + "commonResourceFiles")
    depends_on = check_type(body, "dependsOn", dict, prefix) or {}
    if depends_on.get("taskIdRanges"):
        raise unsupported_property(prefix + "dependsOn.taskIdRanges", "Task id ranges are not offered here.")
    if depends_on.get("taskIds") and not uses_dependencies:
        raise BatchApiError("TaskDependenciesNotSpecifiedOnJob")
    check_list(depends_on, "taskIds", prefix + "dependsOn.")
    if body.get("exitConditions") is not None:
        raise unsupported_property(prefix + "exitConditions", "Task exit conditions are not offered here.")
