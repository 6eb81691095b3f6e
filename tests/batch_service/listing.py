"""OData list responses: ``$filter``, ``$select``, ``maxresults`` paging and ``odata.nextLink``.

Lists are in id order (callers sort), as Batch's are. The next link carries a ``$skiptoken``
that encodes the offset and the original filter, select and page size (hex of JSON, so it
survives any re-quoting by clients); following it needs no server-side cursor.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from .errors import invalid_query
from .http_messages import Request, Response
from .odata_filter import compile_filter


def select_fields(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    """Keep only the comma-separated top-level properties in ``select`` (all when None)."""
    if not select:
        return item
    wanted = [name.strip() for name in select.split(",") if name.strip()]
    return {name: item[name] for name in wanted if name in item}


def _page_options(request: Request, max_page_size: int) -> tuple[int, str | None, str | None, int]:
    token = request.param("$skiptoken")
    if token:
        try:
            state = json.loads(bytes.fromhex(token).decode("utf-8"))
            return int(state["offset"]), state.get("filter"), state.get("select"), int(state["size"])
        except (ValueError, KeyError, TypeError) as exc:
            raise invalid_query("$skiptoken", token, "The skip token is not valid.") from exc
    raw_size = request.param("maxresults")
    size = max_page_size
    if raw_size is not None:
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= max_page_size:
            raise invalid_query("maxresults", raw_size, f"maxresults must be between 1 and {max_page_size}.")
        size = int(raw_size)
    return 0, request.param("$filter"), request.param("$select"), size


def list_response(
    request: Request, items: Iterable[dict[str, Any]], *, metadata_name: str, max_page_size: int
) -> Response:
    """A 200 OData list of ``items`` (entity JSON) for ``request``'s query options."""
    offset, filter_text, select, size = _page_options(request, max_page_size)
    predicate = compile_filter(filter_text)
    matching = [item for item in items if predicate(item)]
    page = matching[offset : offset + size]
    body: dict[str, Any] = {
        "odata.metadata": f"{request.base_url}/$metadata#{metadata_name}",
        "value": [select_fields(item, select) for item in page],
    }
    if offset + size < len(matching):
        state = {"offset": offset + size, "filter": filter_text, "select": select, "size": size}
        token = json.dumps(state).encode("utf-8").hex()
        api_version = request.param("api-version") or ""
        body["odata.nextLink"] = (
            f"{request.base_url}{request.raw_path}?api-version={quote(api_version)}&$skiptoken={token}"
        )
    return Response.json(200, body)
