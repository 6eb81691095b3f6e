"""Search-space distributions, written in YAML as one-key mappings like Azure ML's sweeps.

======================================  ==================================================
``{uniform: [lo, hi]}``                 any real in [lo, hi]
``{loguniform: [lo, hi]}``              log-uniform in [lo, hi]; lo and hi are the values
                                        themselves (not their logs, unlike Azure ML); 0 < lo
``{quniform: [lo, hi, q]}``             ``round(uniform(lo, hi) / q) * q``
``{qloguniform: [lo, hi, q]}``          ``round(loguniform(lo, hi) / q) * q``
``{normal: [mu, sigma]}``               Gaussian
``{lognormal: [mu, sigma]}``            ``exp(normal(mu, sigma))``: mu, sigma of the log
``{qnormal: [mu, sigma, q]}``           ``round(normal(mu, sigma) / q) * q``
``{randint: [lo, hi]}``                 an integer in [lo, hi): hi is exclusive, like range()
``{choice: [a, b, ...]}``               one of the listed values (any YAML values)
======================================  ==================================================

Every distribution maps a number ``u`` in [0, 1] to a value (``from_unit``, its inverse CDF),
which serves random sampling, Sobol sequences and Bayesian search alike. Quantized values are
ints when ``q`` is a whole number (``--batch 32``, not ``32.0``). ``grid()`` gives the finite
values (choice, randint, quniform, qloguniform) as a lazy sequence, or None when unbounded.
Numbers may be YAML strings such as ``"1e-3"`` (PyYAML reads that form as a string).
"""
from __future__ import annotations

import difflib
import math
import random
from collections.abc import Sequence
from decimal import Decimal
from statistics import NormalDist
from typing import Annotated, Any, ClassVar, Literal

from pydantic import PlainSerializer, PlainValidator, ValidationError, model_validator

from orchestrator.spec.common import StrictModel

_EDGE = 1e-12  # keeps u away from 0 and 1 where unbounded inverse CDFs are infinite


class QuantizedGrid(Sequence[int | float]):
    """The multiples ``k * q`` for k in [first, last], computed on access (never materialized)."""

    def __init__(self, first: int, last: int, q: float) -> None:
        self.first, self.last, self.q = first, last, q

    def __len__(self) -> int:
        return max(0, self.last - self.first + 1)

    def __getitem__(self, index: int) -> int | float:  # type: ignore[override]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("quantized grid index out of range")
        return quantize_multiple(self.first + index, self.q)


def quantize_multiple(k: int, q: float) -> int | float:
    """``k * q`` as an int when q is whole, else rounded to q's decimal places (0.1*3 -> 0.3)."""
    if float(q).is_integer():
        return int(k * int(q))
    places = max(0, -int(Decimal(repr(float(q))).as_tuple().exponent))
    return round(k * q, places)


def quantize(value: float, q: float) -> int | float:
    """``round(value / q) * q`` with the tidy output of ``quantize_multiple``."""
    return quantize_multiple(round(value / q), q)


