"""From a parsed request to a response: faults, size limit, Shared Key, api-version, routing.

Order per Batch API request: a ``before`` fault answers at once; a body over
``max_body_bytes`` gets 413 ``RequestBodyTooLarge``; then authentication (Shared Key, or a
job token as ``Authorization: Bearer``, see ``job_tokens``), the api-version
check and the route. An ``after`` fault replaces the real response once the request has
taken effect. Every Batch API request is logged. ``/_admin`` requests skip all of this.
A ``None`` result means: drop the connection without answering.
"""
from __future__ import annotations

import traceback

from .auth import SharedKeyVerifier
from .context import ServiceContext
from .errors import BatchApiError
from .faults import FaultRule
from .http_messages import Request, Response
from .routing import Router

ADMIN_PREFIX = "/_admin"


def error_response(error: BatchApiError, request: Request) -> Response:
    """The Batch error response for ``error`` (body-less for 304)."""
    if error.status == 304:
        return Response.empty(304, error.headers)
    return Response.json(error.status, error.body(request.base_url, request.request_id), error.headers)


class RequestDispatcher:
    """Routes requests to the Batch API or the admin API."""

    def __init__(self, ctx: ServiceContext, verifier: SharedKeyVerifier, batch_routes: Router,
                 admin_routes: Router) -> None:
        self.ctx = ctx
        self.verifier = verifier
        self.batch_routes = batch_routes
        self.admin_routes = admin_routes

    def dispatch(self, request: Request, *, body_too_large: bool) -> Response | None:
        """The response to send, or None to drop the connection."""
        if request.raw_path == ADMIN_PREFIX or request.raw_path.startswith(ADMIN_PREFIX + "/"):
            return self._route(self.admin_routes, request)
        before = self.ctx.faults.pick(request.method, request.raw_path, "before")
        if before is not None:
            return self._log(request, self._fault_response(before, request), before)
        if body_too_large:
            limit = self.ctx.state.settings.max_body_bytes
            error = BatchApiError("RequestBodyTooLarge", values=[("MaxLimit", str(limit))])
            return self._log(request, error_response(error, request), None)
        response = self._batch(request)
        after = self.ctx.faults.pick(request.method, request.raw_path, "after")
        if after is not None:
            return self._log(request, self._fault_response(after, request), after)
        return self._log(request, response, None)

    def _batch(self, request: Request) -> Response:
        try:
            authorization = request.headers.get("authorization", "")
            if authorization.startswith("Bearer "):
                self.ctx.state.job_tokens.verify(request.raw_path, authorization)
            else:
                self.verifier.verify(request.method, request.raw_path, request.raw_query, request.headers)
            self._check_api_version(request)
        except BatchApiError as error:
            return error_response(error, request)
        return self._route(self.batch_routes, request)

    def _check_api_version(self, request: Request) -> None:
        version = request.param("api-version")
        if not version:
            raise BatchApiError("MissingRequiredQueryParameter", values=[("QueryParameterName", "api-version")])
        if version not in self.ctx.state.settings.supported_api_versions:
            raise BatchApiError("UnsupportedRequestVersion",
                                values=[("QueryParameterName", "api-version"), ("QueryParameterValue", version)])

    @staticmethod
    def _route(router: Router, request: Request) -> Response:
        try:
            handler, request.path_params = router.resolve(request.method, request.raw_path)
            return handler(request)
        except BatchApiError as error:
            return error_response(error, request)
        except Exception as exc:  # an unexpected bug answers like Batch's internal error, and is shown
            traceback.print_exc()
            return error_response(BatchApiError("InternalError", f"Unexpected error: {exc!r}"), request)

    @staticmethod
    def _fault_response(rule: FaultRule, request: Request) -> Response | None:
        return None if rule.kind == "drop" else error_response(rule.error(), request)

    def _log(self, request: Request, response: Response | None, fault: FaultRule | None) -> Response | None:
        status = response.status if response is not None else 0
        self.ctx.requests.record(request.method, request.raw_path, status, fault.kind if fault else None)
        return response
