"""The request bodies of the operations this service serves, as Batch's REST API (2025-06-01) types them.

Each ``Shape`` lists every property the type has in that API version (names, JSON kinds, required
ones, enums and documented ranges). Properties this service does not model are ``unsupported``
(400 ``UnsupportedProperty``) rather than stored and ignored; properties the reference marks as
"not available by default" need an account ``feature`` (403 otherwise). Cross-property rules
(exactly one resource file source, multi-instance slots, container settings...) live in ``specs``.
"""
from __future__ import annotations

from .schema import Prop, Shape

NOT_OFFERED = "Not offered by this local Batch service."
MAX_PARALLEL_TASKS = "maxParallelTasks"
TASK_PREEMPTION = "allowTaskPreemption"
JOB_NETWORK = "networkConfiguration"
TASK_AUTH_TOKEN = "authenticationTokenSettings"
ACCOUNT_FEATURES = (MAX_PARALLEL_TASKS, TASK_PREEMPTION, JOB_NETWORK, TASK_AUTH_TOKEN)
"""Properties an account must have enabled (maxParallelTasks, allowTaskPreemption and a job's
networkConfiguration are "not available by default"; task authentication tokens were retired on
30 September 2024 and are refused where the account does not allow them)."""

RESOURCE_SOURCES = ("httpUrl", "storageContainerUrl", "autoStorageContainerName")
UPLOAD_CONDITIONS = ("tasksuccess", "taskfailure", "taskcompletion")
NODE_FILL_TYPES = ("spread", "pack")
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")
JOB_COMPLETION_ACTIONS = ("noaction", "terminatejob")


def _unsupported(kind: str = "object") -> Prop:
    return Prop(kind, unsupported=NOT_OFFERED)  # type: ignore[arg-type]


def _strings() -> Prop:
    return Prop("array", items="string")


METADATA_ITEM = Shape("MetadataItem", {"name": Prop("string", required=True), "value": Prop("string", required=True)})
ENVIRONMENT_SETTING = Shape("EnvironmentSetting", {"name": Prop("string", required=True), "value": Prop("string")})
IDENTITY = _unsupported()  # managed identities are not offered
RESOURCE_FILE = Shape("ResourceFile", {
    "autoStorageContainerName": Prop("string"), "storageContainerUrl": Prop("string"), "httpUrl": Prop("string"),
    "blobPrefix": Prop("string"), "filePath": Prop("string"), "fileMode": Prop("string"),
    "identityReference": IDENTITY})
UPLOAD_HEADER = Shape("HttpHeader", {"name": Prop("string", required=True), "value": Prop("string")})
CONTAINER_DESTINATION = Shape("OutputFileBlobContainerDestination", {
    "path": Prop("string"), "containerUrl": Prop("string", required=True), "identityReference": IDENTITY,
    "uploadHeaders": Prop("array", shape=UPLOAD_HEADER)})
OUTPUT_FILE = Shape("OutputFile", {
    "filePattern": Prop("string", required=True),
    "destination": Prop("object", required=True, shape=Shape("OutputFileDestination", {
        "container": Prop("object", required=True, shape=CONTAINER_DESTINATION)})),
    "uploadOptions": Prop("object", required=True, shape=Shape("OutputFileUploadOptions", {
        "uploadCondition": Prop("string", required=True, enum=UPLOAD_CONDITIONS)}))})
TASK_CONSTRAINTS = Shape("TaskConstraints", {
    "maxWallClockTime": Prop("duration"), "retentionTime": Prop("duration"),
    "maxTaskRetryCount": Prop("int", minimum=-1)})
REGISTRY = Shape("ContainerRegistry", {
    "username": Prop("string"), "password": Prop("string"), "registryServer": Prop("string"),
    "identityReference": IDENTITY})
