"""Pools with a managed identity, created through Azure Resource Manager.

Batch takes a pool's user-assigned identities only from the management plane ("Creating pools
with managed identities can only be performed with the Batch Management Plane APIs", Batch's
"Configure managed identities in Batch pools"); its data plane shows them read-only. So a pool
whose spec has ``azure.identity`` is created with ``PUT {management_url}{batch.resource_id}/pools/
<id>?api-version=2024-07-01`` (``If-None-Match: *``: a create, never an update), authenticated
with Entra ID (``DefaultAzureCredential``), from the same settings as a data-plane pool: the
data-plane body orch builds (``pool_model.pool_create_options``) is translated property by
property into the management body (``arm_body``). Everything else (waiting, resizing, deleting,
jobs) goes through the data plane as for any pool.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote

from orchestrator.backends.azure.credentials import BatchAccount
from orchestrator.backends.azure.retries import RetryPolicy, with_retries
from orchestrator.backends.azure.spec import PoolIdentity
from orchestrator.errors import AuthError

API_VERSION = "2024-07-01"
_ENUMS = {"dockerCompatible": "DockerCompatible", "criCompatible": "CriCompatible", "spread": "Spread",
          "pack": "Pack", "task": "Task", "pool": "Pool", "admin": "Admin", "nonadmin": "NonAdmin"}


def arm_body(pool: dict[str, Any], identity: PoolIdentity) -> dict[str, Any]:
    """The management-plane pool body for a data-plane pool create body (``as_dict()`` of it)."""
    properties: dict[str, Any] = {"vmSize": pool["vmSize"],
                                  "deploymentConfiguration": {"virtualMachineConfiguration": _vm(pool)},
                                  "scaleSettings": _scale(pool),
                                  "interNodeCommunication": "Enabled" if pool.get("enableInterNodeCommunication")
                                  else "Disabled"}
    for key in ("taskSlotsPerNode", "metadata"):
        if pool.get(key) is not None:
            properties[key] = pool[key]
    if pool.get("taskSchedulingPolicy"):
        properties["taskSchedulingPolicy"] = {"nodeFillType": _enum(pool["taskSchedulingPolicy"]["nodeFillType"])}
    if pool.get("startTask"):
        properties["startTask"] = _start_task(pool["startTask"])
    return {"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity.resource_id: {}}},
            "properties": properties}


def create(account: BatchAccount, pool: dict[str, Any], identity: PoolIdentity, *, credential: Any = None,
           policy: RetryPolicy | None = None) -> None:
    """Create the pool through Resource Manager (an existing pool is left as it is)."""
    if account.resource_id is None:
        raise AuthError(f"pool {pool['id']!r} has a managed identity, which Batch takes only through Azure Resource "
                        "Manager, and the credentials do not name the Batch account's resource id",
                        hint="add batch.resource_id (/subscriptions/<sub>/resourceGroups/<group>/providers/"
                             "Microsoft.Batch/batchAccounts/<name>) to credentials.yaml, or set "
                             "ORCH_BATCH_RESOURCE_ID; you sign in to Resource Manager with Entra ID")
    from azure.core import PipelineClient
    from azure.core.pipeline.policies import BearerTokenCredentialPolicy
    from azure.core.rest import HttpRequest

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    base = account.management_url.rstrip("/")
    client = PipelineClient(base, policies=[BearerTokenCredentialPolicy(credential, f"{base}/.default")])
    url = f"{base}{account.resource_id}/pools/{quote(pool['id'], safe='')}?api-version={API_VERSION}"
    request = HttpRequest("PUT", url, json=arm_body(pool, identity), headers={"If-None-Match": "*"})

    def send() -> None:
        response = client.send_request(request)
        if response.status_code != 412:  # 412: the pool exists already (a retried create)
            response.raise_for_status()

    with_retries(f"creating pool {pool['id']!r} through Azure Resource Manager", send, policy or RetryPolicy())


def _vm(pool: dict[str, Any]) -> dict[str, Any]:
    source = pool["virtualMachineConfiguration"]
    image = dict(source["imageReference"])
    if "virtualMachineImageId" in image:
        image = {"id": image.pop("virtualMachineImageId"), **image}
    vm: dict[str, Any] = {"imageReference": image, "nodeAgentSkuId": source["nodeAgentSKUId"]}
    containers = source.get("containerConfiguration")
    if containers:
        vm["containerConfiguration"] = {**containers, "type": _enum(containers["type"])}
    return vm


def _scale(pool: dict[str, Any]) -> dict[str, Any]:
    if pool.get("enableAutoScale"):
        auto = {"formula": pool["autoScaleFormula"]}
        if pool.get("autoScaleEvaluationInterval"):
            auto["evaluationInterval"] = pool["autoScaleEvaluationInterval"]
        return {"autoScale": auto}
    fixed = {key: pool[key] for key in ("targetDedicatedNodes", "targetLowPriorityNodes", "resizeTimeout")
             if pool.get(key) is not None}
    return {"fixedScale": fixed}


def _start_task(task: dict[str, Any]) -> dict[str, Any]:
    out = {key: task[key] for key in ("commandLine", "environmentSettings", "waitForSuccess", "maxTaskRetryCount")
           if task.get(key) is not None}
    auto = (task.get("userIdentity") or {}).get("autoUser")
    if auto:
        out["userIdentity"] = {"autoUser": {key: _enum(value) for key, value in auto.items()}}
    return out


def _enum(value: str) -> str:
    """Management-plane enums are PascalCase where the data plane's are camelCase or lower case."""
    return _ENUMS.get(value, _ENUMS.get(value.lower(), value))
