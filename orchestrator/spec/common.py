"""Shared building blocks of the spec models: strict base model, ids, durations, env maps."""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.duration import parse_duration
from orchestrator.spec.ids import ID_PATTERN, ID_RULE
from orchestrator.spec.money import parse_money

__all__ = ["ID_PATTERN", "Command", "Duration", "Env", "Id", "Money", "Retries", "StrictModel", "check_command"]

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRIAL_INDEX_DIGITS = 5
"""A sweep trial's task id is ``<task id>-<index>``, the index zero-padded to this many digits."""


class KeyedError(ValueError):
    """A problem a model validator finds at a key path below its model (``tasks[2].id``), so the
    loader points at that key's line rather than at the model's."""

    def __init__(self, key_path: str, message: str) -> None:
        super().__init__(message)
        self.key_path = key_path


class StrictModel(BaseModel):
    """Every spec model: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def exactly_one(self, names: Sequence[str], what: str) -> str:
        """The one of ``names`` that is set; ValueError naming them all when none or several are."""
        chosen = [name for name in names if getattr(self, name) is not None]
        if len(chosen) != 1:
            got = ", ".join(chosen) if chosen else "none"
            raise ValueError(f"{what} needs exactly one of: {', '.join(names)} (got {got})")
        return chosen[0]


def _check_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid id: {ID_RULE}")
    return value


def _check_env(value: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, val in value.items():
        if not ENV_NAME.match(str(name)):
            raise ValueError(f"{name!r} is not a valid environment variable name (letters, digits, '_')")
        if isinstance(val, (dict, list)) or val is None:
            raise ValueError(f"environment variable {name!r} must be a string, number or boolean")
        out[str(name)] = ("true" if val else "false") if isinstance(val, bool) else str(val)
    return out


Id = Annotated[str, AfterValidator(_check_id)]
Env = Annotated[dict[str, Any], AfterValidator(_check_env)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Money = Annotated[float, BeforeValidator(parse_money)]
Retries = Annotated[int, Field(ge=0, le=100)]

Command = str | list[str]


def check_command(value: Command) -> Command:
    """A command is a non-empty shell string, or a non-empty list run without a shell."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("command is empty: give a shell string or a list of arguments")
    if isinstance(value, list) and (not value or not all(isinstance(a, str) for a in value)):
        raise ValueError("a list command needs at least one argument, all strings")
    return value
