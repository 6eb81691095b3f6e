"""The part of Azure Resource Manager this service plays: creating a pool with managed identities.

Batch takes a pool's user-assigned identities only through its management API ("Creating pools
with managed identities can only be performed with the Batch Management Plane APIs"); its data
plane shows them read-only (``identity`` on a pool; an add body that names it is refused like
any property the type lacks). So this service serves the management API's ``Pool_Create``:

``PUT /subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Batch/batchAccounts/
{account}/pools/{pool}?api-version=2024-07-01`` with a bearer token for Resource Manager
(``identity``), for this account only (``settings.subscription_id``, ``resource_group``, its name:
404 ``ResourceNotFound`` otherwise). The body names things as the management API does
(``properties.deploymentConfiguration.virtualMachineConfiguration``, ``scaleSettings.fixedScale``
or ``autoScale``, ``interNodeCommunication: Enabled|Disabled``, PascalCase enums, ``identity:
{type: UserAssigned, userAssignedIdentities: {<resource id>: {}}}``); it is translated to the
data-plane body and held to the same rules (a data-plane refusal answers in Resource Manager's
error shape, with the data-plane code). Identities must exist (``settings.identities``: 400
``InvalidParameter``); ``If-None-Match: *`` on an existing pool: 412. The answer is the ``Pool``
resource, its identities with ``clientId`` and ``principalId``. Properties orch does not send are
refused (400 ``InvalidRequestContent``) rather than ignored.
"""
from __future__ import annotations

from typing import Any

from .errors import BatchApiError
from .http_messages import Request, Response
from .identity import ARM_RESOURCE, Identities, identity_json
from .pools import PoolEngine
from .routing import Router
from .state import BatchState

API_VERSIONS = ("2024-07-01",)
POOL_PATH = ("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Batch/batchAccounts/{account}"
             "/pools/{pool}")
_PROPERTIES = {"vmSize", "deploymentConfiguration", "scaleSettings", "interNodeCommunication", "taskSlotsPerNode",
               "taskSchedulingPolicy", "metadata", "startTask", "displayName"}


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def response(self) -> Response:
        return Response.json(self.status, {"error": {"code": self.code, "message": self.message}})


class ResourceManager:
    """``Pool_Create`` of the Batch management API (see the module docstring)."""

    def __init__(self, state: BatchState, pools: PoolEngine, identities: Identities) -> None:
        self.state, self.pools, self.identities = state, pools, identities

    def register(self, router: Router) -> None:
        router.add("PUT", POOL_PATH, self.create_pool, ("api-version",))

    @staticmethod
    def handles(raw_path: str) -> bool:
        return raw_path.startswith("/subscriptions/")

    def create_pool(self, request: Request) -> Response:
        try:
            self._authorize(request)
            self._check_account(request)
            body = request.json_object()
            identities = self._identities(body.get("identity"))
            spec = data_plane_body(request.path_params["pool"], body.get("properties"))
            with self.state.lock:
                exists = request.path_params["pool"].lower() in self.state.pools
            if exists and request.header("if-none-match") == "*":
                raise ArmError(412, "PreconditionFailed", "The pool exists and If-None-Match is '*'.")
            pool = self.pools.create_pool(spec, identities=identities)
        except ArmError as error:
            return error.response()
        except BatchApiError as error:
            detail = "; ".join(f"{key}: {value}" for key, value in error.values)
            return ArmError(error.status, error.code, f"{error.message} {detail}".strip()).response()
        return Response.json(200, self._resource(request, pool.id, spec, identities))

    def _authorize(self, request: Request) -> None:
        authorization = request.header("authorization") or ""
        if not authorization.startswith("Bearer "):
            raise ArmError(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        try:
            self.identities.check(authorization[7:].strip(), (ARM_RESOURCE, self.state.base_url))
        except BatchApiError as error:
            raise ArmError(401, "InvalidAuthenticationToken", str(error.values[-1][1])) from None
        if (request.param("api-version") or "") not in API_VERSIONS:
            raise ArmError(400, "InvalidApiVersionParameter", f"The api-version must be one of {API_VERSIONS}.")

    def _check_account(self, request: Request) -> None:
        settings, params = self.state.settings, request.path_params
        if (params["sub"].lower(), params["group"].lower(), params["account"].lower()) != (
                settings.subscription_id.lower(), settings.resource_group.lower(), self.state.account.lower()):
            raise ArmError(404, "ResourceNotFound", f"The Batch account {params['account']} was not found.")

    def _identities(self, identity: Any) -> list[dict[str, Any]]:
        if identity is None or (isinstance(identity, dict) and identity.get("type") == "None"):
            return []
        if not isinstance(identity, dict) or identity.get("type") != "UserAssigned":
            raise ArmError(400, "InvalidParameter", "identity.type must be UserAssigned or None.")
        known = {key.lower(): (key, value) for key, value in self.state.settings.identities.items()}
        out = []
        for resource_id in identity.get("userAssignedIdentities") or {}:
            if resource_id.lower() not in known:
                raise ArmError(400, "InvalidParameter", f"The user-assigned identity {resource_id} was not found.")
            out.append(identity_json(*known[resource_id.lower()]))
        return out

    def _resource(self, request: Request, pool_id: str, spec: dict[str, Any],
                  identities: list[dict[str, Any]]) -> dict[str, Any]:
        body: dict[str, Any] = {"id": request.raw_path, "name": pool_id, "type": "Microsoft.Batch/batchAccounts/pools",
                                "properties": {"vmSize": spec["vmSize"], "provisioningState": "Succeeded",
                                               "allocationState": "Resizing"}}
        if identities:
            body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {
                item["resourceId"]: {"principalId": item["principalId"], "clientId": item["clientId"]}
                for item in identities}}
        return body