TASK_CONTAINER = Shape("TaskContainerSettings", {
    "containerRunOptions": Prop("string"), "imageName": Prop("string", required=True),
    "registry": Prop("object", shape=REGISTRY),
    "workingDirectory": Prop("string", enum=("taskWorkingDirectory", "containerImageDefault")),
    "containerHostBatchBindMounts": _unsupported("array")})
USER_IDENTITY = Shape("UserIdentity", {
    "username": Prop("string"),
    "autoUser": Prop("object", shape=Shape("AutoUserSpecification", {
        "scope": Prop("string", enum=("task", "pool")), "elevationLevel": Prop("string", enum=("nonadmin", "admin"))}))})
AUTH_TOKEN = Prop("object", feature=TASK_AUTH_TOKEN, shape=Shape("AuthenticationTokenSettings", {
    "access": Prop("array", items="string", enum=("job",))}))
MULTI_INSTANCE = Shape("MultiInstanceSettings", {
    "numberOfInstances": Prop("int", minimum=1), "coordinationCommandLine": Prop("string", required=True),
    "commonResourceFiles": Prop("array", shape=RESOURCE_FILE)})
DEPENDENCIES = Shape("TaskDependencies", {"taskIds": _strings(), "taskIdRanges": _unsupported("array")})

_TASK_COMMON = {
    "id": Prop("string", required=True), "displayName": Prop("string"), "commandLine": Prop("string", required=True),
    "containerSettings": Prop("object", shape=TASK_CONTAINER), "resourceFiles": Prop("array", shape=RESOURCE_FILE),
    "outputFiles": Prop("array", shape=OUTPUT_FILE), "environmentSettings": Prop("array", shape=ENVIRONMENT_SETTING),
    "constraints": Prop("object", shape=TASK_CONSTRAINTS), "requiredSlots": Prop("int", minimum=1),
    "userIdentity": Prop("object", shape=USER_IDENTITY), "applicationPackageReferences": _unsupported("array"),
    "authenticationTokenSettings": AUTH_TOKEN}
TASK = Shape("TaskAddParameter", {
    **_TASK_COMMON, "exitConditions": _unsupported(), "affinityInfo": _unsupported(),
    "multiInstanceSettings": Prop("object", shape=MULTI_INSTANCE), "dependsOn": Prop("object", shape=DEPENDENCIES)})
JOB_MANAGER = Shape("JobManagerTask", {
    **_TASK_COMMON, "killJobOnCompletion": Prop("bool"), "runExclusive": Prop("bool"),
    "allowLowPriorityNode": Prop("bool")})
TASK_COLLECTION = Shape("TaskAddCollectionParameter", {"value": Prop("array", required=True)})

POOL_INFO = Shape("PoolInformation", {"poolId": Prop("string"), "autoPoolSpecification": _unsupported()})
JOB_CONSTRAINTS = Shape("JobConstraints", {"maxWallClockTime": Prop("duration"),
                                           "maxTaskRetryCount": Prop("int", minimum=-1)})
_JOB_UPDATABLE = {
    "priority": Prop("int", minimum=-1000, maximum=1000), "allowTaskPreemption": Prop("bool", feature=TASK_PREEMPTION),
    "maxParallelTasks": Prop("int", feature=MAX_PARALLEL_TASKS), "constraints": Prop("object", shape=JOB_CONSTRAINTS),
    "poolInfo": Prop("object", shape=POOL_INFO), "onAllTasksComplete": Prop("string", enum=JOB_COMPLETION_ACTIONS),
    "metadata": Prop("array", shape=METADATA_ITEM),
    "networkConfiguration": Prop("object", feature=JOB_NETWORK, unsupported=NOT_OFFERED)}
