"""Bayesian (TPE) search: ask/tell contract, determinism, and that it beats random search."""
from __future__ import annotations

import statistics
from typing import Any

import pytest

from orchestrator.spec.distributions import parse_distribution
from orchestrator.spec.sweep import Objective
from orchestrator.sweep.bayes import BayesianSearch
from orchestrator.sweep.search_space import expand_search_space

MAXIMIZE = Objective(metric="score", goal="maximize")
UNIT_SQUARE = {"x": parse_distribution({"uniform": [0, 1]}), "y": parse_distribution({"uniform": [0, 1]})}


def bowl(params: dict[str, Any]) -> float:
    return -((params["x"] - 0.3) ** 2) - (params["y"] - 0.7) ** 2


def best_of_bayesian(seed: int, trials: int) -> float:
    search = BayesianSearch(UNIT_SQUARE, MAXIMIZE, seed=seed)
    for _ in range(trials):
        trial = search.ask()
        search.tell(trial.index, bowl(trial.params))
    best = search.best()
    assert best is not None
    return best[1]


def best_of_random(seed: int, trials: int) -> float:
    return max(bowl(t.params) for t in expand_search_space(UNIT_SQUARE, "random", seed=seed, limit=trials))


def test_bayesian_beats_random_on_average() -> None:
    seeds = range(5)
    bayesian = statistics.fmean(best_of_bayesian(seed, 40) for seed in seeds)
    random_search = statistics.fmean(best_of_random(seed, 40) for seed in seeds)
    assert bayesian > random_search


def test_ask_gives_indexed_trials_inside_the_space() -> None:
    space = {
        "opt": parse_distribution({"choice": ["adam", "sgd", {"name": "lamb"}]}),
        "layers": parse_distribution({"randint": [1, 4]}),
        "bs": parse_distribution({"quniform": [16, 64, 16]}),
        "lr": parse_distribution({"loguniform": [1e-5, 1e-1]}),
        "wd": parse_distribution({"normal": [0.01, 0.001]}),
        "warm": parse_distribution({"qloguniform": [10, 1000, 10]}),
    }
    search = BayesianSearch(space, Objective(metric="loss", goal="minimize"), seed=3)
    told: list[float] = []
    for expected_index in range(15):
        trial = search.ask()
        assert trial.index == expected_index
        params = trial.params
        assert params["opt"] in ("adam", "sgd", {"name": "lamb"})
        assert params["layers"] in (1, 2, 3) and params["bs"] in (16, 32, 48, 64)
        assert 1e-5 <= params["lr"] <= 1e-1 and params["warm"] % 10 == 0
        told.append(params["lr"] * params["layers"])
        search.tell(trial.index, told[-1])
    best = search.best()
    assert best is not None and best[1] == min(told) == told[best[0].index]


def test_same_seed_same_proposals() -> None:
    def proposals(seed: int) -> list[dict[str, Any]]:
        search = BayesianSearch(UNIT_SQUARE, MAXIMIZE, seed=seed)
        out = []
        for _ in range(14):
            trial = search.ask()
            search.tell(trial.index, bowl(trial.params))
            out.append(trial.params)
        return out

    assert proposals(1) == proposals(1)
    assert proposals(1) != proposals(2)


def test_failed_trials_and_tell_errors() -> None:
    search = BayesianSearch(UNIT_SQUARE, MAXIMIZE, seed=0)
    first, second, third = search.ask(), search.ask(), search.ask()
    search.tell(first.index, None)
    search.tell(second.index, float("nan"))
    assert search.best() is None
    search.tell(third.index, -0.5)
    assert search.best() == (third, -0.5)
    with pytest.raises(ValueError, match="already told"):
        search.tell(third.index, 1.0)
    with pytest.raises(ValueError, match="never asked"):
        search.tell(99, 1.0)
