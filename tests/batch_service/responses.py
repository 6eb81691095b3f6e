"""Response shapes shared by the routes (create, entity, accepted, no content)."""
from __future__ import annotations

from typing import Any

from .http_messages import Request, Response
from .listing import select_fields
from .revision import Revision


def entity_headers(revision: Revision, url: str) -> dict[str, str]:
    """``ETag``, ``Last-Modified`` and ``DataServiceId`` of an entity."""
    return {**revision.headers(), "DataServiceId": url}


def created(revision: Revision, url: str) -> Response:
    """201 for a created entity, with its ETag/Last-Modified/DataServiceId/Location."""
    return Response.empty(201, {**entity_headers(revision, url), "Location": url})


def entity(request: Request, body: dict[str, Any], revision: Revision, url: str, metadata: str) -> Response:
    """200 with an entity's JSON (``$select`` applied) and its headers."""
    selected = select_fields(body, request.param("$select"))
    payload = {"odata.metadata": f"{request.base_url}/$metadata#{metadata}", **selected}
    return Response.json(200, payload, entity_headers(revision, url))


def status_only(status: int, revision: Revision | None = None, url: str | None = None) -> Response:
    """An empty 200/202/204 response, with entity headers when given."""
    headers = entity_headers(revision, url) if revision is not None and url is not None else {}
    return Response.empty(status, headers)
