"""Bayesian search that can take back trials it proposed before (a restarted sweep controller).

``ReplayableSearch.replay(params)`` registers a trial whose parameters are already fixed, as the
next asked trial, so a fresh search can be told the results of trials an earlier controller
launched. Each value is mapped back into the space ``BayesianSearch`` searches in: a position for
``choice``, a grid position for ``randint``/``quniform``, and for every other distribution the
quantile u with ``from_unit(u)`` closest to the value (found by bisection: ``from_unit`` is
monotone, so this also inverts quantized and normal distributions).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from orchestrator.spec.distributions import Choice, DistributionBase, QUniform, RandInt
from orchestrator.sweep.bayes import BayesianSearch
from orchestrator.sweep.trial import Trial

BISECTION_STEPS = 60


class ReplayableSearch(BayesianSearch):
    """``BayesianSearch`` plus ``replay``; see the module docstring."""

    def replay(self, params: Mapping[str, Any]) -> Trial:
        """The next trial, with ``params`` (missing or foreign values are proposed afresh)."""
        fixed = {}
        for name, dist in self.search_space.items():
            if name in params:
                position = search_position(dist, params[name])
                if position is not None:
                    fixed[name] = position
        self._study.enqueue_trial(fixed, skip_if_exists=False)
        return self.ask()


def search_position(dist: DistributionBase, value: Any) -> int | float | None:
    """Where ``value`` sits in the space ``BayesianSearch`` suggests ``dist`` in, or None."""
    if isinstance(dist, Choice):
        return next((position for position, option in enumerate(dist.values) if option == value), None)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    if isinstance(dist, (RandInt, QUniform)):
        grid = dist.grid()
        return min(range(len(grid)), key=lambda position: abs(grid[position] - value))
    return unit_of(dist, float(value))


def unit_of(dist: DistributionBase, value: float) -> float:
    """The u in [0, 1] whose ``from_unit(u)`` is closest to ``value``."""
    low, high = 0.0, 1.0
    for _ in range(BISECTION_STEPS):
        middle = (low + high) / 2
        if dist.from_unit(middle) < value:
            low = middle
        else:
            high = middle
    return min((low, high), key=lambda u: abs(dist.from_unit(u) - value))
