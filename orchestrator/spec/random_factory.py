"""Random task factories: ``generate`` values from an integer range or one distribution.

The distributions and their parameters are Python's ``random.Random`` methods: uniform {a, b},
triangular {low, high, mode}, beta {alpha, beta}, exponential {lambda}, gamma {alpha, beta},
gauss {mu, sigma}, lognormal {mu, sigma}, pareto {alpha}, weibull {alpha, beta}.
"""
from __future__ import annotations

import random
from collections.abc import Callable

from pydantic import Field, field_validator, model_validator

from orchestrator.spec.common import StrictModel
from orchestrator.spec.parametric import IntRange


class _Positive(StrictModel):
    @model_validator(mode="after")
    def _positive(self) -> _Positive:
        for name in ("alpha", "beta", "sigma"):
            value = getattr(self, name, None)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be > 0; got {value}")
        return self


class UniformAB(StrictModel):
    a: float
    b: float

    def draw(self, rng: random.Random) -> float:
        return rng.uniform(self.a, self.b)


class Triangular(StrictModel):
    low: float
    high: float
    mode: float | None = None

    @model_validator(mode="after")
    def _mode_inside(self) -> Triangular:
        if self.mode is not None and not min(self.low, self.high) <= self.mode <= max(self.low, self.high):
            raise ValueError(f"mode {self.mode} must lie between low {self.low} and high {self.high}")
        return self

    def draw(self, rng: random.Random) -> float:
        return rng.triangular(self.low, self.high, self.mode)


class Beta(_Positive):
    alpha: float
    beta: float

    def draw(self, rng: random.Random) -> float:
        return rng.betavariate(self.alpha, self.beta)


class Gamma(Beta):
    def draw(self, rng: random.Random) -> float:
        return rng.gammavariate(self.alpha, self.beta)


class Weibull(Beta):
    def draw(self, rng: random.Random) -> float:
        return rng.weibullvariate(self.alpha, self.beta)


class Exponential(StrictModel):
    lambd: float = Field(alias="lambda")

    @field_validator("lambd")
    @classmethod
    def _non_zero(cls, value: float) -> float:
        if value == 0:
            raise ValueError("lambda must not be 0 (it is 1 / the mean)")
        return value

    def draw(self, rng: random.Random) -> float:
        return rng.expovariate(self.lambd)


class Gauss(_Positive):
    mu: float
    sigma: float

    def draw(self, rng: random.Random) -> float:
        return rng.gauss(self.mu, self.sigma)


class LogNormal(Gauss):
    def draw(self, rng: random.Random) -> float:
        return rng.lognormvariate(self.mu, self.sigma)


class Pareto(_Positive):
    alpha: float

    def draw(self, rng: random.Random) -> float:
        return rng.paretovariate(self.alpha)


class RandomDistribution(StrictModel):
    uniform: UniformAB | None = None
    triangular: Triangular | None = None
    beta: Beta | None = None
    exponential: Exponential | None = None
    gamma: Gamma | None = None
    gauss: Gauss | None = None
    lognormal: LogNormal | None = None
    pareto: Pareto | None = None
    weibull: Weibull | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> RandomDistribution:
        self.exactly_one(tuple(type(self).model_fields), "distribution")
        return self

    def sampler(self) -> Callable[[random.Random], float]:
        """The chosen distribution's ``draw(rng)``."""
        chosen = getattr(self, self.exactly_one(tuple(type(self).model_fields), "distribution"))
        return chosen.draw  # type: ignore[no-any-return]


class RandomFactory(StrictModel):
    generate: int = Field(ge=1)
    seed: int | None = None
    integer: IntRange | None = None
    distribution: RandomDistribution | None = None

    @model_validator(mode="after")
    def _one_source(self) -> RandomFactory:
        self.exactly_one(("integer", "distribution"), "random")
        return self

    def sampler(self) -> Callable[[random.Random], int | float]:
        """A function drawing one value with the given generator."""
        if self.integer is not None:
            span = self.integer.as_range()
            return lambda rng: rng.randrange(span.start, span.stop, span.step)
        assert self.distribution is not None
        return self.distribution.sampler()
