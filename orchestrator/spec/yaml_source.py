"""YAML parsing that remembers where every key and value is, for errors with file:line:column."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError, Where

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Positioned:
    """Parsed data plus the 1-based (line, column) of each key path in the source."""

    data: Any
    positions: dict[KeyPath, tuple[int, int]]
    file: str

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
    """Parse one YAML document. Syntax errors and duplicate keys are ``SpecError`` with a position."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Where(file=file, line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None)
        raise SpecError(f"YAML syntax error: {exc.problem or exc}", where=where,
                        hint="check indentation, colons and quotes around this place") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"YAML error: {exc}", where=Where(file=file)) from None
    if node is None:
        raise SpecError("the file is empty", where=Where(file=file), hint="see `orch init` for a starter file")
    positions: dict[KeyPath, tuple[int, int]] = {}
    _record(node, (), positions, file)
    data = yaml.safe_load(text)
    return Positioned(data=data, positions=positions, file=file)


def read_yaml(path: Path) -> Positioned:
    """Read and parse ``path``; a missing or unreadable file is a ``SpecError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}", hint="check the path, or --config-dir / ORCH_CONFIG_DIR") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read {path}: {exc}") from None
    return parse_yaml(text, str(path))


def _record(node: yaml.Node, path: KeyPath, out: dict[KeyPath, tuple[int, int]], file: str) -> None:
    out.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
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
            _record(value_node, child, out, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, path + (index,), out, file)
