"""Validation helpers for request bodies, raising Batch's 400 errors."""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import invalid_property, missing_property
from .times import parse_duration

_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def require(body: dict[str, Any], name: str, prefix: str = "") -> Any:
    """``body[name]``, or 400 MissingRequiredProperty when absent or null."""
    value = body.get(name)
    if value is None or value == "":
        raise missing_property(prefix + name)
    return value


def check_id(value: Any, name: str = "id") -> str:
    """An id of letters, digits, hyphens and underscores, at most 64 characters."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        raise invalid_property(name, "The id may contain letters, digits, hyphens and underscores, "
                                     "and must be 1 to 64 characters long.")
    return value


def check_int(body: dict[str, Any], name: str, *, minimum: int | None = None, maximum: int | None = None,
              prefix: str = "") -> int | None:
    """An optional integer within bounds."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid_property(prefix + name, "The value must be an integer.")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise invalid_property(prefix + name, f"The value must be between {minimum} and {maximum}.")
    return value


def check_bool(body: dict[str, Any], name: str, prefix: str = "") -> bool | None:
    """An optional boolean."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid_property(prefix + name, "The value must be a boolean.")
    return value


def check_string(body: dict[str, Any], name: str, prefix: str = "") -> str | None:
    """An optional string."""
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_property(prefix + name, "The value must be a string.")
    return value


def check_enum(body: dict[str, Any], name: str, allowed: Iterable[str], prefix: str = "") -> str | None:
    """An optional string that must be one of ``allowed`` (case-insensitive); returned lower-case."""
    value = check_string(body, name, prefix)
    if value is None:
        return None
    options = tuple(allowed)
    if value.lower() not in options:
        raise invalid_property(prefix + name, f"The value must be one of: {', '.join(options)}.")
    return value.lower()


def check_duration(body: dict[str, Any], name: str, prefix: str = "") -> str | None:
    """An optional ISO-8601 duration string."""
    value = check_string(body, name, prefix)
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise invalid_property(prefix + name, "The value must be an ISO-8601 duration.") from exc
    return value


def check_object(body: dict[str, Any], name: str, prefix: str = "") -> dict[str, Any] | None:
    """An optional JSON object."""
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise invalid_property(prefix + name, "The value must be an object.")
    return value


def check_list(body: dict[str, Any], name: str, prefix: str = "") -> list[Any]:
    """An optional JSON array (empty when absent)."""
    value = body.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_property(prefix + name, "The value must be an array.")
    return value
