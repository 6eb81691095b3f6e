"""From a parsed request to a response (``/_admin`` requests skip all but routing).

The identity endpoint and Resource Manager (``identity``, ``arm``) have their own routes and
answers. Per Batch API request: a ``before`` fault answers at once; a body over ``max_body_bytes``
gets 413; then authentication (Shared Key, or as ``Bearer`` a job token or a managed identity's
token), the api-version, the route
(400 ``InvalidUri`` when no operation serves the path, 405 ``UnsupportedHttpVerb`` for another
method) and its options: a query parameter the operation does not take (``$filter``,
``maxresults``...) gets 400 ``UnsupportedQueryParameter``, a conditional header (``If-Match``...)
400 ``UnsupportedHeader``. An ``after`` fault replaces the response once the request took
effect. Every Batch API request is logged. In templates (``/pools/{poolId}``) ``{filePath*}``
takes the rest of the path, so clients may encode its slashes as ``%2F`` or not.
"""
from __future__ import annotations

import re
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from .auth import JobTokens, SharedKeyVerifier
from .errors import BatchApiError
from .faults import FaultInjector, FaultRule, RequestLog
from .http_messages import Request, Response, error_response
from .settings import ServiceSettings

Handler = Callable[[Request], Response]
ADMIN_PREFIX = "/_admin"
ALWAYS_ACCEPTED = ("api-version", "timeout")  # ``timeOut``: this service always answers within it
UNSUPPORTED_HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")
_NOT_OFFERED = ("Reason", "Not offered by this local Batch service.")


@dataclass(frozen=True)
class Route:
    """One method, path pattern (from the template), handler, and the query options it takes."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    query: tuple[str, ...] = ()


def _pattern(template: str) -> re.Pattern[str]:
    """``{name}`` matches one raw segment, ``{name*}`` one or more; literals match case-insensitively."""
    parts = []
    for segment in template.strip("/").split("/"):
        if segment.endswith("*}"):
            parts.append(f"(?P<{segment[1:-2]}>[^/]+(?:/[^/]+)*)")
        elif segment.startswith("{"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(f"(?i:{re.escape(segment)})")
    return re.compile("/".join(parts))


class Router:
    """Ordered routes; the first template that fits wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler, query: tuple[str, ...] = ()) -> None:
        """Serve ``method`` on ``template`` with ``handler``, which takes the ``query`` options."""
        self._routes.append(Route(method.upper(), _pattern(template), handler, query))

    def resolve(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        """The route and its decoded path parameters; 405 when only other methods fit, 400 InvalidUri
        when none. Segments are split on the raw path, so an encoded slash stays inside its segment."""
        path_fits = False
        for route in self._routes:
            match = route.pattern.fullmatch(raw_path.strip("/"))
            if match and route.method == method.upper():
                return route, {name: unquote(value) for name, value in match.groupdict().items()}
            path_fits = path_fits or match is not None
        if path_fits:
            raise BatchApiError("UnsupportedHttpVerb", values=[("HttpVerb", method)])
        raise BatchApiError("InvalidUri", values=[("RequestUri", raw_path)])


@dataclass(frozen=True)
class OtherService:
    """Requests that are not Batch's (the identity endpoint, Resource Manager): which paths, their
    routes, and their own answer when no route fits."""

    handles: Callable[[str], bool]
    routes: Router
    not_found: Callable[[], Response]


class RequestDispatcher:
    """Answers Batch API and admin requests (see the module docstring)."""

    def __init__(self, settings: ServiceSettings, verifier: SharedKeyVerifier, tokens: JobTokens,
                 faults: FaultInjector, log: RequestLog, batch_routes: Router, admin_routes: Router,
                 bearer: Callable[[str], None] | None = None, others: tuple[OtherService, ...] = ()) -> None:
        """``bearer`` checks a bearer token that is not a job token (a managed identity's)."""
        self.settings, self.verifier, self.tokens, self.bearer = settings, verifier, tokens, bearer
        self.faults, self.log = faults, log
        self.batch_routes, self.admin_routes, self.others = batch_routes, admin_routes, others

    def dispatch(self, request: Request, *, body_too_large: bool) -> Response | None:
        """The response to send, or None to drop the connection."""
        if request.raw_path == ADMIN_PREFIX or request.raw_path.startswith(ADMIN_PREFIX + "/"):
            try:
                route, request.path_params = self.admin_routes.resolve(request.method, request.raw_path)
            except BatchApiError as error:
                return error_response(error, request)
            return _run(route.handler, request)
        other = next((service for service in self.others if service.handles(request.raw_path)), None)
        if other is not None:
            try:
                route, request.path_params = other.routes.resolve(request.method, request.raw_path)
            except BatchApiError:
                return other.not_found()
            return _run(route.handler, request)
        before = self.faults.pick(request.method, request.raw_path, "before")
        if before is not None:
            return self._logged(request, _fault_response(before, request), before)
        if body_too_large:
            error = BatchApiError("RequestBodyTooLarge", values=[("MaxLimit", str(self.settings.max_body_bytes))])
            return self._logged(request, error_response(error, request), None)
        response = self._batch(request)
        after = self.faults.pick(request.method, request.raw_path, "after")
        if after is not None:
            return self._logged(request, _fault_response(after, request), after)
        return self._logged(request, response, None)

    def _batch(self, request: Request) -> Response:
        try:
            authorization = request.headers.get("authorization", "")
            token = authorization[7:].strip() if authorization.startswith("Bearer ") else None
            if token is not None and self.bearer is not None and not self.tokens.knows(token):
                self.bearer(token)
            elif token is not None:
                self.tokens.verify(request.raw_path, authorization)
            else:
                self.verifier.verify(request.method, request.raw_path, request.raw_query, request.headers)
            self._check_api_version(request)
            route, request.path_params = self.batch_routes.resolve(request.method, request.raw_path)
            _check_options(request, route)
        except BatchApiError as error:
            return error_response(error, request)
        return _run(route.handler, request)

    def _check_api_version(self, request: Request) -> None:
        version = request.param("api-version")
        if not version:
            raise BatchApiError("MissingRequiredQueryParameter", values=[("QueryParameterName", "api-version")])
        if version not in self.settings.supported_api_versions:
            raise BatchApiError("UnsupportedRequestVersion",
                                values=[("QueryParameterName", "api-version"), ("QueryParameterValue", version)])

    def _logged(self, request: Request, response: Response | None, fault: FaultRule | None) -> Response | None:
        self.log.record(request.method, request.raw_path, response.status if response else 0,
                        fault.kind if fault else None)
        return response


def _check_options(request: Request, route: Route) -> None:
    """400 for a query parameter the operation does not take, or a conditional header."""
    for name, values in request.query.items():
        if name.lower() not in ALWAYS_ACCEPTED + route.query:
            raise BatchApiError("UnsupportedQueryParameter", values=[
                ("QueryParameterName", name), ("QueryParameterValue", values[0] if values else ""), _NOT_OFFERED])
    for name in UNSUPPORTED_HEADERS:
        if name in request.headers:
            raise BatchApiError("UnsupportedHeader", values=[("HeaderName", name), _NOT_OFFERED])


def _run(handler: Handler, request: Request) -> Response:
    try:
        return handler(request)
    except BatchApiError as error:
        return error_response(error, request)
    except Exception as exc:  # a bug answers like Batch's internal error, and is shown
        traceback.print_exc()
        return error_response(BatchApiError("InternalError", f"Unexpected error: {exc!r}"), request)


def _fault_response(rule: FaultRule, request: Request) -> Response | None:
    return None if rule.kind == "drop" else error_response(rule.error(), request)
