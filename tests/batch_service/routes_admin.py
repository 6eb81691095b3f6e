"""Test-only admin routes under ``/_admin`` (no authentication, never faulted or logged).

* ``POST /_admin/faults`` ``{"kind": "429"|"500"|"503"|"drop", "path": regex, "method": "POST",
  "count": N, "probability": p, "seed": s, "retry_after": seconds, "timing": "before"|"after"}``
  → 201 with the rule; ``GET`` lists rules; ``DELETE`` removes them all.
* ``GET /_admin/requests[?method=POST&path=regex]`` → ``{"value": [{method, path, status, fault, time}],
  "count": N}``; ``DELETE`` clears the log.
* ``GET /_admin/settings`` / ``POST /_admin/settings`` (partial update) → the settings.
"""
from __future__ import annotations

from typing import Any, cast

from .context import ServiceContext
from .errors import BatchApiError
from .faults import FaultKind
from .http_messages import Request, Response
from .routing import Router

_FAULT_OPTIONS = {"path": "path_pattern", "method": "method", "count": "count", "probability": "probability",
                  "seed": "seed", "retry_after": "retry_after_s", "timing": "timing"}


class AdminRoutes:
    """Handlers of the admin API."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        """Add the admin routes to ``router``."""
        router.add("POST", "/_admin/faults", self.add_fault)
        router.add("GET", "/_admin/faults", self.list_faults)
        router.add("DELETE", "/_admin/faults", self.clear_faults)
        router.add("GET", "/_admin/requests", self.list_requests)
        router.add("DELETE", "/_admin/requests", self.clear_requests)
        router.add("GET", "/_admin/settings", self.get_settings)
        router.add("POST", "/_admin/settings", self.update_settings)

    def add_fault(self, request: Request) -> Response:
        body = request.json_object()
        unknown = set(body) - set(_FAULT_OPTIONS) - {"kind"}
        if unknown:
            raise BatchApiError("InvalidRequestBody", f"Unknown fault options: {sorted(unknown)}")
        options: dict[str, Any] = {_FAULT_OPTIONS[key]: value for key, value in body.items() if key != "kind"}
        try:
            rule = self.ctx.faults.add(cast(FaultKind, str(body.get("kind"))), **options)
        except (ValueError, TypeError) as exc:
            raise BatchApiError("InvalidRequestBody", str(exc)) from exc
        return Response.json(201, rule.describe())

    def list_faults(self, request: Request) -> Response:
        return Response.json(200, {"value": self.ctx.faults.describe()})

    def clear_faults(self, request: Request) -> Response:
        self.ctx.faults.clear()
        return Response.empty(204)

    def list_requests(self, request: Request) -> Response:
        records = self.ctx.requests.entries(method=request.param("method"), path_pattern=request.param("path"))
        return Response.json(200, {"value": [record.as_json() for record in records], "count": len(records)})

    def clear_requests(self, request: Request) -> Response:
        self.ctx.requests.clear()
        return Response.empty(204)

    def get_settings(self, request: Request) -> Response:
        return Response.json(200, self.ctx.state.settings.as_json())

    def update_settings(self, request: Request) -> Response:
        try:
            self.ctx.state.settings.update(request.json_object())
        except (ValueError, TypeError) as exc:
            raise BatchApiError("InvalidRequestBody", str(exc)) from exc
        return Response.json(200, self.ctx.state.settings.as_json())
