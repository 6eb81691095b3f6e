"""Sweep models: distributions, task factories, objective, limits, early termination, durations."""
from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.duration import format_duration, parse_duration
from orchestrator.spec.distributions import (
    Choice,
    LogUniform,
    QUniform,
    RandInt,
    Uniform,
    parse_distribution,
)
from orchestrator.spec.factory import TaskFactory
from orchestrator.spec.sweep import (
    EarlyTermination,
    Objective,
    SweepFields,
    SweepLimits,
)


def first_error(model: Any, data: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    error = caught.value.errors()[0]
    return error["loc"], str(error["msg"])


# --- distributions -----------------------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ({"uniform": [0, 1]}, Uniform(low=0, high=1)),
    ({"loguniform": ["1e-4", 0.1]}, LogUniform(low=1e-4, high=0.1)),
    ({"quniform": [0, 64, 8]}, QUniform(low=0, high=64, q=8)),
    ({"randint": [2, 5.0]}, RandInt(low=2, high=5)),
    ({"choice": ["adam", {"name": "sgd"}]}, Choice(values=("adam", {"name": "sgd"}))),
])
def test_distributions_parse_from_one_key_mappings(raw: dict[str, Any], expected: Any) -> None:
    assert parse_distribution(raw) == expected


@pytest.mark.parametrize("raw, message", [
    ({"unifrom": [0, 1]}, "did you mean 'uniform'"),
    ({"uniform": [1, 1]}, "uniform needs lo < hi"),
    ({"quniform": [2, 1, 1]}, "quniform needs lo < hi"),
    ({"loguniform": [0, 1]}, "0 < lo < hi (actual values, not logs)"),
    ({"qloguniform": [1, 10, 0]}, "q > 0"),
    ({"normal": [0, 0]}, "sigma > 0"),
    ({"lognormal": [0, -1]}, "lognormal needs sigma > 0"),
    ({"qnormal": [0, 1, -2]}, "q > 0"),
    ({"randint": [0, 2.5]}, "whole number"),
    ({"randint": [3, 3]}, "hi is exclusive"),
    ({"choice": []}, "at least one value"),
    ({"uniform": [0, 1, 2]}, "uniform takes [lo, hi]"),
    ({"uniform": [0, "x"]}, "high must be a finite number"),
    ({"uniform": [0, True]}, "high must be a finite number"),
    ({"uniform": 3}, "takes a list"),
    ({"uniform": [0, 1], "choice": [1]}, "one-key mapping"),
    ([0, 1], "one-key mapping"),
])
def test_bad_distributions_say_what_to_fix(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=".*") as caught:
        parse_distribution(raw)
    assert message in str(caught.value)


def test_distribution_errors_point_at_the_parameter() -> None:
    loc, message = first_error(SweepFields, {"search_space": {"lr": {"normall": [0, 1]}}})
    assert loc == ("search_space", "lr")
    assert "did you mean 'normal'" in message and "known: uniform, loguniform" in message


def test_search_space_dumps_back_to_its_yaml_form_and_reloads() -> None:
    raw = {"lr": {"loguniform": [0.0001, 0.1]}, "opt": {"choice": ["adam", "sgd"]}, "n": {"randint": [1, 4]}}
    spec = SweepFields.model_validate({"search_space": raw, "limits": {"max_total_trials": 3}})
    dumped = spec.model_dump()
    assert dumped["search_space"] == raw
    assert SweepFields.model_validate(dumped) == spec


def test_sampling_defaults_to_grid_for_finite_spaces_else_random() -> None:
    finite = SweepFields.model_validate({"search_space": {"a": {"choice": [1, 2]}, "b": {"quniform": [0, 1, 0.5]}}})
    assert finite.sampling == "grid"
    continuous = SweepFields.model_validate({"search_space": {"a": {"uniform": [0, 1]}},
                                             "limits": {"max_total_trials": 4}})
    assert continuous.sampling == "random"