JOB = Shape("JobAddParameter", {
    **_JOB_UPDATABLE, "id": Prop("string", required=True), "displayName": Prop("string"),
    "usesTaskDependencies": Prop("bool"), "jobManagerTask": Prop("object", shape=JOB_MANAGER),
    "jobPreparationTask": _unsupported(), "jobReleaseTask": _unsupported(),
    "commonEnvironmentSettings": Prop("array", shape=ENVIRONMENT_SETTING),
    "poolInfo": Prop("object", required=True, shape=POOL_INFO),
    "onTaskFailure": Prop("string", enum=("noaction", "performexitoptionsjobaction"))})
JOB_UPDATE = Shape("JobPatchParameter", _JOB_UPDATABLE)
JOB_TERMINATE = Shape("JobTerminateParameter", {"terminateReason": Prop("string")})

IMAGE = Shape("ImageReference", {
    "publisher": Prop("string"), "offer": Prop("string"), "sku": Prop("string"), "version": Prop("string"),
    "virtualMachineImageId": Prop("string"), "sharedGalleryImageId": _unsupported("string"),
    "communityGalleryImageId": _unsupported("string")})
CONTAINER_CONFIGURATION = Shape("ContainerConfiguration", {
    "type": Prop("string", required=True, enum=("dockerCompatible", "criCompatible")),
    "containerImageNames": _strings(), "containerRegistries": Prop("array", shape=REGISTRY)})
VM_CONFIGURATION = Shape("VirtualMachineConfiguration", {
    "imageReference": Prop("object", required=True, shape=IMAGE), "nodeAgentSKUId": Prop("string", required=True),
    "containerConfiguration": Prop("object", shape=CONTAINER_CONFIGURATION),
    **{name: _unsupported() for name in ("windowsConfiguration", "diskEncryptionConfiguration",
                                         "nodePlacementConfiguration", "osDisk", "securityProfile",
                                         "serviceArtifactReference")},
    "dataDisks": _unsupported("array"), "extensions": _unsupported("array"), "licenseType": _unsupported("string")})
START_TASK = Shape("StartTask", {
    "commandLine": Prop("string", required=True), "containerSettings": Prop("object", shape=TASK_CONTAINER),
    "resourceFiles": Prop("array", shape=RESOURCE_FILE), "environmentSettings": Prop("array", shape=ENVIRONMENT_SETTING),
    "userIdentity": Prop("object", shape=USER_IDENTITY), "maxTaskRetryCount": Prop("int", minimum=-1),
    "waitForSuccess": Prop("bool")})
SCHEDULING_POLICY = Shape("TaskSchedulingPolicy", {
    "nodeFillType": Prop("string", required=True, enum=NODE_FILL_TYPES),
    "jobDefaultOrder": Prop("string", enum=("none", "creationtime"))})
_TARGETS = {"targetDedicatedNodes": Prop("int", minimum=0), "targetLowPriorityNodes": Prop("int", minimum=0),
            "resizeTimeout": Prop("duration")}
POOL = Shape("PoolAddParameter", {
    **_TARGETS, "id": Prop("string", required=True), "displayName": Prop("string"),
    "vmSize": Prop("string", required=True),
    "virtualMachineConfiguration": Prop("object", required=True, shape=VM_CONFIGURATION),
    "enableAutoScale": Prop("bool"), "autoScaleFormula": Prop("string"), "autoScaleEvaluationInterval": Prop("duration"),
    "enableInterNodeCommunication": Prop("bool"), "startTask": Prop("object", shape=START_TASK),
    "taskSlotsPerNode": Prop("int", minimum=1, maximum=256),
    "taskSchedulingPolicy": Prop("object", shape=SCHEDULING_POLICY), "metadata": Prop("array", shape=METADATA_ITEM),
    "networkConfiguration": _unsupported(), "applicationPackageReferences": _unsupported("array"),
    "userAccounts": _unsupported("array"), "mountConfiguration": _unsupported("array"),
    "upgradePolicy": _unsupported()})
POOL_RESIZE = Shape("PoolResizeParameter", {
    **_TARGETS, "nodeDeallocationOption": Prop("string", enum=DEALLOCATION_OPTIONS)})
