"""The ``task_factory`` models: Batch Shipyard's task factories, typed and checked on load.

A task factory turns one task into many. Exactly one kind per factory:

- ``parametric_sweep``: ``product`` (integer ranges, stop exclusive like ``range``; step may be
  negative, never 0), ``product_iterables`` (lists), ``combinations`` / ``permutations``
  (``iterable``, ``length``; combinations may set ``replacement``) or ``zip`` (lists of equal
  length). As in Shipyard, a string where a list is expected is iterated character by character.
- ``random``: ``generate`` values from ``integer: {start, stop, step}`` or from one
  ``distribution`` (uniform {a, b}, triangular {low, high, mode}, beta {alpha, beta},
  exponential {lambda}, gamma {alpha, beta}, gauss {mu, sigma}, lognormal {mu, sigma},
  pareto {alpha}, weibull {alpha, beta}: Python ``random.Random`` semantics); ``seed`` optional.
- ``repeat: N``: N identical trials.
- ``file``: one trial per file under ``local_path`` (globs match the path relative to it), or per
  blob of Shipyard's ``azure_storage: {remote_path: container/prefix, include, exclude}`` (globs
  match the blob's name in its container, as Shipyard's do; each trial's task gets its blob at
  ``task_filepath``: ``file_path`` (default), ``file_path_with_container``, ``file_name`` or
  ``file_name_no_extension``), filtered by ``include`` / ``exclude`` (fnmatch, ``*`` crosses ``/``).
- ``custom``: ``module: "pkg.mod:function"`` (``"pkg.mod"`` means its ``generate``, as in
  Shipyard) called with ``args`` / ``kwargs`` (Shipyard's ``input_args`` / ``input_kwargs`` work).

Parametric sweeps, random and custom tuples are positional: ``{{0}}``, ``{{1}}``; ``names: [a, b]``
on the factory names them (``{{a}}``). File factories give ``url``, ``file_path``, ``file_name``,
``file_name_no_extension`` (the name before its first dot, as in Shipyard) and, for blobs,
``file_path_with_container``; custom dicts give their own names. Where Shipyard writes ``{name}``
or ``{}``, orch writes ``{{name}}`` and ``{{0}}``.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from orchestrator.spec.common import StrictModel
from orchestrator.spec.parametric import PARAM_NAME, ParametricSweep
from orchestrator.spec.random_factory import RandomFactory

__all__ = ["PARAM_NAME", "CustomFactory", "FileFactory", "ParametricSweep", "RandomFactory", "TaskFactory"]


TaskFilePath = Literal["file_path", "file_path_with_container", "file_name", "file_name_no_extension"]


class AzureStorageFiles(StrictModel):
    """Shipyard's blob source of a file factory. The pool's storage account (credentials.yaml
    ``storage``) is listed; ``storage_account_settings`` (Shipyard's link name) is accepted."""

    storage_account_settings: str | None = None
    remote_path: str | None = Field(default=None, min_length=1)
    container: str | None = Field(default=None, min_length=1)
    is_file_share: bool = False
    include: list[str] | None = None
    exclude: list[str] | None = None

    @model_validator(mode="after")
    def _one_place(self) -> AzureStorageFiles:
        self.exactly_one(("remote_path", "container"), "azure_storage")
        if self.is_file_share:
            raise ValueError("file shares are not supported: copy the files to a blob container and give its "
                             "remote_path (container/prefix)")
        return self

    @property
    def container_name(self) -> str:
        return (self.remote_path or self.container or "").strip("/").split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """The blob name prefix listed (``remote_path`` after its container), '' for all."""
        parts = (self.remote_path or "").strip("/").split("/", 1)
        return parts[1] + "/" if len(parts) == 2 and parts[1] else ""


class FileFactory(StrictModel):
    local_path: str | None = None
    azure_storage: AzureStorageFiles | None = None
    blob_prefix: str | None = None
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    recursive: bool = True
    task_filepath: TaskFilePath | None = None

    @model_validator(mode="after")
    def _one_root(self) -> FileFactory:
        if self.blob_prefix is not None:
            raise ValueError("blob_prefix is written as Shipyard's azure_storage: {remote_path: container/prefix} "
                             "(with include/exclude globs inside it)")
        self.exactly_one(("local_path", "azure_storage"), "file")
        if self.task_filepath is not None and self.azure_storage is None:
            raise ValueError("task_filepath applies to azure_storage files (where each task gets its blob)")
        return self

    @property
    def blob_filepath(self) -> TaskFilePath:
        return self.task_filepath or "file_path"


class CustomFactory(StrictModel):
    module: str
    args: list[Any] = Field(default_factory=list, validation_alias=AliasChoices("args", "input_args"))
    kwargs: dict[str, Any] = Field(default_factory=dict, validation_alias=AliasChoices("kwargs", "input_kwargs"))

    @field_validator("module")
    @classmethod
    def _importable_form(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", value):
            raise ValueError(f"module {value!r} must look like 'package.module:function' "
                             "(or 'package.module', which calls its generate function)")
        return value

    def target(self) -> tuple[str, str]:
        """(module path, function name); the function defaults to ``generate``."""
        module, _, function = self.module.partition(":")
        return module, function or "generate"


class TaskFactory(StrictModel):
    """Exactly one factory kind, plus optional ``names`` for positional parameters."""

    parametric_sweep: ParametricSweep | None = None
    random: RandomFactory | None = None
    repeat: int | None = Field(default=None, ge=1)
    file: FileFactory | None = None
    custom: CustomFactory | None = None
    names: list[str] | None = None

    @model_validator(mode="after")
    def _one_kind_and_names(self) -> TaskFactory:
        kind = self.exactly_one(self.kinds(), "task_factory")
        if self.names is None:
            return self
        if kind in ("repeat", "file"):
            raise ValueError(f"names applies to positional factories; a {kind} factory has no positional parameters")
        bad = [name for name in self.names if not PARAM_NAME.match(name) or name.isdigit()]
        if bad:
            raise ValueError(f"names {bad} are not parameter names: use letters, digits, '_', '.', '-', "
                             "not only digits")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names {self.names} repeat a name; each must be unique")
        arity = self.arity()
        if arity is not None and arity != len(self.names):
            raise ValueError(f"names gives {len(self.names)} names but each trial of this {kind} factory "
                             f"has {arity} parameters")
        return self

    @staticmethod
    def kinds() -> tuple[str, ...]:
        return ("parametric_sweep", "random", "repeat", "file", "custom")

    def kind(self) -> str:
        return next(name for name in self.kinds() if getattr(self, name) is not None)

    def arity(self) -> int | None:
        """Positional parameters per trial; None when only expansion can tell (custom)."""
        if self.parametric_sweep is not None:
            return self.parametric_sweep.arity()
        if self.random is not None:
            return 1
        return 0 if self.custom is None else None
