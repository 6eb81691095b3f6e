"""Route table: maps a method and a percent-encoded path to a handler and its path parameters.

Templates look like ``/pools/{poolId}/nodes/{nodeId}``; ``{filePath*}`` takes the rest of the
path, so file paths work whether the client encoded their slashes as ``%2F`` or not. Segments
are split on the raw path before decoding, so an encoded slash stays inside its segment.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from .errors import BatchApiError
from .http_messages import Request, Response

Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One method + template and its handler."""

    method: str
    segments: tuple[str, ...]
    handler: Handler

    def match(self, raw_segments: list[str]) -> dict[str, str] | None:
        """The decoded path parameters when ``raw_segments`` fit this template, else None."""
        params: dict[str, str] = {}
        for index, template in enumerate(self.segments):
            if template.startswith("{") and template.endswith("*}"):
                rest = raw_segments[index:]
                if not rest or not all(rest):
                    return None
                params[template[1:-2]] = unquote("/".join(rest))
                return params
            if index >= len(raw_segments):
                return None
            segment = raw_segments[index]
            if template.startswith("{"):
                if not segment:
                    return None
                params[template[1:-1]] = unquote(segment)
            elif template.lower() != unquote(segment).lower():
                return None
        return params if len(raw_segments) == len(self.segments) else None


class Router:
    """Ordered routes; the first template that fits wins."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """Register ``handler`` for ``method`` on ``template``."""
        segments = tuple(part for part in template.strip("/").split("/"))
        self._routes.append(Route(method.upper(), segments, handler))

    def resolve(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
        """Handler and path parameters; 405 when only other methods fit, 400 InvalidUri when none."""
        raw_segments = raw_path.strip("/").split("/") if raw_path.strip("/") else []
        path_fits = False
        for route in self._routes:
            params = route.match(raw_segments)
            if params is None:
                continue
            if route.method == method.upper():
                return route.handler, params
            path_fits = True
        if path_fits:
            raise BatchApiError("UnsupportedHttpVerb", values=[("HttpVerb", method)])
        raise BatchApiError("InvalidUri", values=[("RequestUri", raw_path)])
