"""The ``task_factory`` models: Batch Shipyard's task factories, typed and checked on load.

A task factory turns one task into many. Exactly one kind per factory:

- ``parametric_sweep``: ``product`` (integer ranges, stop exclusive like ``range``; step may be
  negative, never 0), ``product_iterables`` (lists), ``combinations`` / ``permutations``
  (``iterable``, ``length``; combinations may set ``replacement``) or ``zip`` (lists of equal
  length). As in Shipyard, a string where a list is expected is iterated character by character.
- ``random``: ``generate`` values from ``integer: {start, stop, step}`` or from one
  ``distribution`` (uniform {a, b}, triangular {low, high, mode}, beta {alpha, beta},
  exponential {lambda}, gamma {alpha, beta}, gauss {mu, sigma}, lognormal {mu, sigma},
  pareto {alpha}, weibull {alpha, beta}: Python ``random.Random`` semantics); ``seed`` optional.
- ``repeat: N``: N identical trials.
- ``file``: one trial per file under ``local_path`` or ``blob_prefix``, filtered by ``include`` /
  ``exclude`` globs (fnmatch on the path relative to the root, ``*`` also crosses ``/``).
- ``custom``: ``module: "pkg.mod:function"`` (``"pkg.mod"`` means its ``generate``, as in
  Shipyard) called with ``args`` / ``kwargs`` (Shipyard's ``input_args`` / ``input_kwargs`` work).

Parametric sweeps, random and custom tuples are positional: ``{{0}}``, ``{{1}}``; ``names: [a, b]``
on the factory names them (``{{a}}``). File factories give ``url``, ``file_path``, ``file_name``,
``file_name_no_extension``; custom dicts give their own names.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

PARAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
Values = list[Any] | str


class FactoryModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def _exactly_one(self, names: Sequence[str], what: str) -> str:
        chosen = [name for name in names if getattr(self, name) is not None]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"{what} needs exactly one of: {', '.join(names)} (got {got})")
        return chosen[0]


class IntRange(FactoryModel):
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


class Combinations(FactoryModel):
    iterable: Values
    length: int = Field(ge=1)
    replacement: bool = False

    @model_validator(mode="after")
    def _possible(self) -> Combinations:
        if not self.replacement and self.length > len(self.iterable):
            raise ValueError(f"length {self.length} is more than the {len(self.iterable)} values in iterable; "
                             "lower it or set replacement: true")
        return self


class Permutations(FactoryModel):
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


class ParametricSweep(FactoryModel):
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
        self._exactly_one(self.kinds(), "parametric_sweep")
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


class _Positive(FactoryModel):
    @model_validator(mode="after")
    def _positive(self) -> _Positive:
        for name in ("alpha", "beta", "sigma"):
            value = getattr(self, name, None)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0; got {value}")
        return self


class UniformAB(FactoryModel):
    a: float
    b: float


class Triangular(FactoryModel):
    low: float
    high: float
    mode: float | None = None

    @model_validator(mode="after")
    def _mode_inside(self) -> Triangular:
        if self.mode is not None and not min(self.low, self.high) <= self.mode <= max(self.low, self.high):
            raise ValueError(f"mode {self.mode} must lie between low {self.low} and high {self.high}")
        return self


class AlphaBeta(_Positive):
    alpha: float
    beta: float


class Exponential(FactoryModel):
    lambd: float = Field(alias="lambda")

    @field_validator("lambd")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("lambda must not be 0 (it is 1 / the mean)")
        return value


class MuSigma(_Positive):
    mu: float
    sigma: float


class Pareto(_Positive):
    alpha: float


class RandomDistribution(FactoryModel):
    uniform: UniformAB | None = None
    triangular: Triangular | None = None
    beta: AlphaBeta | None = None
    exponential: Exponential | None = None
    gamma: AlphaBeta | None = None
    gauss: MuSigma | None = None
    lognormal: MuSigma | None = None
    pareto: Pareto | None = None
    weibull: AlphaBeta | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RandomDistribution:
        self._exactly_one(tuple(type(self).model_fields), "distribution")
        return self

    def sampler(self) -> Callable[[random.Random], float]:
        """A function drawing one value with the given generator."""
        d = self
        if d.uniform is not None:
            return lambda rng, p=d.uniform: rng.uniform(p.a, p.b)
        if d.triangular is not None:
            return lambda rng, p=d.triangular: rng.triangular(p.low, p.high, p.mode)
        if d.beta is not None:
            return lambda rng, p=d.beta: rng.betavariate(p.alpha, p.beta)
        if d.exponential is not None:
            return lambda rng, p=d.exponential: rng.expovariate(p.lambd)
        if d.gamma is not None:
            return lambda rng, p=d.gamma: rng.gammavariate(p.alpha, p.beta)
        if d.gauss is not None:
            return lambda rng, p=d.gauss: rng.gauss(p.mu, p.sigma)
        if d.lognormal is not None:
            return lambda rng, p=d.lognormal: rng.lognormvariate(p.mu, p.sigma)
        if d.pareto is not None:
            return lambda rng, p=d.pareto: rng.paretovariate(p.alpha)
        weibull = d.weibull
        assert weibull is not None
        return lambda rng, p=weibull: rng.weibullvariate(p.alpha, p.beta)


class RandomFactory(FactoryModel):
    generate: int = Field(ge=1)
    seed: int | None = None
    integer: IntRange | None = None
    distribution: RandomDistribution | None = None

    @model_validator(mode="after")
    def _one_source(self) -> RandomFactory:
        self._exactly_one(("integer", "distribution"), "random")
        return self


class FileFactory(FactoryModel):
    local_path: str | None = None
    blob_prefix: str | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    recursive: bool = True

    @model_validator(mode="after")
    def _one_root(self) -> FileFactory:
        self._exactly_one(("local_path", "blob_prefix"), "file")
        return self


class CustomFactory(FactoryModel):
    module: str
    args: list[Any] = Field(default_factory=list, validation_alias=AliasChoices("args", "input_args"))
    kwargs: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("kwargs", "input_kwargs"))

    @field_validator("module")
    @classmethod
    def _importable_form(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", value):
            raise ValueError(f"module {value!r} must look like 'package.module:function' "
                             "(or 'package.module', which calls its generate function)")
        return value

    def target(self) -> tuple[str, str]:
        """(module path, function name); the function defaults to ``generate``."""
        module, _, function = self.module.partition(":")
        return module, function or "generate"


class TaskFactory(FactoryModel):
    """Exactly one factory kind, plus optional ``names`` for positional parameters."""

    parametric_sweep: ParametricSweep | None = None
    random: RandomFactory | None = None
    repeat: int | None = Field(default=None, ge=1)
    file: FileFactory | None = None
    custom: CustomFactory | None = None
    names: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind_and_names(self) -> TaskFactory:
        kind = self._exactly_one(self.kinds(), "task_factory")
        if self.names is None:
            return self
        if kind in ("repeat", "file"):
            raise ValueError(f"names applies to positional factories; a {kind} factory has no positional parameters")
        bad = [name for name in self.names if not PARAM_NAME.match(name) or name.isdigit()]
        if bad:
            raise ValueError(f"names {bad} are not parameter names: use letters, digits, '_', '.', '-', "
                             "not only digits")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names {self.names} repeat a name; each must be unique")
        arity = self.arity()
        if arity is not None and arity != len(self.names):
            raise ValueError(f"names gives {len(self.names)} names but each trial of this {kind} factory "
                             f"has {arity} parameters")
        return self

    @staticmethod
    def kinds() -> tuple[str, ...]:
        return ("parametric_sweep", "random", "repeat", "file", "custom")

    def kind(self) -> str:
        return next(name for name in self.kinds() if getattr(self, name) is not None)

    def arity(self) -> int | None:
        """Positional parameters per trial; None when only expansion can tell (custom)."""
        if self.parametric_sweep is not None:
            return self.parametric_sweep.arity()
        if self.random is not None:
            return 1
        return 0 if self.custom is None else None
