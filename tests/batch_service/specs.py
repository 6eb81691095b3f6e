"""Validation of pool, job and task bodies: their shapes (``shapes``, checked by ``schema``) plus the
rules Batch's REST reference (2025-06-01) states across properties, raising Batch's errors.

Rules beyond the shapes, each from the reference text of the property named:

- ids (pool, job, task, job manager task, ``poolInfo.poolId``): 1-64 letters, digits, ``-``, ``_``;
- ``taskSlotsPerNode``: at most 4 × the VM size's vCPUs (and 256), vCPUs read from the size's
  name (Azure's size naming convention: family letters, then the vCPU count);
- ``resizeTimeout`` at least 5 minutes; ``autoScaleEvaluationInterval`` 5 minutes to 168 hours;
  with ``enableAutoScale`` a formula and no target counts, without it targets and no formula;
- an image is a marketplace reference (publisher, offer and sku) or an Azure Compute Gallery image
  id, not both; a node agent SKU Batch has retired is refused;
- registry logins give user name and password together; a user identity is a user name or an
  auto user, not both;
- a resource file has exactly one source (``httpUrl`` | ``storageContainerUrl`` |
  ``autoStorageContainerName``); ``httpUrl`` needs ``filePath``; ``blobPrefix`` only with a
  container source; ``filePath`` stays inside the working directory; ``fileMode`` is octal;
- a multi-instance task's ``requiredSlots`` is 1; ``dependsOn`` needs the job's
  ``usesTaskDependencies`` (``TaskDependenciesNotSpecifiedOnJob``) and at most 64,000 characters
  of task ids (``TaskDependencyListTooLong``);
- ``maxParallelTasks`` is -1 or greater than 0; a job's ``onTaskFailure`` other than ``noaction``
  needs exit conditions, which this service does not model.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

from . import shapes
from .errors import (
    BatchApiError,
    invalid_property,
    missing_property,
    unsupported_property,
)
from .schema import check
from .timekeeping import parse_duration

MAX_TASK_SLOTS_PER_NODE = 256
MAX_DEPENDENCY_CHARS = 64_000
_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_VM_VCPUS = re.compile(r"^(?:standard_)?[a-z]+(\d+)(?:-(\d+))?", re.IGNORECASE)
_GALLERY_IMAGE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/"
                            r"[^/]+/images/[^/]+(/versions/[^/]+)?$", re.IGNORECASE)
_FILE_MODE = re.compile(r"^[0-7]{3,4}$")
RETIRED_NODE_AGENTS = ("batch.node.ubuntu 14.04", "batch.node.ubuntu 16.04", "batch.node.ubuntu 18.04",
                       "batch.node.ubuntu 20.04", "batch.node.centos 7", "batch.node.centos 8",
                       "batch.node.debian 8", "batch.node.debian 9", "batch.node.debian 10")
"""Node agent SKUs Batch has retired (Azure/Batch notices #61, #106, #152, #169, #174, #180)."""
_FIVE_MINUTES, _WEEK = timedelta(minutes=5), timedelta(hours=168)


def check_id(value: Any, name: str = "id") -> str:
    """An id of letters, digits, hyphens and underscores, 1 to 64 characters."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise invalid_property(name, "The id may contain letters, digits, hyphens and underscores, "
                                     "and must be 1 to 64 characters long.")
    return value


def vm_vcpus(vm_size: str) -> int | None:
    """vCPUs of a VM size by Azure's naming convention (constrained sizes: the active count)."""
    match = _VM_VCPUS.match(vm_size.strip())
    if not match:
        return None
    return int(match.group(2) or match.group(1))


def validate_pool_spec(body: dict[str, Any]) -> None:
    """A pool create body."""
    check(body, shapes.POOL, ())
    check_id(body["id"])
    vcpus = vm_vcpus(body["vmSize"])
    if vcpus is None:
        raise invalid_property("vmSize", "The value is not an Azure VM size.")
    slots = body.get("taskSlotsPerNode")
    if slots is not None and slots > min(4 * vcpus, MAX_TASK_SLOTS_PER_NODE):
        raise invalid_property("taskSlotsPerNode", f"The value must be at most {min(4 * vcpus, 256)}: 4 times "
                                                   f"the {vcpus} cores of {body['vmSize']}, and at most 256.")
    _check_scaling(body)
    _check_vm_configuration(body["virtualMachineConfiguration"])
    start_task = body.get("startTask")
    if start_task is not None:
        _check_user_identity(start_task.get("userIdentity"), "startTask.userIdentity")
        _check_resource_files(start_task.get("resourceFiles"), "startTask.resourceFiles")
        _check_container_settings(start_task.get("containerSettings"), "startTask.containerSettings")


def _check_scaling(body: dict[str, Any]) -> None:
    _check_timeout(body, "resizeTimeout")
    interval = body.get("autoScaleEvaluationInterval")
    if interval is not None and not _FIVE_MINUTES <= parse_duration(interval) <= _WEEK:
        raise invalid_property("autoScaleEvaluationInterval", "The value must be between 5 minutes and 168 hours.")
    targets = [name for name in ("targetDedicatedNodes", "targetLowPriorityNodes") if body.get(name) is not None]
    if body.get("enableAutoScale"):
        if targets:
            raise invalid_property(targets[0], "Target node counts cannot be given when enableAutoScale is true.")
        if not body.get("autoScaleFormula"):
            raise missing_property("autoScaleFormula")
    else:
        if body.get("autoScaleFormula") is not None:
            raise invalid_property("autoScaleFormula", "A formula may be given only when enableAutoScale is true.")
        if not targets:
            raise missing_property("targetDedicatedNodes")


def _check_timeout(body: dict[str, Any], name: str) -> None:
    timeout = body.get(name)
    if timeout is not None and parse_duration(timeout) < _FIVE_MINUTES:
        raise invalid_property(name, "The minimum value is 5 minutes.")


def _check_vm_configuration(config: dict[str, Any]) -> None:
    image = config["imageReference"]
    where = "virtualMachineConfiguration.imageReference"
    marketplace = [name for name in ("publisher", "offer", "sku", "version") if image.get(name) is not None]
    gallery = image.get("virtualMachineImageId")
    if gallery is not None:
        if marketplace:
            raise invalid_property(f"{where}.virtualMachineImageId", "virtualMachineImageId excludes the other "
                                                                     "image reference properties.")
        if not _GALLERY_IMAGE.match(gallery):
            raise invalid_property(f"{where}.virtualMachineImageId", "The value must be the ARM id of an Azure "
                                   "Compute Gallery image or image version; managed images are not supported.")
    else:
        for name in ("publisher", "offer", "sku"):
            if not image.get(name):
                raise missing_property(f"{where}.{name}")
    agent = config["nodeAgentSKUId"]
    if agent.lower() in RETIRED_NODE_AGENTS:
        raise invalid_property("virtualMachineConfiguration.nodeAgentSKUId",
                               f"The node agent SKU {agent} has reached its end of life.")
    containers = config.get("containerConfiguration") or {}
    for index, registry in enumerate(containers.get("containerRegistries") or []):
        _check_registry(registry, f"virtualMachineConfiguration.containerConfiguration.containerRegistries[{index}]")


def _check_registry(registry: dict[str, Any] | None, where: str) -> None:
    if registry is not None and (registry.get("username") is None) != (registry.get("password") is None):
        missing = "password" if registry.get("password") is None else "username"
        raise missing_property(f"{where}.{missing}")


def _check_container_settings(settings: dict[str, Any] | None, where: str) -> None:
    if settings is not None:
        _check_registry(settings.get("registry"), f"{where}.registry")


def _check_user_identity(identity: dict[str, Any] | None, where: str) -> None:
    if identity is not None and (identity.get("username") is None) == (identity.get("autoUser") is None):
        raise invalid_property(where, "Give exactly one of userName and autoUser.")


def validate_resize(body: dict[str, Any]) -> str:
    """A pool resize body; returns its ``nodeDeallocationOption`` (default ``requeue``)."""
    check(body, shapes.POOL_RESIZE, ())
    _check_timeout(body, "resizeTimeout")
    return str(body.get("nodeDeallocationOption") or "requeue").lower()


def validate_job_spec(body: dict[str, Any], features: Collection[str]) -> None:
    """A job create body."""
    check(body, shapes.JOB, features)
    check_id(body["id"])
    _check_job_properties(body)
    if body.get("onTaskFailure") is not None and body["onTaskFailure"].lower() != "noaction":
        raise unsupported_property("onTaskFailure", "Task exit conditions are not offered here.")
    manager = body.get("jobManagerTask")
    if manager is not None:
        _check_task_rules(manager, uses_dependencies=False, prefix="jobManagerTask.")


def validate_job_update(body: dict[str, Any], features: Collection[str]) -> None:
    """A job update (PATCH) body."""
    check(body, shapes.JOB_UPDATE, features)
    _check_job_properties(body)


def _check_job_properties(body: dict[str, Any]) -> None:
    pool_info = body.get("poolInfo")
    if pool_info is not None:
        if pool_info.get("poolId") is None:
            raise missing_property("poolInfo.poolId")
        check_id(pool_info["poolId"], "poolInfo.poolId")
    parallel = body.get("maxParallelTasks")
    if parallel is not None and parallel != -1 and parallel < 1:
        raise invalid_property("maxParallelTasks", "The value must be -1 or greater than 0.")


def validate_terminate(body: dict[str, Any]) -> str | None:
    """A job terminate body; returns its ``terminateReason``."""
    check(body, shapes.JOB_TERMINATE, ())
    reason: str | None = body.get("terminateReason")
    return reason


def validate_task_spec(body: Any, *, uses_dependencies: bool, features: Collection[str]) -> None:
    """A task add body; ``uses_dependencies`` is the job's setting."""
    check(body, shapes.TASK, features)
    _check_task_rules(body, uses_dependencies=uses_dependencies, prefix="")


def _check_task_rules(body: dict[str, Any], *, uses_dependencies: bool, prefix: str) -> None:
    check_id(body["id"], prefix + "id")
    _check_user_identity(body.get("userIdentity"), prefix + "userIdentity")
    _check_container_settings(body.get("containerSettings"), prefix + "containerSettings")
    _check_resource_files(body.get("resourceFiles"), prefix + "resourceFiles")
    multi = body.get("multiInstanceSettings")
    if multi is not None:
        if body.get("requiredSlots") not in (None, 1):
            raise invalid_property(prefix + "requiredSlots", "A multi-instance task must require exactly 1 slot.")
        _check_resource_files(multi.get("commonResourceFiles"), prefix + "multiInstanceSettings.commonResourceFiles")
    task_ids = (body.get("dependsOn") or {}).get("taskIds") or []
    if task_ids and not uses_dependencies:
        raise BatchApiError("TaskDependenciesNotSpecifiedOnJob")
    if sum(len(task_id) for task_id in task_ids) > MAX_DEPENDENCY_CHARS:
        raise BatchApiError("TaskDependencyListTooLong")


def _check_resource_files(files: Iterable[dict[str, Any]] | None, where: str) -> None:
    for index, resource in enumerate(files or []):
        here = f"{where}[{index}]"
        sources = [name for name in shapes.RESOURCE_SOURCES if resource.get(name)]
        if len(sources) != 1:
            raise invalid_property(f"{here}.httpUrl", "Exactly one of httpUrl, storageContainerUrl and "
                                                      "autoStorageContainerName must be given.")
        if sources == ["httpUrl"]:
            if not resource.get("filePath"):
                raise missing_property(f"{here}.filePath")
            if resource.get("blobPrefix") is not None:
                raise invalid_property(f"{here}.blobPrefix", "blobPrefix applies only to container sources.")
        if sources != ["autoStorageContainerName"] and not str(resource[sources[0]]).startswith(("https://", "http://")):
            raise invalid_property(f"{here}.{sources[0]}", "The value must be an http(s) URL.")
        path = resource.get("filePath")
        if path is not None and (PurePosixPath(path).is_absolute() or ".." in PurePosixPath(path).parts):
            raise invalid_property(f"{here}.filePath", "The path must stay inside the task's working directory.")
        if resource.get("fileMode") is not None and not _FILE_MODE.match(resource["fileMode"]):
            raise invalid_property(f"{here}.fileMode", "The value must be an octal file mode such as 0770.")
