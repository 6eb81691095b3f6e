"""Managed identities: the token endpoint nodes ask (as on an Azure VM), and tokens checked on use.

An Azure VM gets Entra ID tokens for its managed identities from the instance metadata service:
``GET http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=R``
(plus ``client_id``, ``msi_res_id`` or ``object_id`` to pick a user-assigned identity) with the
header ``Metadata: true``. azure-identity's ``ManagedIdentityCredential`` (through msal) sends
exactly that, to ``$AZURE_POD_IDENTITY_AUTHORITY_HOST`` instead of 169.254.169.254 when set. So
this service answers the same request at ``<url>/nodes/<pool>/<node>/metadata/identity/oauth2/
token`` with the identities of the node's pool (every process on a node gets
``AZURE_POD_IDENTITY_AUTHORITY_HOST=<url>/nodes/<pool>/<node>``), and at ``<url>/metadata/
identity/oauth2/token`` for the machine the tests run on (``settings.operator_identity``), as IMDS
does: 400 without the ``Metadata`` header, 400 when there is no such identity, or several and none
is named; the answer carries ``access_token``, ``expires_in``, ``expires_on``, ``resource``,
``client_id`` and ``token_type``.

Tokens are opaque, bound to an identity (client id) and a resource, and expire after
``settings.token_lifetime_s``. Batch's data plane takes one for ``https://batch.core.windows.net/``
whose identity has a role on the account (``settings.batch_role_identities``; None: every
identity): 401 for an unknown, expired or wrong-audience token, 403 without a role. Resource
Manager (``arm``) takes one for ``https://management.azure.com/`` (or this service's own URL).
"""
from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .errors import BatchApiError
from .http_messages import Request, Response
from .routing import Router
from .settings import ServiceSettings
from .state import BatchState

TOKEN_PATH = "/metadata/identity/oauth2/token"
BATCH_RESOURCE = "https://batch.core.windows.net"
ARM_RESOURCE = "https://management.azure.com"


@dataclass(frozen=True)
class Token:
    client_id: str
    resource: str
    expires_at: float


def principal_id(client_id: str) -> str:
    """A stable object (principal) id for a client id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"orch-local-principal:{client_id}"))


class Identities:
    """Issues tokens at the identity endpoints and checks them when they are used."""

    def __init__(self, state: BatchState, settings: ServiceSettings) -> None:
        self.state, self.settings = state, settings
        self._lock = threading.Lock()
        self._tokens: dict[str, Token] = {}

    def register(self, router: Router) -> None:
        router.add("GET", TOKEN_PATH, self.host_token)
        router.add("GET", "/nodes/{poolId}/{nodeId}" + TOKEN_PATH, self.node_token)

    @staticmethod
    def handles(raw_path: str) -> bool:
        return raw_path.rstrip("/").endswith(TOKEN_PATH)

    # -- the token endpoints --------------------------------------------------------------
    def host_token(self, request: Request) -> Response:
        operator = self.settings.operator_identity
        return self._answer(request, [operator] if operator else [], {})

    def node_token(self, request: Request) -> Response:
        with self.state.lock:
            node = self.state.find_node(request.path_params["poolId"], request.path_params["nodeId"])
            if node is None or node.state == "preempted":
                return _imds_error(400, "invalid_request", "Identity not found")
            pool = self.state.pools[node.pool_id.lower()]
            identities = {item["clientId"]: item["resourceId"] for item in pool.identities}
        return self._answer(request, list(identities), identities)

    def _answer(self, request: Request, client_ids: list[str], resources: dict[str, str]) -> Response:
        if request.header("metadata") != "true":
            return _imds_error(400, "invalid_request", "Required metadata header not specified")
        resource = request.param("resource")
        if not resource:
            return _imds_error(400, "invalid_request", "Required audience parameter not specified")
        wanted = _wanted(request, client_ids, resources)
        if wanted is None:
            several = len(client_ids) > 1 and not any(request.param(k) for k in ("client_id", "msi_res_id", "mi_res_id",
                                                                                  "object_id"))
            return _imds_error(400, "invalid_request", "Multiple user assigned identities exist, please specify the "
                                                       "clientId / resourceId of the identity in the token request"
                               if several else "Identity not found")
        token = secrets.token_urlsafe(32)
        lifetime = int(self.settings.token_lifetime_s)
        with self._lock:
            self._tokens[token] = Token(wanted, resource.rstrip("/"), time.time() + lifetime)
        now = int(time.time())
        return Response.json(200, {"access_token": token, "client_id": wanted, "expires_in": str(lifetime),
                                   "expires_on": str(now + lifetime), "ext_expires_in": str(lifetime),
                                   "not_before": str(now), "resource": resource, "token_type": "Bearer"})

    # -- checks on use --------------------------------------------------------------------
    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens

    def check(self, token: str, audiences: tuple[str, ...]) -> Token:
        """The token if it is valid for one of ``audiences``; 401 otherwise."""
        with self._lock:
            found = self._tokens.get(token)
        if found is None:
            raise _unauthorized("The access token is not valid.")
        if found.expires_at <= time.time():
            raise _unauthorized("The access token has expired.")
        if found.resource not in {audience.rstrip("/") for audience in audiences}:
            raise _unauthorized(f"The access token was issued for {found.resource}, not this service.")
        return found

    def authorize_batch(self, token: str) -> None:
        """A data-plane request with an identity's token: its audience, then its role on the account."""
        found = self.check(token, (BATCH_RESOURCE,))
        allowed = self.settings.batch_role_identities
        if allowed is not None and found.client_id not in allowed:
            raise BatchApiError("AuthorizationFailure", status=403, values=[
                ("AuthorizationErrorDetail", f"The client '{found.client_id}' does not have a role on the Batch "
                                             "account that allows this operation.")])


def _wanted(request: Request, client_ids: list[str], resources: dict[str, str]) -> str | None:
    """The identity a token request names (by client id, resource id or object id), or the only one."""
    client_id, resource_id = request.param("client_id"), request.param("msi_res_id") or request.param("mi_res_id")
    object_id = request.param("object_id")
    if client_id:
        return client_id if client_id in client_ids else None
    if resource_id:
        return next((c for c, r in resources.items() if r.lower() == unquote(resource_id).lower()), None)
    if object_id:
        return next((c for c in client_ids if principal_id(c) == object_id), None)
    return client_ids[0] if len(client_ids) == 1 else None


def _imds_error(status: int, error: str, description: str) -> Response:
    return Response.json(status, {"error": error, "error_description": description})


def _unauthorized(detail: str) -> BatchApiError:
    return BatchApiError("AuthenticationFailed", status=401, headers={"WWW-Authenticate": "Bearer"},
                         values=[("AuthenticationErrorDetail", detail)])


def identity_json(resource_id: str, client_id: str) -> dict[str, Any]:
    """One user-assigned identity of a pool as Batch shows it."""
    return {"resourceId": resource_id, "clientId": client_id, "principalId": principal_id(client_id)}
