"""Command-line values checked before any command uses them: ids (the spec's rule) and task file names."""
from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import click

from orchestrator.spec.ids import ID_RULE, is_valid_id

MAX_NAME = 1024


class IdParam(click.ParamType):
    """A pool, job or task id: refused (exit 2) unless it follows the spec's id rule."""

    name = "id"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if is_valid_id(value):
            return str(value)
        text = str(value)
        self.fail(f"{text[:77] + '...' if len(text) > 80 else text!r} is not a valid {self.what}: {ID_RULE}",
                  param, ctx)


class TaskFileParam(click.ParamType):
    """``stdout``, ``stderr``, ``metrics`` or a relative path under the task's folder (no ``..``)."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        path = PurePosixPath(text)
        if not text or len(text) > MAX_NAME or "\0" in text or path.is_absolute() or ".." in path.parts:
            self.fail(f"{text[:77]!r} is not a file of a task: give stdout, stderr, metrics or a relative path "
                      "inside the task folder (e.g. outputs/model.pt)", param, ctx)
        return text


POOL_ID = IdParam("pool id")
JOB_ID = IdParam("job id")
TASK_ID = IdParam("task id")
TASK_FILE = TaskFileParam()


class DurationParam(click.ParamType):
    """A duration as spec files write it (``90``, ``45s``, ``10m``, ``1h30m``, ``7d``), in seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        from orchestrator.duration import parse_duration

        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationParam()
