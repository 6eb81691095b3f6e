"""Requests and responses between the HTTP layer and the handlers, and the response shapes
Batch uses: created (201), entity (200 with ETag), accepted/no content, and OData lists.

Lists are in id order (callers sort), as Batch's are, at most ``page_size`` items a page. The
``odata.nextLink`` carries a ``$skiptoken`` encoding the offset, ``$select`` and page size (hex of
JSON, so it survives any re-quoting by clients); following it needs no server-side cursor.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .errors import BatchApiError
from .timekeeping import Revision

JSON_CONTENT_TYPE = "application/json;odata=minimalmetadata"


@dataclass
class Request:
    """One parsed HTTP request.

    ``raw_path`` is the path as sent (percent-encoded, no query); ``query`` maps each parameter
    to its decoded values; ``headers`` keys are lower-case; ``path_params`` holds the decoded
    ``{name}`` segments of the matched route; ``request_id`` is reported in ``request-id``.
    """

    method: str
    raw_path: str
    raw_query: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    base_url: str
    request_id: str = ""
    path_params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str | None:
        """First value of query parameter ``name`` (matched case-insensitively)."""
        values = next((v for k, v in self.query.items() if k.lower() == name.lower()), None)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 InvalidRequestBody when empty, not JSON or not an object."""
        if not self.body:
            raise BatchApiError("InvalidRequestBody", "The request body is empty.")
        try:
            body = json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BatchApiError("InvalidRequestBody", f"The request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise BatchApiError("InvalidRequestBody", "The request body must be a JSON object.")
        return body


@dataclass
class Response:
    """A response to send: status, headers (besides the standard ones) and body bytes."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON response with Batch's content type."""
        return cls(status, json.dumps(payload).encode("utf-8"), {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})})

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        """A response without a body."""
        return cls(status, b"", dict(headers or {}))


def error_response(error: BatchApiError, request: Request) -> Response:
    """The Batch error response for ``error``."""
    return Response.json(error.status, error.body(request.base_url, request.request_id), error.headers)


def created(revision: Revision, url: str) -> Response:
    """201 for a created entity, with its entity headers and ``Location``."""
    return Response.empty(201, {**revision.headers(), "DataServiceId": url, "Location": url})


def entity(request: Request, body: dict[str, Any], revision: Revision, url: str, metadata: str) -> Response:
    """200 with an entity's JSON and its ``ETag``/``Last-Modified``/``DataServiceId``."""
    payload = {"odata.metadata": f"{request.base_url}/$metadata#{metadata}", **body}
    return Response.json(200, payload, {**revision.headers(), "DataServiceId": url})


def status_only(status: int, revision: Revision | None = None, url: str | None = None) -> Response:
    """An empty 200/202/204 response, with entity headers when given."""
    return Response.empty(status, {**revision.headers(), "DataServiceId": url} if revision and url else {})


def select_fields(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    """Only the comma-separated top-level properties in ``select`` (all when None)."""
    if not select:
        return item
    wanted = [name.strip() for name in select.split(",") if name.strip()]
    return {name: item[name] for name in wanted if name in item}


def list_response(request: Request, items: Iterable[dict[str, Any]], *, metadata_name: str,
                  page_size: int) -> Response:
    """200 with one page of ``items`` (``$select`` applied) and a next link when more remain."""
    offset, select, size = 0, request.param("$select"), page_size
    token = request.param("$skiptoken")
    if token:
        try:
            state = json.loads(bytes.fromhex(token).decode("utf-8"))
            offset, select, size = int(state["offset"]), state.get("select"), int(state["size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BatchApiError("InvalidQueryParameterValue", values=[
                ("QueryParameterName", "$skiptoken"), ("QueryParameterValue", token)]) from exc
    everything = list(items)
    body: dict[str, Any] = {"odata.metadata": f"{request.base_url}/$metadata#{metadata_name}",
                            "value": [select_fields(item, select) for item in everything[offset:offset + size]]}
    if offset + size < len(everything):
        token = json.dumps({"offset": offset + size, "select": select, "size": size}).encode("utf-8").hex()
        version = quote(request.param("api-version") or "")
        body["odata.nextLink"] = f"{request.base_url}{request.raw_path}?api-version={version}&$skiptoken={token}"
    return Response.json(200, body)
