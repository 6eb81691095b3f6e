"""Validation of pool, job and task bodies (create and update) against Batch's rules."""
from __future__ import annotations

from typing import Any

from .body_checks import (
    check_bool,
    check_duration,
    check_enum,
    check_id,
    check_int,
    check_list,
    check_object,
    check_string,
    require,
)
from .errors import BatchApiError, invalid_property

NODE_FILL_TYPES = ("spread", "pack")
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
JOB_COMPLETION_ACTIONS = ("noaction", "terminatejob")
JOB_FAILURE_ACTIONS = ("noaction", "performexitoptionsjobaction")
MAX_TASK_SLOTS_PER_NODE = 256
_RESOURCE_SOURCES = ("httpUrl", "storageContainerUrl", "autoStorageContainerName")


def validate_pool_scaling(body: dict[str, Any], prefix: str = "") -> None:
    """Target counts, resize timeout and autoscale settings of a pool create/resize body."""
    for name in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        check_int(body, name, minimum=0, maximum=10000, prefix=prefix)
        if body.get("enableAutoScale") and body.get(name) is not None:
            raise invalid_property(prefix + name, "Target node counts cannot be given when enableAutoScale is true.")
    check_duration(body, "resizeTimeout", prefix)
    check_bool(body, "enableAutoScale", prefix)
    check_duration(body, "autoScaleEvaluationInterval", prefix)
    if body.get("enableAutoScale"):
        require(body, "autoScaleFormula", prefix)


def validate_pool_spec(body: dict[str, Any]) -> None:
    """A pool create body."""
    check_id(require(body, "id"))
    if not isinstance(require(body, "vmSize"), str):
        raise invalid_property("vmSize", "The value must be a string.")
    configuration = check_object(body, "virtualMachineConfiguration")
    if configuration is None:
        raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "virtualMachineConfiguration")])
    require(configuration, "nodeAgentSKUId", "virtualMachineConfiguration.")
    validate_pool_scaling(body)
    validate_pool_update(body)


def validate_pool_update(body: dict[str, Any]) -> None:
    """Properties a pool update (PATCH or updateproperties) may carry."""
    check_int(body, "taskSlotsPerNode", minimum=1, maximum=MAX_TASK_SLOTS_PER_NODE)
    check_bool(body, "enableInterNodeCommunication")
    policy = check_object(body, "taskSchedulingPolicy")
    if policy is not None:
        check_enum(policy, "nodeFillType", NODE_FILL_TYPES, "taskSchedulingPolicy.")
    start_task = check_object(body, "startTask")
    if start_task is not None:
        check_string(start_task, "commandLine", "startTask.")
        require(start_task, "commandLine", "startTask.")
        check_int(start_task, "maxTaskRetryCount", minimum=-1, prefix="startTask.")
        check_bool(start_task, "waitForSuccess", "startTask.")
        _validate_resource_files(check_list(start_task, "resourceFiles", "startTask."), "startTask.resourceFiles")
    check_list(body, "metadata")


def validate_job_spec(body: dict[str, Any]) -> None:
    """A job create body."""
    check_id(require(body, "id"))
    pool_info = check_object(body, "poolInfo")
    if pool_info is None:
        raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "poolInfo")])
    if pool_info.get("autoPoolSpecification") is not None:
        raise invalid_property("poolInfo.autoPoolSpecification", "Auto pools are not offered by this local service.")
    check_id(require(pool_info, "poolId", "poolInfo."), "poolInfo.poolId")
    check_bool(body, "usesTaskDependencies")
    manager = check_object(body, "jobManagerTask")
    if manager is not None:
        validate_task_spec(manager, uses_dependencies=False, prefix="jobManagerTask.")
    validate_job_update(body)