@pytest.mark.parametrize("data, loc, message", [
    ({"search_space": {"a": {"uniform": [0, 1]}}, "sampling": "grid"}, ("sampling",), "a is continuous"),
    ({"search_space": {"a": {"uniform": [0, 1]}}}, ("sampling",), "needs limits.max_total_trials"),
    ({"search_space": {"a": {"uniform": [0, 1]}}, "sampling": "bayesian", "limits": {"max_total_trials": 5}},
     ("sampling",), "bayesian sampling needs an objective"),
    ({"sampling": "random"}, ("sampling",), "sampling applies to search_space"),
    ({"task_factory": {"repeat": 2}, "search_space": {"a": {"choice": [1]}}}, ("search_space",), "not both"),
    ({"limits": {"max_total_trials": 2}}, ("limits",), "limits applies to sweeps"),
    ({"task_factory": {"repeat": 2}, "early_termination": {"policy": "median_stopping"}},
     ("early_termination",), "needs an objective"),
    ({"search_space": {}}, ("search_space",), "search_space is empty"),
    ({"search_space": {"a b": {"choice": [1]}}}, ("search_space",), "not a parameter name"),
    ({"search_space": {"a-b": {"choice": [1]}, "a_b": {"choice": [2]}}}, ("search_space",), "ORCH_PARAM_A_B"),
])
def test_cross_field_errors_point_at_the_key_to_fix(data: dict[str, Any], loc: tuple[str, ...], message: str) -> None:
    got_loc, got_message = first_error(SweepFields, data)
    assert got_loc == loc
    assert message in got_message


def test_models_are_frozen_and_strict() -> None:
    spec = SweepFields.model_validate({"task_factory": {"repeat": 2}})
    with pytest.raises(ValidationError):
        spec.seed = 3  # type: ignore[misc]
    loc, message = first_error(SweepFields, {"task_factory": {"repeats": 2}})
    assert loc == ("task_factory", "repeats") and "Extra inputs" in message


# --- objective, limits, early termination ------------------------------------------------------

def test_objective_goal_is_case_insensitive_and_metric_not_reserved() -> None:
    assert Objective.model_validate({"metric": "acc", "goal": "Maximize"}).goal == "maximize"
    loc, message = first_error(Objective, {"metric": "step", "goal": "minimize"})
    assert loc == ("metric",) and "reserved" in message


def test_limits_read_durations_and_check_counts() -> None:
    limits = SweepLimits.model_validate({"max_total_trials": 10, "trial_timeout": "10m", "timeout": "1h30m"})
    assert (limits.trial_timeout, limits.timeout) == (600.0, 5400.0)
    assert SweepLimits.model_validate({"trial_timeout": 90}).trial_timeout == 90.0
    assert first_error(SweepLimits, {"max_concurrent_trials": 0})[0] == ("max_concurrent_trials",)
    loc, message = first_error(SweepLimits, {"timeout": "ten minutes"})
    assert loc == ("timeout",) and '"1h30m"' in message


@pytest.mark.parametrize("data, message", [
    ({"policy": "bandit"}, "exactly one of slack_factor"),
    ({"policy": "bandit", "slack_factor": 0.1, "slack_amount": 0.2}, "exactly one of slack_factor"),
    ({"policy": "median_stopping", "slack_factor": 0.1}, "slack_factor applies only to policy bandit"),
    ({"policy": "truncation_selection"}, "needs truncation_percentage"),
    ({"policy": "truncation_selection", "truncation_percentage": 100}, "less than or equal to 99"),
    ({"policy": "bandit", "slack_amount": 1, "truncation_percentage": 10}, "applies only to policy truncation"),
    ({"policy": "bandit", "slack_amount": 1, "evaluation_interval": 0}, "greater than or equal to 1"),
    ({"policy": "bandit", "slack_amount": -1}, "greater than or equal to 0"),
    ({"policy": "hyperband"}, "Input should be"),
])
def test_early_termination_settings_are_checked(data: dict[str, Any], message: str) -> None:
    assert message in first_error(EarlyTermination, data)[1]


def test_early_termination_defaults() -> None:
    policy = EarlyTermination.model_validate({"policy": "median_stopping"})
    assert (policy.evaluation_interval, policy.delay_evaluation) == (1, 0)


# --- task factories ----------------------------------------------------------------------------