class DistributionBase(StrictModel):
    """Common behaviour; subclasses hold typed fields and check their ranges."""

    arg_names: ClassVar[tuple[str, ...]] = ()
    usage: ClassVar[str] = ""

    def from_unit(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1]."""
        raise TypeError(f"{type(self).__name__} does not define from_unit")

    def sample(self, rng: random.Random) -> Any:
        """One random value drawn with ``rng`` (a local generator, never the global one)."""
        return self.from_unit(rng.random())

    def grid(self) -> Sequence[Any] | None:
        """All values in order when finite, else None."""
        return None

    def to_spec(self) -> dict[str, list[Any]]:
        """The YAML form, e.g. ``{"uniform": [0.0, 1.0]}``."""
        return {self.kind: [getattr(self, name) for name in self.arg_names]}  # type: ignore[attr-defined]


class Uniform(DistributionBase):
    kind: Literal["uniform"] = "uniform"
    low: float
    high: float
    arg_names: ClassVar[tuple[str, ...]] = ("low", "high")
    usage: ClassVar[str] = "[lo, hi] with lo < hi"

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        _require(self.low < self.high, f"{self.kind} needs lo < hi; got [{self.low}, {self.high}]")
        return self

    def from_unit(self, u: float) -> float:
        return self.low + u * (self.high - self.low)


class LogUniform(DistributionBase):
    kind: Literal["loguniform"] = "loguniform"
    low: float
    high: float
    arg_names: ClassVar[tuple[str, ...]] = ("low", "high")
    usage: ClassVar[str] = "[lo, hi] with 0 < lo < hi (the values themselves, not their logs)"

    @model_validator(mode="after")
    def _ordered(self) -> LogUniform:
        _require(0 < self.low < self.high,
                 f"{self.kind} needs 0 < lo < hi (actual values, not logs); got [{self.low}, {self.high}]")
        return self

    def from_unit(self, u: float) -> float:
        return math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))


class QUniform(Uniform):
    kind: Literal["quniform"] = "quniform"  # type: ignore[assignment]
    q: float
    arg_names: ClassVar[tuple[str, ...]] = ("low", "high", "q")
    usage: ClassVar[str] = "[lo, hi, q] with lo < hi and q > 0"

    @model_validator(mode="after")
    def _positive_q(self) -> QUniform:
        _require(self.q > 0, f"quniform needs q > 0; got q={self.q}")
        return self

    def from_unit(self, u: float) -> int | float:
        return quantize(super().from_unit(u), self.q)

    def grid(self) -> QuantizedGrid:
        return QuantizedGrid(round(self.low / self.q), round(self.high / self.q), self.q)


class QLogUniform(LogUniform):
    kind: Literal["qloguniform"] = "qloguniform"  # type: ignore[assignment]
    q: float
    arg_names: ClassVar[tuple[str, ...]] = ("low", "high", "q")
    usage: ClassVar[str] = "[lo, hi, q] with 0 < lo < hi and q > 0"

    @model_validator(mode="after")
    def _positive_q(self) -> QLogUniform:
        _require(self.q > 0, f"qloguniform needs q > 0; got q={self.q}")
        return self

    def from_unit(self, u: float) -> int | float:
        return quantize(super().from_unit(u), self.q)

    def grid(self) -> QuantizedGrid:
        return QuantizedGrid(round(self.low / self.q), round(self.high / self.q), self.q)


class Normal(DistributionBase):
    kind: Literal["normal"] = "normal"
    mu: float
    sigma: float
    arg_names: ClassVar[tuple[str, ...]] = ("mu", "sigma")
    usage: ClassVar[str] = "[mu, sigma] with sigma > 0"

    @model_validator(mode="after")
    def _positive_sigma(self) -> Normal:
        _require(self.sigma > 0, f"{self.kind} needs sigma > 0; got sigma={self.sigma}")
        return self

    def from_unit(self, u: float) -> float:
        return NormalDist(self.mu, self.sigma).inv_cdf(min(max(u, _EDGE), 1 - _EDGE))


class LogNormal(Normal):
    kind: Literal["lognormal"] = "lognormal"  # type: ignore[assignment]
    usage: ClassVar[str] = "[mu, sigma] of the log, sigma > 0"

    def from_unit(self, u: float) -> float:
        return math.exp(super().from_unit(u))


class QNormal(Normal):
    kind: Literal["qnormal"] = "qnormal"  # type: ignore[assignment]
    q: float
    arg_names: ClassVar[tuple[str, ...]] = ("mu", "sigma", "q")
    usage: ClassVar[str] = "[mu, sigma, q] with sigma > 0 and q > 0"

    @model_validator(mode="after")
    def _positive_q(self) -> QNormal:
        _require(self.q > 0, f"qnormal needs q > 0; got q={self.q}")
        return self

    def from_unit(self, u: float) -> int | float:
        return quantize(super().from_unit(u), self.q)


class RandInt(DistributionBase):
    kind: Literal["randint"] = "randint"
    low: int
    high: int
    arg_names: ClassVar[tuple[str, ...]] = ("low", "high")
    usage: ClassVar[str] = "[lo, hi]: an integer lo <= n < hi (hi exclusive)"

    @model_validator(mode="after")
    def _ordered(self) -> RandInt:
        _require(self.low < self.high, f"randint needs lo < hi (hi is exclusive); got [{self.low}, {self.high}]")
        return self

    def from_unit(self, u: float) -> int:
        return min(self.low + math.floor(u * (self.high - self.low)), self.high - 1)

    def grid(self) -> range:
        return range(self.low, self.high)


class Choice(DistributionBase):
    kind: Literal["choice"] = "choice"
    values: tuple[Any, ...]
    usage: ClassVar[str] = "[value, value, ...] with at least one value"

    @model_validator(mode="after")
    def _not_empty(self) -> Choice:
        _require(len(self.values) > 0, "choice needs at least one value")
        return self

    def from_unit(self, u: float) -> Any:
        return self.values[min(math.floor(u * len(self.values)), len(self.values) - 1)]

    def grid(self) -> tuple[Any, ...]:
        return self.values

    def to_spec(self) -> dict[str, list[Any]]:
        return {"choice": list(self.values)}


DISTRIBUTIONS: dict[str, type[DistributionBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (Uniform, LogUniform, QUniform, QLogUniform, Normal, LogNormal, QNormal, RandInt, Choice)
}
FINITE_KINDS = frozenset({"choice", "randint", "quniform", "qloguniform"})


def parse_distribution(data: object) -> DistributionBase:
    """``{name: [args]}`` (or a distribution object) to a distribution; ValueError says the fix."""
    if isinstance(data, DistributionBase):
        return data
    if not isinstance(data, dict) or len(data) != 1:
        raise ValueError(f"a distribution is a one-key mapping like {{uniform: [0, 1]}} or {{choice: [a, b]}}; "
                         f"got {data!r}")
    name, args = next(iter(data.items()))
    cls = DISTRIBUTIONS.get(name)
    if cls is None:
        close = difflib.get_close_matches(str(name), DISTRIBUTIONS, n=1)
        guess = f"did you mean {close[0]!r}? " if close else ""
        raise ValueError(f"unknown distribution {name!r}; {guess}known: {', '.join(DISTRIBUTIONS)}")
    if not isinstance(args, (list, tuple)):
        raise ValueError(f"{name} takes a list: {cls.usage}; got {args!r}")
    if cls is Choice:
        fields: dict[str, Any] = {"values": tuple(args)}
    else:
        if len(args) != len(cls.arg_names):
            raise ValueError(f"{name} takes {cls.usage}; got {list(args)!r}")
        fields = {arg: _number(value, name, arg, integer=cls is RandInt)
                  for arg, value in zip(cls.arg_names, args, strict=True)}
    try:
        return cls(**fields)
    except ValidationError as exc:
        raise ValueError("; ".join(_message(err) for err in exc.errors(include_url=False))) from None


def _number(value: object, name: str, arg: str, *, integer: bool) -> int | float:
    """A finite number from YAML (numeric strings like "1e-3" accepted)."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise ValueError(f"{name}: {arg} must be a finite number; got {value!r}")
    if integer:
        if not float(number).is_integer():
            raise ValueError(f"{name}: {arg} must be a whole number; got {value!r}")
        return int(number)
    return float(number)


def _message(err: Any) -> str:
    error = err.get("ctx", {}).get("error")
    return str(error) if error is not None else str(err["msg"])


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


Distribution = Annotated[
    DistributionBase,
    PlainValidator(parse_distribution, json_schema_input_type=dict[str, list[Any]]),
    PlainSerializer(lambda dist: dist.to_spec(), return_type=dict[str, list[Any]]),
]
"""Use in models: ``search_space: dict[str, Distribution]``; dumps back to the YAML form."""
