"""Parametric sweeps of a task factory (and the base and integer range all factory models share).

``product`` (integer ranges, stop exclusive like ``range``; step may be negative, never 0),
``product_iterables`` (lists), ``combinations`` / ``permutations`` (``iterable``, ``length``;
combinations may set ``replacement``) or ``zip`` (lists of equal length). As in Batch Shipyard,
a string where a list is expected is iterated character by character.
"""
from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from orchestrator.spec.common import StrictModel

PARAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
Values = list[Any] | str


class IntRange(StrictModel):
    """Integers like ``range(start, stop, step)``: stop exclusive, step non-zero (may be negative)."""

    start: int
    stop: int
    step: int = 1

    @model_validator(mode="after")
    def _not_empty(self) -> IntRange:
        if self.step == 0:
            raise ValueError("step must not be 0; use a positive step to count up or a negative one to count down")
        if not self.as_range():
            raise ValueError(f"range start={self.start} stop={self.stop} step={self.step} is empty "
                             "(stop is exclusive; step must point from start toward stop)")
        return self

    def as_range(self) -> range:
        return range(self.start, self.stop, self.step)


def _non_empty_lists(value: list[Values], what: str) -> list[Values]:
    if not value:
        raise ValueError(f"{what} needs at least one list of values")
    for position, values in enumerate(value):
        if len(values) == 0:
            raise ValueError(f"{what}[{position}] is empty; give at least one value")
    return value


class Combinations(StrictModel):
    iterable: Values
    length: int = Field(ge=1)
    replacement: bool = False

    @model_validator(mode="after")
    def _possible(self) -> Combinations:
        if not self.replacement and self.length > len(self.iterable):
            raise ValueError(f"length {self.length} is more than the {len(self.iterable)} values in iterable; "
                             "lower it or set replacement: true")
        return self


class Permutations(StrictModel):
    iterable: Values
    length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _possible(self) -> Permutations:
        if len(self.iterable) == 0:
            raise ValueError("iterable is empty; give at least one value")
        if self.length is not None and self.length > len(self.iterable):
            raise ValueError(f"length {self.length} is more than the {len(self.iterable)} values in iterable")
        return self

    def effective_length(self) -> int:
        return self.length if self.length is not None else len(self.iterable)


class ParametricSweep(StrictModel):
    product: list[IntRange] | None = Field(default=None, min_length=1)
    product_iterables: list[Values] | None = None
    combinations: Combinations | None = None
    permutations: Permutations | None = None
    zip: list[Values] | None = None

    @field_validator("product_iterables")
    @classmethod
    def _iterables(cls, value: list[Values]) -> list[Values]:
        return _non_empty_lists(value, "product_iterables")

    @field_validator("zip")
    @classmethod
    def _zip_lists(cls, value: list[Values]) -> list[Values]:
        lengths = [len(values) for values in _non_empty_lists(value, "zip")]
        if len(set(lengths)) > 1:
            raise ValueError(f"zip lists have different lengths {lengths}; make them equal "
                             "(values past the shortest would be dropped)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ParametricSweep:
        self.exactly_one(self.kinds(), "parametric_sweep")
        return self

    @staticmethod
    def kinds() -> tuple[str, ...]:
        return ("product", "product_iterables", "combinations", "permutations", "zip")

    def kind(self) -> str:
        return next(name for name in self.kinds() if getattr(self, name) is not None)

    def arity(self) -> int:
        """How many positional parameters each trial gets."""
        if self.product is not None:
            return len(self.product)
        if self.product_iterables is not None:
            return len(self.product_iterables)
        if self.combinations is not None:
            return self.combinations.length
        if self.permutations is not None:
            return self.permutations.effective_length()
        return len(self.zip or [])
