"""Checking a request body against the shape Batch's REST API gives it (``shapes`` holds the shapes).

A ``Shape`` is one API type: its name (as Batch names it in errors) and its properties. Walking a
body against it answers as Batch does, first problem first:

- a property the type does not have: 400 ``InvalidRequestBody`` (Batch's OData reader refuses
  names a type does not define), naming the property and the type;
- a value of the wrong JSON type (a string for an integer, a number for a boolean...): 400
  ``InvalidRequestBody``;
- a required property absent or null: 400 ``MissingRequiredProperty``;
- a value outside an enum, a range or the ISO-8601 duration syntax: 400 ``InvalidPropertyValue``;
- a property only some accounts have (``feature``): 403 ``Forbidden`` unless the account has it;
- a property this local service does not model (``unsupported``): 400 ``UnsupportedProperty``.

Property names in errors are key paths from the body's root (``jobManagerTask.constraints.
maxWallClockTime``, ``resourceFiles[1].httpUrl``). Null values count as absent, as in OData.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import (
    BatchApiError,
    invalid_property,
    missing_property,
    unsupported_property,
)
from .timekeeping import parse_duration

Kind = Literal["string", "int", "bool", "duration", "object", "array"]
_EDM = {"string": "Edm.String", "int": "Edm.Int32", "bool": "Edm.Boolean", "duration": "Edm.Duration",
        "object": "a complex type", "array": "a collection"}


@dataclass(frozen=True)
class Prop:
    """One property: its JSON kind and the rules its value follows.

    ``shape`` is the type of an object (or of each item of an array of objects); ``items`` the
    kind of each item of an array of scalars. ``enum`` values compare case-insensitively.
    """

    kind: Kind
    required: bool = False
    enum: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    shape: Shape | None = None
    items: Kind | None = None
    feature: str | None = None
    unsupported: str | None = None


@dataclass(frozen=True)
class Shape:
    """An API type: its name and properties."""

    name: str
    props: Mapping[str, Prop] = field(default_factory=dict)


def forbidden(name: str) -> BatchApiError:
    """403 for a property the account does not have enabled (as Batch answers for ``maxParallelTasks``)."""
    return BatchApiError("Forbidden", status=403, values=[
        ("Reason", f"Property {name} is not enabled for current account")])


def bad_body(path: str, reason: str) -> BatchApiError:
    """400 InvalidRequestBody naming the property and why the body could not be read."""
    return BatchApiError("InvalidRequestBody", values=[("PropertyName", path), ("Reason", reason)])


def check(body: Any, shape: Shape, features: Collection[str], path: str = "") -> None:
    """Raise Batch's error for the first problem of ``body`` as a ``shape`` (see the module docstring)."""
    if not isinstance(body, dict):
        raise bad_body(path or shape.name, f"Expected {shape.name} as a JSON object.")
    for name in body:
        if name not in shape.props:
            raise bad_body(_join(path, name), f"The property '{name}' does not exist on type '{shape.name}'; "
                                              "only properties the type defines may be given.")
    for name, prop in shape.props.items():
        value = body.get(name)
        where = _join(path, name)
        if value is None:
            if prop.required:
                raise missing_property(where)
            continue
        if prop.feature is not None and prop.feature not in features:
            raise forbidden(prop.feature)
        if prop.unsupported is not None:
            raise unsupported_property(where, prop.unsupported)
        check_value(value, prop, features, where)


def check_value(value: Any, prop: Prop, features: Collection[str], where: str) -> None:
    """One non-null value against its property's rules."""
    _check_kind(value, prop.kind, where)
    if prop.kind == "object" and prop.shape is not None:
        check(value, prop.shape, features, where)
    elif prop.kind == "array":
        for index, item in enumerate(value):
            item_path = f"{where}[{index}]"
            if prop.shape is not None:
                check(item, prop.shape, features, item_path)
            elif prop.items is not None:
                if item is None:
                    raise bad_body(item_path, "Collection items may not be null.")
                check_value(item, Prop(prop.items, enum=prop.enum), features, item_path)
    elif prop.enum and value.lower() not in {choice.lower() for choice in prop.enum}:
        raise invalid_property(where, f"The value must be one of: {', '.join(prop.enum)}.")
    elif prop.kind == "int":
        low, high = prop.minimum, prop.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise invalid_property(where, f"The value must be {bounds}.")
    elif prop.kind == "duration":
        try:
            parse_duration(value)
        except ValueError:
            raise invalid_property(where, "The value must be an ISO-8601 duration such as PT1H30M.") from None


def _check_kind(value: Any, kind: Kind, where: str) -> None:
    fits = {"string": isinstance(value, str), "duration": isinstance(value, str),
            "int": isinstance(value, int) and not isinstance(value, bool), "bool": isinstance(value, bool),
            "object": isinstance(value, dict), "array": isinstance(value, list)}[kind]
    if not fits:
        raise bad_body(where, f"Cannot convert the value {value!r} to the expected type {_EDM[kind]}.")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