@pytest.mark.parametrize("data, message", [
    ({}, "exactly one of: parametric_sweep, random, repeat, file, custom (got none)"),
    ({"repeat": 2, "random": {"generate": 1, "integer": {"start": 0, "stop": 2}}}, "(got random, repeat)"),
    ({"repeat": 0}, "greater than or equal to 1"),
    ({"parametric_sweep": {"product": [{"start": 0, "stop": 3, "step": 0}]}}, "step must not be 0"),
    ({"parametric_sweep": {"product": [{"start": 0, "stop": 3, "step": -1}]}}, "is empty"),
    ({"parametric_sweep": {"zip": [[1, 2], [3]]}}, "different lengths"),
    ({"parametric_sweep": {"product_iterables": [[1], []]}}, "product_iterables[1] is empty"),
    ({"parametric_sweep": {"combinations": {"iterable": [1, 2], "length": 3}}}, "set replacement: true"),
    ({"parametric_sweep": {"permutations": {"iterable": [1, 2], "length": 3}}}, "more than the 2 values"),
    ({"parametric_sweep": {"zip": [[1]], "product_iterables": [[1]]}}, "exactly one of"),
    ({"random": {"generate": 2}}, "random needs exactly one of: integer, distribution"),
    ({"random": {"generate": 2, "distribution": {"beta": {"alpha": 0, "beta": 1}}}}, "alpha must be > 0"),
    ({"random": {"generate": 2, "distribution": {"triangular": {"low": 0, "high": 1, "mode": 2}}}},
     "must lie between"),
    ({"random": {"generate": 2, "distribution": {}}}, "distribution needs exactly one of"),
    ({"file": {"include": ["*.txt"]}}, "file needs exactly one of: local_path, azure_storage"),
    ({"custom": {"module": "not a module"}}, "package.module:function"),
    ({"repeat": 3, "names": ["a"]}, "no positional parameters"),
    ({"parametric_sweep": {"zip": [[1], [2]]}, "names": ["a"]}, "gives 1 names but each trial"),
    ({"parametric_sweep": {"zip": [[1], [2]]}, "names": ["a", "a"]}, "repeat a name"),
    ({"parametric_sweep": {"zip": [[1]]}, "names": ["0"]}, "not parameter names"),
])
def test_bad_task_factories_say_what_to_fix(data: dict[str, Any], message: str) -> None:
    assert message in first_error(TaskFactory, data)[1]


def test_task_factory_accepts_shipyard_spellings() -> None:
    factory = TaskFactory.model_validate(
        {"custom": {"module": "pkg.gen", "input_args": [1], "input_kwargs": {"k": 2}}})
    assert factory.custom is not None
    assert (factory.custom.args, factory.custom.kwargs) == ([1], {"k": 2})
    assert factory.custom.target() == ("pkg.gen", "generate")
    exponential = TaskFactory.model_validate(
        {"random": {"generate": 1, "distribution": {"exponential": {"lambda": 2.0}}}})
    assert exponential.random is not None and exponential.random.distribution is not None
    assert exponential.random.distribution.exponential is not None
    assert exponential.random.distribution.exponential.lambd == 2.0


def test_task_factory_arity_allows_names_for_positional_kinds() -> None:
    factory = TaskFactory.model_validate({"parametric_sweep": {"permutations": {"iterable": "abc"}},
                                          "names": ["x", "y", "z"]})
    assert factory.arity() == 3 and factory.kind() == "parametric_sweep"
    assert TaskFactory.model_validate({"custom": {"module": "m:f"}, "names": ["a", "b"]}).arity() is None


# --- durations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    (90, 90.0), (1.5, 1.5), ("90", 90.0), ("45s", 45.0), ("10m", 600.0), ("1h30m", 5400.0),
    ("1h 30m 15s", 5415.0), ("1.5h", 5400.0), ("2d", 172800.0), ("1d2h3m4s", 93784.0),
])
def test_parse_duration_reads_seconds_and_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "10x", "1m1h", "1h1h", "0", "-5", "0s", True, None, "m", float("inf")])
def test_parse_duration_rejects_what_it_cannot_read(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("seconds, text", [(5400, "1h30m"), (0, "0s"), (0.5, "0.5s"), (93784, "1d2h3m4s"), (60, "1m")])
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds
