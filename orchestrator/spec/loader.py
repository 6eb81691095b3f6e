"""Load spec files into typed models; every problem becomes a ``SpecError`` at file:line:column.

All errors of a file are collected and reported together. Unknown keys get a "did you mean".
Files are read as YAML 1.2; each loader takes ``warn``, called with every ``file:line:column``
warning the file gets (values that YAML 1.1 reads differently) before it is validated.
"""
from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

from pydantic import BaseModel, ValidationError

from orchestrator.errors import SpecError, SpecErrors
from orchestrator.spec.common import KeyedError
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.spec.yaml_source import KeyPath, Positioned, read_yaml

M = TypeVar("M", bound=BaseModel)
Warn = Callable[[str], None]
_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def load_pool(path: Path, *, warn: Warn | None = None) -> PoolSpec:
    """Load a pool file."""
    return validate_model(PoolSpec, _read(path, warn))


def load_job(path: Path, *, warn: Warn | None = None) -> JobSpec:
    """Load a job file."""
    return validate_model(JobSpec, _read(path, warn))


def load_any(path: Path, *, warn: Warn | None = None) -> PoolSpec | JobSpec:
    """Load a pool or a job file, told apart by its ``tasks`` key."""
    source = _read(path, warn)
    model: type[BaseModel] = JobSpec if isinstance(source.data, dict) and "tasks" in source.data else PoolSpec
    return validate_model(model, source)  # type: ignore[return-value]


def _read(path: Path, warn: Warn | None) -> Positioned:
    source = read_yaml(path)
    for warning in source.warnings if warn is not None else ():
        warn(warning)
    return source


def validate_model(model: type[M], source: Positioned) -> M:
    """Validate parsed YAML against ``model``, mapping every error to its place in the file."""
    if not isinstance(source.data, dict):
        raise SpecError(f"the top level must be a mapping of keys, got {type(source.data).__name__}",
                        where=source.where(()))
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        problems = [_to_spec_error(model, source, err) for err in exc.errors(include_url=False)]
        raise (problems[0] if len(problems) == 1 else SpecErrors(problems)) from None


def place_error(error: SpecError, spec_file: Path) -> SpecError:
    """``error`` with the spec file's line and column for its key path, when it has none yet
    (errors found after loading, while planning, name only a key path like ``tasks[2].command``)."""
    where = error.where
    if where is None or where.file is not None or not where.key_path:
        return error
    try:
        source = read_yaml(spec_file)
    except SpecError:
        return error
    return SpecError(error.message, hint=error.hint, where=source.where(key_path_parts(where.key_path)))


def key_path_parts(key_path: str) -> KeyPath:
    """``tasks[2].command`` as ``("tasks", 2, "command")``."""
    return tuple(int(index) if index else name for name, index in _KEY_PART.findall(key_path))


def _to_spec_error(model: type[BaseModel], source: Positioned, err: Any) -> SpecError:
    loc: KeyPath = tuple(p for p in err["loc"] if not _is_union_tag(p))
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, KeyedError):
        loc += key_path_parts(cause.key_path)
    where = source.where(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        allowed = _fields_at(model, loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(sorted(allowed))}"
        return SpecError(f"unknown key {key!r}", where=where, hint=hint)
    if kind == "missing":
        return SpecError(f"required key {str(loc[-1])!r} is missing", where=where,
                         hint="add it; see `orch schema` for every key")
    message = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    if kind not in ("value_error", "assertion_error") and not isinstance(got, (dict, list)):
        message += f" (got {got!r})"
    return SpecError(message, where=where)


def _is_union_tag(part: object) -> bool:
    """pydantic adds type names like ``str`` or ``list[str]`` to union error locations."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part or part.startswith("function-"))


def _fields_at(model: type[BaseModel], loc: KeyPath) -> list[str]:
    """Field names of the model found by walking ``loc`` down from ``model``."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    model_cls = _model_in(current)
    return list(model_cls.model_fields) if model_cls else []


def _step(annotation: Any, part: str | int) -> Any:
    model_cls = _model_in(annotation)
    if isinstance(part, str) and model_cls is not None:
        field = model_cls.model_fields.get(part)
        return field.annotation if field else None
    for arg in typing.get_args(_strip(annotation)) or ():
        if isinstance(part, int) and typing.get_origin(_strip(annotation)) in (list, tuple):
            return arg
    origin = typing.get_origin(_strip(annotation))
    if origin is dict:
        return typing.get_args(_strip(annotation))[1]
    return None


def _strip(annotation: Any) -> Any:
    """Drop ``Annotated`` and ``Optional`` wrappers."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        containers = [a for a in args if typing.get_origin(_strip(a)) in (list, dict) or _model_in(a)]
        return _strip(containers[0]) if containers else (args[0] if args else annotation)
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    annotation = _strip(annotation)
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
