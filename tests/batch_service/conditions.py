"""HTTP conditional headers (``If-Match``, ``If-None-Match``, ``If-Modified-Since``,
``If-Unmodified-Since``) checked against an entity's revision.

Reads answer 304 when not modified; writes answer 412 ``ConditionNotMet`` when the
precondition fails.
"""
from __future__ import annotations

from .errors import BatchApiError
from .http_messages import Request
from .revision import Revision
from .times import parse_http_date


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [value.strip().strip('"') for value in header.split(",")]
    return "*" in candidates or etag in candidates


def check_conditions(request: Request, revision: Revision, *, is_read: bool) -> None:
    """Raise 304/412 as Batch does when a conditional header is not satisfied."""
    modified = revision.last_modified.replace(microsecond=0)
    if_match = request.header("if-match")
    if if_match and not _etag_matches(if_match, revision.etag):
        raise BatchApiError("ConditionNotMet", status=412)
    unmodified_since = parse_http_date(request.header("if-unmodified-since") or "")
    if unmodified_since and modified > unmodified_since:
        raise BatchApiError("ConditionNotMet", status=412)
    if_none_match = request.header("if-none-match")
    if if_none_match and _etag_matches(if_none_match, revision.etag):
        raise BatchApiError("ConditionNotMet", status=304 if is_read else 412)
    modified_since = parse_http_date(request.header("if-modified-since") or "")
    if modified_since and modified <= modified_since:
        raise BatchApiError("ConditionNotMet", status=304 if is_read else 412)
