"""YAML parsing that remembers where every key and value is, for errors with file:line:column.

Files are read as YAML 1.2 (core schema) with bounded memory and time; see ``yaml_core``.
"""
from __future__ import annotations

import datetime
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, Where
from orchestrator.spec.yaml_core import (
    CoreLoader,
    Difference,
    FastCoreLoader,
    differences,
    fast_reads_alike,
)

MAX_FILE_BYTES = 16 * 2**20
MAX_NOTES = 20

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Positioned:
    """Parsed data plus the 1-based (line, column) of each key path in the source, and warnings
    (``file:line:column: key: …``) about values YAML 1.1 would read differently."""

    data: Any
    positions: dict[KeyPath, tuple[int, int]]
    file: str
    warnings: tuple[str, ...] = ()

    def where(self, path: KeyPath) -> Where:
        """The closest known position for ``path`` (walks up to a parent when needed)."""
        probe = tuple(path)
        while probe and probe not in self.positions:
            probe = probe[:-1]
        line, column = self.positions.get(probe, (1, 1))
        return Where(file=self.file, line=line, column=column, key_path=format_key_path(path) or None)


def format_key_path(path: KeyPath) -> str:
    """``("jobs", 0, "tasks", 2)`` → ``jobs[0].tasks[2]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_yaml(text: str, file: str) -> Positioned:
    """Parse one YAML 1.2 document (see ``yaml_core``). Syntax errors, duplicate keys and input
    that would take unbounded memory or time are ``SpecError`` with a line and column."""
    if FastCoreLoader is not None and fast_reads_alike(text):
        try:
            return _parse(text, file, FastCoreLoader)
        except yaml.YAMLError:
            pass  # libyaml's report: the reference parser below reads the file again and reports it
    try:
        return _parse(text, file, CoreLoader)
    except yaml.constructor.ConstructorError as exc:
        raise SpecError(str(exc.problem or exc), where=_mark_where(exc, file)) from None
    except yaml.MarkedYAMLError as exc:
        problem = f"{exc.context}, {exc.problem}" if exc.context and str(exc.problem).startswith("but") else exc.problem
        raise SpecError(f"YAML syntax error: {problem or exc}", where=_mark_where(exc, file),
                        hint="check indentation, colons and quotes around this place") from None
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        raise SpecError(f"character U+{int(exc.character):04X} is not allowed in YAML",
                        where=Where(file=file, line=line, column=column),
                        hint="remove control characters; the file must be UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", where=Where(file=file, line=1)) from None


def _parse(text: str, file: str, loader_class: type[CoreLoader]) -> Positioned:
    """``text`` read by ``loader_class``; YAML's own errors are raised as they come, orch's
    refusals (bounds, tags, duplicate keys, an empty file) as ``SpecError``."""
    loader = loader_class(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise SpecError("empty file: it has no YAML document (only blank lines or comments)",
                            where=Where(file=file, line=1, column=1), hint="see `orch init` for a starter file")
        positions: dict[KeyPath, tuple[int, int]] = {}
        paths: dict[int, KeyPath] = {}
        _record(node, (), positions, paths, file)
        data = loader.construct_document(node)
        notes = [_difference_note(d, file, paths) for d in differences(loader, node)]
    finally:
        loader.dispose()
    if len(notes) > MAX_NOTES:
        notes = notes[:MAX_NOTES] + [f"{file}: {len(notes) - MAX_NOTES} more plain values read differently in YAML 1.1"]
    return Positioned(data=data, positions=positions, file=file, warnings=tuple(notes))


def read_yaml(path: Path) -> Positioned:
    """Read and parse ``path`` (a regular file of at most ``MAX_FILE_BYTES``, UTF-8); any problem
    is a ``SpecError`` with a line and column where there is one."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SpecError(f"{path} is not a regular file", where=Where(file=str(path)),
                            hint="give the path of a YAML file")
        if info.st_size > MAX_FILE_BYTES:
            raise SpecError(f"{path} is {info.st_size / 2**20:.0f} MiB; spec files are at most "
                            f"{MAX_FILE_BYTES // 2**20} MiB", where=Where(file=str(path)),
                            hint="generate tasks with a search_space or task_factory instead of listing them")
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}", hint="check the path, or --config-dir / ORCH_CONFIG_DIR") from None
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}", where=Where(file=str(path))) from None
    return parse_yaml(decode_utf8(raw, str(path)), str(path))


def decode_utf8(raw: bytes, file: str) -> str:
    """``raw`` as text; a byte that is not UTF-8 is a ``SpecError`` at its line and column."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = len(raw[raw.rfind(b"\n", 0, exc.start) + 1:exc.start].decode("utf-8", "replace")) + 1
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise SpecError(f"the file is not UTF-8: byte 0x{raw[exc.start]:02x} cannot be read",
                        where=Where(file=file, line=line, column=column),
                        hint="save the file as UTF-8" + (" (it looks like UTF-16)" if utf16 else "")) from None


def _mark_where(exc: yaml.MarkedYAMLError, file: str) -> Where:
    mark = exc.problem_mark or exc.context_mark
    return Where(file=file, line=mark.line + 1 if mark else 1, column=mark.column + 1 if mark else None)


def _line_column(text: str, position: int) -> tuple[int, int]:
    line_start = text.rfind("\n", 0, position) + 1
    return text.count("\n", 0, position) + 1, position - line_start + 1


def _difference_note(difference: Difference, file: str, paths: dict[int, KeyPath]) -> str:
    node = difference.node
    where = Where(file=file, line=node.start_mark.line + 1, column=node.start_mark.column + 1,
                  key_path=format_key_path(paths.get(id(node), ())) or None)
    return (f"{where}: {node.value} reads as {_as_yaml(difference.yaml12)} (YAML 1.2, as orch reads it) but as "
            f"{_as_yaml(difference.yaml11)} in YAML 1.1 (PyYAML); quote it or write it so both agree")


def _as_yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return repr(value)


def _record(node: yaml.Node, path: KeyPath, out: dict[KeyPath, tuple[int, int]], paths: dict[int, KeyPath],
            file: str) -> None:
    """Positions of every key path under ``node``, and each node's first key path (keys: their own)."""
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
    paths.setdefault(id(node), path)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = path + (key,)
            if key in seen:
                raise SpecError(f"key {key!r} appears twice", hint="keep one of them",
                                where=Where(file=file, line=key_node.start_mark.line + 1,
                                            column=key_node.start_mark.column + 1,
                                            key_path=format_key_path(child)))
            seen.add(key)
            out[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            paths.setdefault(id(key_node), child)
            _record(value_node, child, out, paths, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, path + (index,), out, paths, file)
