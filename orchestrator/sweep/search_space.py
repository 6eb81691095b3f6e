"""Trials from a ``search_space``: grid, random or Sobol sampling, streamed one at a time.

- ``grid``: the product of every distribution's finite values (choice values, randint's
  integers, the q-multiples of quniform/qloguniform), the last parameter varying fastest.
  Nothing is materialized: a grid of 10^12 points costs no memory until iterated.
- ``random``: each value is ``from_unit(u)`` with u from ``random.Random(seed)``.
- ``sobol``: scrambled Sobol points from ``scipy.stats.qmc.Sobol`` seeded with ``seed``, one
  dimension per parameter, mapped through each distribution's inverse CDF.

Same space, sampling and seed give the same trials on any machine. Bayesian search needs
results between trials, so it lives in ``orchestrator.sweep.bayes``.
"""
from __future__ import annotations

import itertools
import math
import random
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from orchestrator.spec.distributions import DistributionBase
from orchestrator.sweep.trial import Trial

SOBOL_BATCH = 1024  # a power of two keeps Sobol's balance properties


def iter_product(axes: Sequence[Sequence[Any]]) -> Iterator[tuple[Any, ...]]:
    """Like ``itertools.product`` but reads the axes by index instead of copying them."""
    sizes = [len(axis) for axis in axes]
    if any(size == 0 for size in sizes):
        return
    positions = [0] * len(axes)
    current = [axis[0] for axis in axes]
    while True:
        yield tuple(current)
        axis_number = len(axes) - 1
        while axis_number >= 0:
            positions[axis_number] += 1
            if positions[axis_number] < sizes[axis_number]:
                current[axis_number] = axes[axis_number][positions[axis_number]]
                break
            positions[axis_number] = 0
            current[axis_number] = axes[axis_number][0]
            axis_number -= 1
        if axis_number < 0:
            return


def grid_axes(space: Mapping[str, DistributionBase]) -> list[Sequence[Any]]:
    """Each parameter's finite values; ValueError naming the continuous ones."""
    axes = [dist.grid() for dist in space.values()]
    continuous = [name for name, axis in zip(space, axes, strict=True) if axis is None]
    if continuous:
        raise ValueError(f"grid sampling needs finite distributions; {', '.join(continuous)} are continuous: "
                         "use sampling: random or sobol")
    return [axis for axis in axes if axis is not None]


def count_search_space(space: Mapping[str, DistributionBase], sampling: str, *, limit: int | None) -> int | None:
    """How many trials ``expand_search_space`` yields, without expanding; None when unbounded."""
    if sampling == "grid":
        total = math.prod(len(axis) for axis in grid_axes(space))
        return total if limit is None else min(total, limit)
    return limit


def expand_search_space(space: Mapping[str, DistributionBase], sampling: str, *, seed: int,
                        limit: int | None) -> Iterator[Trial]:
    """Stream trials 0, 1, ... (at most ``limit``); random and sobol need a ``limit``."""
    names = list(space)
    if sampling == "grid":
        points: Iterator[Sequence[Any]] = iter_product(grid_axes(space))
    elif sampling in ("random", "sobol"):
        if limit is None:
            raise ValueError(f"{sampling} sampling needs a limit (limits.max_total_trials)")
        points = _random_points(space, seed) if sampling == "random" else _sobol_points(space, seed, limit)
    else:
        raise ValueError(f"sampling {sampling!r} cannot be expanded up front; use orchestrator.sweep.bayes.BayesianSearch")
    for index, values in enumerate(itertools.islice(points, limit)):
        yield Trial(index=index, params=dict(zip(names, values, strict=True)))


def _random_points(space: Mapping[str, DistributionBase], seed: int) -> Iterator[list[Any]]:
    rng = random.Random(seed)
    dists = list(space.values())
    while True:
        yield [dist.sample(rng) for dist in dists]


def _sobol_points(space: Mapping[str, DistributionBase], seed: int, count: int) -> Iterator[list[Any]]:
    dists = list(space.values())
    for row in sobol_units(len(dists), seed, count):
        yield [dist.from_unit(float(u)) for dist, u in zip(dists, row, strict=True)]


def sobol_units(dimensions: int, seed: int, count: int) -> Iterator[Sequence[float]]:
    """``count`` scrambled Sobol points in [0, 1)^dimensions, drawn in batches (scipy, lazily imported)."""
    from scipy.stats import qmc

    try:
        engine = qmc.Sobol(d=dimensions, scramble=True, rng=seed)
    except TypeError:  # scipy < 1.15 names the argument seed
        engine = qmc.Sobol(d=dimensions, scramble=True, seed=seed)
    remaining = count
    while remaining > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            batch = engine.random(SOBOL_BATCH)
        for row in batch[:remaining]:
            yield row.tolist()
        remaining -= SOBOL_BATCH
