"""The request and response values that flow between the HTTP layer and the routes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import BatchApiError

JSON_CONTENT_TYPE = "application/json;odata=minimalmetadata"


@dataclass
class Request:
    """One parsed HTTP request.

    ``raw_path`` is the path exactly as sent (percent-encoded, no query); ``query`` maps each
    parameter to its decoded values; ``headers`` keys are lower-case; ``path_params`` holds the
    decoded ``{name}`` segments of the matched route; ``request_id`` is the id the response
    reports in its ``request-id`` header.
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
        """First value of query parameter ``name`` (exact name first, then case-insensitive)."""
        values = self.query.get(name)
        if values is None:
            lowered = name.lower()
            values = next((v for k, v in self.query.items() if k.lower() == lowered), None)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """A header value by case-insensitive name."""
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body parsed as JSON; 400 InvalidRequestBody when it is not JSON."""
        if not self.body:
            raise BatchApiError("InvalidRequestBody", "The request body is empty.")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BatchApiError("InvalidRequestBody", f"The request body is not valid JSON: {exc}") from exc

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object; 400 InvalidRequestBody otherwise."""
        body = self.json()
        if not isinstance(body, dict):
            raise BatchApiError("InvalidRequestBody", "The request body must be a JSON object.")
        return body


@dataclass
class Response:
    """A response to send: status, headers (without the standard ones) and body bytes."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON response with Batch's content type."""
        all_headers = {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})}
        return cls(status, json.dumps(payload).encode("utf-8"), all_headers)

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        """A response without a body."""
        return cls(status, b"", dict(headers or {}))
