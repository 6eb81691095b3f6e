"""Bayesian search over a ``search_space`` with optuna's TPE sampler, one trial at a time.

``ask()`` proposes the next trial, ``tell(index, value)`` reports its objective value (None
when the trial failed or reported nothing usable). optuna is imported on first use and its
logging is kept quiet. Same seed and same told values give the same proposals.

Each parameter is searched in the space TPE handles best: ``choice`` as a categorical over its
positions, ``randint`` and ``quniform`` as integers over their grid positions, and every other
distribution through a number u in [0, 1] mapped by the distribution's inverse CDF (for
loguniform that is exactly a log-scale search).
"""
from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from typing import Any

from orchestrator.spec.distributions import Choice, DistributionBase, QUniform, RandInt
from orchestrator.spec.sweep import Objective
from orchestrator.sweep.trial import Trial


class BayesianSearch:
    """Ask/tell TPE search; trial indices count up from 0 in ask order."""

    def __init__(self, search_space: Mapping[str, DistributionBase], objective: Objective,
                 seed: int | None = None) -> None:
        optuna = _quiet_optuna()
        self.search_space = dict(search_space)
        self.objective = objective
        self._optuna = optuna
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sampler = optuna.samplers.TPESampler(seed=seed)
        direction = "maximize" if objective.goal == "maximize" else "minimize"
        self._study = optuna.create_study(direction=direction, sampler=sampler)
        self._pending: dict[int, Any] = {}
        self._results: dict[int, tuple[Trial, float | None]] = {}
        self._asked = 0

    def ask(self) -> Trial:
        """The next trial to run."""
        optuna_trial = self._study.ask()
        params = {name: _suggest(optuna_trial, name, dist) for name, dist in self.search_space.items()}
        trial = Trial(index=self._asked, params=params)
        self._pending[trial.index] = (optuna_trial, trial)
        self._asked += 1
        return trial

    def tell(self, index: int, value: float | None) -> None:
        """Report trial ``index``'s objective value; None or a non-finite value marks it failed."""
        if index not in self._pending:
            state = "already told" if index in self._results else "never asked"
            raise ValueError(f"trial {index} was {state}")
        optuna_trial, trial = self._pending.pop(index)
        usable = value is not None and math.isfinite(value)
        if usable:
            self._study.tell(optuna_trial, float(value))  # type: ignore[arg-type]
        else:
            self._study.tell(optuna_trial, state=self._optuna.trial.TrialState.FAIL)
        self._results[index] = (trial, float(value) if usable else None)  # type: ignore[arg-type]

    def best(self) -> tuple[Trial, float] | None:
        """The best told trial and its value, or None when none succeeded."""
        scored = [(trial, value) for trial, value in self._results.values() if value is not None]
        if not scored:
            return None
        pick = max if self.objective.goal == "maximize" else min
        return pick(scored, key=lambda pair: pair[1])


def _suggest(optuna_trial: Any, name: str, dist: DistributionBase) -> Any:
    if isinstance(dist, Choice):
        position = optuna_trial.suggest_categorical(name, list(range(len(dist.values))))
        return dist.values[position]
    if isinstance(dist, (RandInt, QUniform)):
        grid = dist.grid()
        return grid[optuna_trial.suggest_int(name, 0, len(grid) - 1)]
    return dist.from_unit(optuna_trial.suggest_float(name, 0.0, 1.0))


def _quiet_optuna() -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    return optuna