def data_plane_body(pool_id: str, properties: Any) -> dict[str, Any]:
    """The data-plane pool body for a management ``properties`` object."""
    if not isinstance(properties, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content has no properties object.")
    unknown = sorted(set(properties) - _PROPERTIES)
    if unknown:
        raise ArmError(400, "InvalidRequestContent", f"Properties not offered by this local service: {unknown}.")
    vm = dict((properties.get("deploymentConfiguration") or {}).get("virtualMachineConfiguration") or {})
    image = dict(vm.get("imageReference") or {})
    if "id" in image:
        image["virtualMachineImageId"] = image.pop("id")
    vm_body: dict[str, Any] = {"imageReference": image, "nodeAgentSKUId": vm.get("nodeAgentSkuId")}
    if vm.get("containerConfiguration"):
        containers = dict(vm["containerConfiguration"])
        vm_body["containerConfiguration"] = {**containers, "type": _camel(str(containers.get("type") or ""))}
    body: dict[str, Any] = {"id": pool_id, "vmSize": properties.get("vmSize"), "virtualMachineConfiguration": vm_body,
                            "enableInterNodeCommunication": properties.get("interNodeCommunication") == "Enabled"}
    body.update(_scale(properties.get("scaleSettings") or {}))
    for key in ("taskSlotsPerNode", "metadata", "displayName"):
        if properties.get(key) is not None:
            body[key] = properties[key]
    if properties.get("taskSchedulingPolicy"):
        body["taskSchedulingPolicy"] = {"nodeFillType": _camel(properties["taskSchedulingPolicy"]["nodeFillType"])}
    if properties.get("startTask"):
        body["startTask"] = _start_task(properties["startTask"])
    return body


def _scale(scale: dict[str, Any]) -> dict[str, Any]:
    if scale.get("autoScale"):
        auto = scale["autoScale"]
        out = {"enableAutoScale": True, "autoScaleFormula": auto.get("formula")}
        if auto.get("evaluationInterval"):
            out["autoScaleEvaluationInterval"] = auto["evaluationInterval"]
        return out
    fixed = scale.get("fixedScale") or {"targetDedicatedNodes": 0}
    return {key: fixed[key] for key in ("targetDedicatedNodes", "targetLowPriorityNodes", "resizeTimeout")
            if fixed.get(key) is not None}


def _start_task(task: dict[str, Any]) -> dict[str, Any]:
    out = {key: task[key] for key in ("commandLine", "environmentSettings", "waitForSuccess", "maxTaskRetryCount")
           if task.get(key) is not None}
    auto = (task.get("userIdentity") or {}).get("autoUser")
    if auto:
        out["userIdentity"] = {"autoUser": {key: str(value).lower() for key, value in auto.items()}}
    return out


def _camel(value: str) -> str:
    return value[:1].lower() + value[1:]