def validate_job_update(body: dict[str, Any]) -> None:
    """Properties a job update (PATCH or PUT) may carry."""
    check_enum(body, "onAllTasksComplete", JOB_COMPLETION_ACTIONS)
    check_enum(body, "onTaskFailure", JOB_FAILURE_ACTIONS)
    check_int(body, "priority", minimum=-1000, maximum=1000)
    check_int(body, "maxParallelTasks", minimum=-1)
    constraints = check_object(body, "constraints")
    if constraints is not None:
        check_duration(constraints, "maxWallClockTime", "constraints.")
        check_int(constraints, "maxTaskRetryCount", minimum=-1, prefix="constraints.")
    pool_info = check_object(body, "poolInfo")
    if pool_info is not None and pool_info.get("poolId") is not None:
        check_id(pool_info["poolId"], "poolInfo.poolId")


def _validate_resource_files(files: list[Any], where: str) -> None:
    for index, resource in enumerate(files):
        prefix = f"{where}[{index}]."
        if not isinstance(resource, dict):
            raise invalid_property(where, "Each resource file must be an object.")
        sources = [name for name in _RESOURCE_SOURCES if resource.get(name)]
        if len(sources) != 1:
            raise invalid_property(prefix + "httpUrl", "Exactly one of httpUrl, storageContainerUrl and "
                                                       "autoStorageContainerName must be given.")
        if sources == ["httpUrl"]:
            require(resource, "filePath", prefix)


def _validate_output_files(files: list[Any], where: str) -> None:
    for index, output in enumerate(files):
        prefix = f"{where}[{index}]."
        if not isinstance(output, dict):
            raise invalid_property(where, "Each output file must be an object.")
        require(output, "filePattern", prefix)
        destination = check_object(output, "destination", prefix) or {}
        container = check_object(destination, "container", prefix + "destination.") or {}
        require(container, "containerUrl", prefix + "destination.container.")
        options = check_object(output, "uploadOptions", prefix)
        if options is None:
            raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", prefix + "uploadOptions")])
        require(options, "uploadCondition", prefix + "uploadOptions.")
        check_enum(options, "uploadCondition", UPLOAD_CONDITIONS, prefix + "uploadOptions.")


def validate_task_spec(body: dict[str, Any], *, uses_dependencies: bool, prefix: str = "") -> None:
    """A task add body (also a job manager task with ``prefix``)."""
    check_id(require(body, "id", prefix), prefix + "id")
    if not isinstance(require(body, "commandLine", prefix), str):
        raise invalid_property(prefix + "commandLine", "The value must be a string.")
    check_int(body, "requiredSlots", minimum=1, prefix=prefix)
    constraints = check_object(body, "constraints", prefix)
    if constraints is not None:
        check_duration(constraints, "maxWallClockTime", prefix + "constraints.")
        check_duration(constraints, "retentionTime", prefix + "constraints.")
        check_int(constraints, "maxTaskRetryCount", minimum=-1, prefix=prefix + "constraints.")
    for setting in check_list(body, "environmentSettings", prefix):
        if not isinstance(setting, dict):
            raise invalid_property(prefix + "environmentSettings", "Each setting must be an object.")
        require(setting, "name", prefix + "environmentSettings.")
    _validate_resource_files(check_list(body, "resourceFiles", prefix), prefix + "resourceFiles")
    _validate_output_files(check_list(body, "outputFiles", prefix), prefix + "outputFiles")
    multi = check_object(body, "multiInstanceSettings", prefix)
    if multi is not None:
        check_int(multi, "numberOfInstances", minimum=1, maximum=1000, prefix=prefix + "multiInstanceSettings.")
        require(multi, "coordinationCommandLine", prefix + "multiInstanceSettings.")
        where = prefix + "multiInstanceSettings.commonResourceFiles"
        _validate_resource_files(check_list(multi, "commonResourceFiles"), where)
    depends_on = check_object(body, "dependsOn", prefix)
    if depends_on and (depends_on.get("taskIds") or depends_on.get("taskIdRanges")) and not uses_dependencies:
        raise BatchApiError("TaskDependenciesNotSpecifiedOnJob")
    check_object(body, "exitConditions", prefix)
