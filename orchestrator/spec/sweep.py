"""Sweep settings of a task: what to vary, how to pick trials, what to optimize, when to stop.

``SweepFields`` holds the task keys ``task_factory``, ``search_space``, ``sampling``, ``seed``,
``objective``, ``limits`` and ``early_termination`` with their cross-checks; the task model
inherits it. Rules (each broken one is a ValueError that names the fix):

- ``task_factory`` and ``search_space`` exclude each other; ``sampling`` is for ``search_space``.
- ``sampling`` defaults to ``grid`` when every distribution is finite (choice, randint, quniform,
  qloguniform), else to ``random``. Grid needs finite distributions.
- ``random``, ``sobol`` and ``bayesian`` need ``limits.max_total_trials``; ``bayesian`` and
  ``early_termination`` need an ``objective``. ``objective``, ``limits`` and ``early_termination``
  need a sweep (``task_factory`` or ``search_space``).
- ``seed`` seeds random/sobol/bayesian sampling and a random factory without its own seed; when
  absent the seed is 0, so expansion is always reproducible.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from orchestrator.duration import parse_duration
from orchestrator.spec.common import Money, StrictModel
from orchestrator.spec.distributions import FINITE_KINDS, Distribution, DistributionBase
from orchestrator.spec.factory import PARAM_NAME, TaskFactory

Sampling = Literal["grid", "random", "sobol", "bayesian"]
SearchSpace = dict[str, DistributionBase]
RESERVED_METRIC_NAMES = frozenset({"step", "time"})


class Objective(StrictModel):
    """The primary metric the trials report (see ``orchestrator.sweep.metrics``) and its direction."""

    metric: str = Field(min_length=1)
    goal: Literal["maximize", "minimize"]

    @field_validator("goal", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("metric")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_METRIC_NAMES:
            raise ValueError(f"metric {value!r} is reserved by the metrics file format; "
                             "report the metric under another name")
        return value


class SweepLimits(StrictModel):
    """Caps on the sweep; durations are seconds or strings like "10m", "1h30m"."""

    max_total_trials: int | None = Field(default=None, ge=1)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    trial_timeout: float | None = None
    timeout: float | None = None
    budget: Money | None = None
    """USD the sweep's trials may cost in all; at it, no trial starts and running ones stop."""

    @field_validator("trial_timeout", "timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)


class EarlyTermination(StrictModel):
    """Azure ML's early-termination policies; see ``orchestrator.sweep.early_stop`` for the rules."""

    policy: Literal["median_stopping", "truncation_selection", "bandit"]
    evaluation_interval: int = Field(default=1, ge=1)
    delay_evaluation: int = Field(default=0, ge=0)
    slack_factor: float | None = Field(default=None, ge=0)
    slack_amount: float | None = Field(default=None, ge=0)
    truncation_percentage: int | None = Field(default=None, ge=1, le=99)

    @model_validator(mode="after")
    def _policy_settings(self) -> EarlyTermination:
        slack_given = [name for name in ("slack_factor", "slack_amount") if getattr(self, name) is not None]
        if self.policy == "bandit":
            if len(slack_given) != 1:
                raise ValueError("bandit needs exactly one of slack_factor (a ratio, like 0.1) "
                                 f"or slack_amount (an absolute distance); got {slack_given or 'neither'}")
        elif slack_given:
            raise ValueError(f"{slack_given[0]} applies only to policy bandit")
        if self.policy == "truncation_selection":
            if self.truncation_percentage is None:
                raise ValueError("truncation_selection needs truncation_percentage (1..99): "
                                 "the share of lowest-ranked trials to stop at each evaluation")
        elif self.truncation_percentage is not None:
            raise ValueError("truncation_percentage applies only to policy truncation_selection")
        return self


class SweepFields(StrictModel):
    """The sweep keys of a task and their cross-checks (see the module docstring).

    Cross-field checks are field validators of the later field, so an error points at the key
    to fix (``sampling``, ``limits``, ...). ``sampling`` comes last because it depends on the rest.
    """

    task_factory: TaskFactory | None = None
    search_space: dict[str, Distribution] | None = None
    seed: int | None = None
    objective: Objective | None = None
    limits: SweepLimits | None = None
    early_termination: EarlyTermination | None = None
    sampling: Sampling = "grid"

    @model_validator(mode="before")
    @classmethod
    def _default_sampling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "sampling" not in data and isinstance(data.get("search_space"), dict):
            finite = all(_is_finite(dist) for dist in data["search_space"].values())
            data = {**data, "sampling": "grid" if finite else "random"}
        return data

    @field_validator("search_space")
    @classmethod
    def _space(cls, value: SearchSpace | None, info: ValidationInfo) -> SearchSpace | None:
        if value is None:
            return None
        if info.data.get("task_factory") is not None:
            raise ValueError("use either task_factory or search_space in one task, not both")
        if not value:
            raise ValueError("search_space is empty; give at least one parameter, like lr: {loguniform: [1e-4, 1e-1]}")
        env_names: dict[str, str] = {}
        for name in value:
            if not PARAM_NAME.match(name) or name.isdigit():
                raise ValueError(f"{name!r} is not a parameter name: use letters, digits, '_', '.', '-'")
            key = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
            if key in env_names:
                raise ValueError(f"parameters {env_names[key]!r} and {name!r} both become ORCH_PARAM_{key}; rename one")
            env_names[key] = name
        return value

    @field_validator("objective", "limits", "early_termination")
    @classmethod
    def _needs_sweep(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None or "task_factory" not in info.data or "search_space" not in info.data:
            return value  # not given, or an earlier key already failed
        if info.data["task_factory"] is None and info.data["search_space"] is None:
            raise ValueError(f"{info.field_name} applies to sweeps; add a task_factory or search_space, "
                             f"or remove {info.field_name}")
        if info.field_name == "early_termination" and "objective" in info.data and info.data["objective"] is None:
            raise ValueError("early_termination needs an objective: {metric: <name>, goal: maximize|minimize}")
        return value

    @field_validator("sampling")
    @classmethod
    def _sampling_fits(cls, value: Sampling, info: ValidationInfo) -> Sampling:
        if "search_space" not in info.data:
            return value  # search_space failed; its error is reported
        space = info.data["search_space"]
        if space is None:
            raise ValueError("sampling applies to search_space; add a search_space or remove sampling")
        if value == "grid":
            unbounded = [name for name, dist in space.items() if dist.grid() is None]
            if unbounded:
                verb = "is" if len(unbounded) == 1 else "are"
                raise ValueError("grid sampling needs finite distributions (choice, randint, quniform, qloguniform); "
                                 f"{', '.join(unbounded)} {verb} continuous: use sampling: random or sobol")
            return value
        limits = info.data.get("limits")
        if "limits" in info.data and (limits is None or limits.max_total_trials is None):
            raise ValueError(f"sampling {value} needs limits.max_total_trials (how many trials to run)")
        if value == "bayesian" and "objective" in info.data and info.data["objective"] is None:
            raise ValueError("bayesian sampling needs an objective: {metric: <name>, goal: maximize|minimize}")
        return value

    def is_sweep(self) -> bool:
        """True when this task expands into trials."""
        return self.task_factory is not None or self.search_space is not None

    def effective_seed(self) -> int:
        """The seed expansion uses: ``seed``, else 0."""
        return self.seed if self.seed is not None else 0


def _is_finite(raw: Any) -> bool:
    if isinstance(raw, DistributionBase):
        return raw.grid() is not None
    return isinstance(raw, dict) and len(raw) == 1 and next(iter(raw)) in FINITE_KINDS
