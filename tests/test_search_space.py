"""Search-space expansion: grid, random and Sobol; counts without expanding; streaming memory."""
from __future__ import annotations

import statistics
import tracemalloc
from itertools import islice
from typing import Any

import pytest

from orchestrator.spec.distributions import parse_distribution
from orchestrator.spec.sweep import SweepFields
from orchestrator.sweep.expand import CONFIRM_ABOVE, count, expand
from orchestrator.sweep.search_space import (
    count_search_space,
    expand_search_space,
    iter_product,
)


def space(**raw: Any) -> dict[str, Any]:
    return {name: parse_distribution(value) for name, value in raw.items()}


def test_iter_product_matches_itertools_order() -> None:
    assert list(iter_product([range(2), "ab", [None]])) == [
        (0, "a", None), (0, "b", None), (1, "a", None), (1, "b", None)]
    assert list(iter_product([range(3), []])) == []


def test_grid_is_the_product_of_finite_values_last_fastest() -> None:
    grid = space(opt={"choice": ["adam", "sgd"]}, bs={"quniform": [16, 48, 16]}, seed={"randint": [0, 2]})
    trials = list(expand_search_space(grid, "grid", seed=0, limit=None))
    assert count_search_space(grid, "grid", limit=None) == len(trials) == 2 * 3 * 2
    assert [t.index for t in trials] == list(range(12))
    assert trials[0].params == {"opt": "adam", "bs": 16, "seed": 0}
    assert trials[1].params == {"opt": "adam", "bs": 16, "seed": 1}
    assert trials[-1].params == {"opt": "sgd", "bs": 48, "seed": 1}
    assert all(isinstance(t.params["bs"], int) for t in trials)


def test_quantized_values_are_tidy() -> None:
    tenths = space(x={"quniform": [0, 0.5, 0.1]})
    values = [t.params["x"] for t in expand_search_space(tenths, "grid", seed=0, limit=None)]
    assert values == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]
    logs = [t.params["x"] for t in expand_search_space(space(x={"qloguniform": [1, 4, 1]}), "grid", seed=0, limit=None)]
    assert logs == [1, 2, 3, 4]


def test_huge_grid_is_counted_without_expanding() -> None:
    huge = SweepFields.model_validate({"search_space": {f"p{i}": {"randint": [0, 1000]} for i in range(4)}})
    assert count(huge) == 10**12 > CONFIRM_ABOVE
    first = next(iter(expand(huge)))
    assert first.params == {"p0": 0, "p1": 0, "p2": 0, "p3": 0}


def test_grid_refuses_continuous_distributions() -> None:
    with pytest.raises(ValueError, match="lr are continuous|lr"):
        list(expand_search_space(space(lr={"uniform": [0, 1]}), "grid", seed=0, limit=None))


def test_random_sampling_is_reproducible_and_seed_dependent() -> None:
    mixed = space(lr={"loguniform": [1e-5, 1e-1]}, opt={"choice": ["a", "b", "c"]}, n={"qnormal": [10, 3, 1]})
    first = list(expand_search_space(mixed, "random", seed=7, limit=20))
    again = list(expand_search_space(mixed, "random", seed=7, limit=20))
    other = list(expand_search_space(mixed, "random", seed=8, limit=20))
    assert first == again and first != other
    assert len(first) == 20


@pytest.mark.parametrize("raw, check", [
    ({"uniform": [-2, 3]}, lambda v: -2 <= v <= 3),
    ({"loguniform": [1e-4, 1e-1]}, lambda v: 1e-4 <= v <= 1e-1),
    ({"quniform": [0, 10, 2]}, lambda v: v in {0, 2, 4, 6, 8, 10}),
    ({"qloguniform": [1, 100, 5]}, lambda v: v % 5 == 0 and 0 <= v <= 100),
    ({"randint": [3, 6]}, lambda v: v in {3, 4, 5}),
    ({"choice": [None, [1, 2]]}, lambda v: v in (None, [1, 2])),
    ({"lognormal": [0, 1]}, lambda v: v > 0),
])
def test_samples_stay_in_their_distribution(raw: dict[str, Any], check: Any) -> None:
    values = [t.params["x"] for t in expand_search_space(space(x=raw), "random", seed=1, limit=500)]
    assert all(check(v) for v in values)


def test_sample_shapes_match_their_distributions() -> None:
    def draws(raw: dict[str, Any]) -> list[Any]:
        return [t.params["x"] for t in expand_search_space(space(x=raw), "random", seed=3, limit=4000)]

    assert abs(statistics.fmean(draws({"normal": [5, 2]})) - 5) < 0.15
    assert abs(statistics.stdev(draws({"normal": [5, 2]})) - 2) < 0.15
    assert abs(statistics.median(draws({"loguniform": [1e-4, 1]})) - 1e-2) < 4e-3  # geometric middle
    assert set(draws({"randint": [0, 3]})) == {0, 1, 2}  # hi exclusive, every value reached


def test_sobol_is_reproducible_and_evenly_spread() -> None:
    unit = space(x={"uniform": [0, 1]}, y={"uniform": [0, 1]})
    first = list(expand_search_space(unit, "sobol", seed=5, limit=64))
    assert first == list(expand_search_space(unit, "sobol", seed=5, limit=64))
    assert first != list(expand_search_space(unit, "sobol", seed=6, limit=64))
    for name in ("x", "y"):
        bins = sorted(int(t.params[name] * 64) for t in first)
        assert bins == list(range(64))  # one point in each 1/64 strip: low discrepancy


def test_sobol_maps_discrete_and_unbounded_distributions() -> None:
    mixed = space(opt={"choice": ["a", "b"]}, n={"randint": [0, 4]}, z={"normal": [0, 1]})
    trials = list(expand_search_space(mixed, "sobol", seed=0, limit=2000))
    assert len(trials) == 2000
    assert {t.params["opt"] for t in trials} == {"a", "b"}
    assert {t.params["n"] for t in trials} == {0, 1, 2, 3}
    assert abs(statistics.fmean(t.params["z"] for t in trials)) < 0.05


def test_max_total_trials_caps_and_limit_overrides() -> None:
    spec = SweepFields.model_validate({"search_space": {"a": {"randint": [0, 100]}},
                                       "limits": {"max_total_trials": 7}})
    assert count(spec) == 7 and len(list(expand(spec))) == 7
    assert count(spec, limit=3) == 3 and len(list(expand(spec, limit=3))) == 3


def test_seed_argument_overrides_spec_seed_and_default_is_zero() -> None:
    raw = {"search_space": {"a": {"uniform": [0, 1]}}, "limits": {"max_total_trials": 3}}
    unseeded = list(expand(SweepFields.model_validate(raw)))
    assert unseeded == list(expand(SweepFields.model_validate({**raw, "seed": 0})))
    seeded = SweepFields.model_validate({**raw, "seed": 9})
    assert list(expand(seeded)) == list(expand(SweepFields.model_validate(raw), seed=9))


def test_bayesian_and_unlimited_random_are_not_expanded_up_front() -> None:
    unit = space(x={"uniform": [0, 1]})
    with pytest.raises(ValueError, match="BayesianSearch"):
        next(expand_search_space(unit, "bayesian", seed=0, limit=5))
    with pytest.raises(ValueError, match="needs a limit"):
        next(expand_search_space(unit, "random", seed=0, limit=None))


def test_random_expansion_streams_in_constant_memory() -> None:
    spec = SweepFields.model_validate({
        "search_space": {"lr": {"loguniform": [1e-5, 1e-1]}, "opt": {"choice": ["a", "b"]}, "w": {"normal": [0, 1]}},
        "limits": {"max_total_trials": 1_000_000},
    })
    tracemalloc.start()
    try:
        seen = sum(1 for _ in islice(expand(spec), 200_000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == 200_000
    assert peak < 2 * 1024 * 1024  # a few trials alive at a time, whatever the total
