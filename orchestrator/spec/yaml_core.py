"""A YAML 1.2 (core schema) reader that is safe on hostile input, built from PyYAML's parts.

orch reads YAML 1.2's core schema, as Batch Shipyard (ruamel.yaml) does: ``yes``/``no``/``on``/
``off`` are strings, ``010`` is 10, ``1:30`` is a string, ``1e-3`` is a number. Merge keys
(``<<: *defaults``) work as in YAML 1.1. Every plain scalar that a YAML 1.1 reader (PyYAML,
which orch used before) would read differently is reported by ``compose`` as a ``Difference``.

Plain files are scanned and parsed by libyaml (``FastCoreLoader``) where PyYAML has it, which
reads the same grammar about four times faster; a file libyaml finds a problem in is read again
by PyYAML's pure-Python parser (``CoreLoader``), whose reports orch has always given.

Bounded on any input: more than ``MAX_NODES`` values in a file (each costs about 1 KB until the
file is validated), nesting deeper than ``MAX_DEPTH``, aliases that expand to more than
``ALIAS_BUDGET`` nodes (counted while composing, before anything is constructed: a "billion
laughs" file costs a few kilobytes), recursive aliases, tags outside the core schema
(``!!python/object/apply:…``, ``!custom``) and numbers longer than ``MAX_DIGITS`` are refused
with a ``SpecError`` at their line and column.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, ScalarEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver, Resolver
from yaml.scanner import Scanner

from orchestrator.errors import SpecError, Where

try:
    from yaml.cyaml import CParser
except ImportError:  # PyYAML built without libyaml: the pure-Python reader does it all
    CParser = None

MAX_DEPTH = 100
MAX_NODES = 250_000
ALIAS_BUDGET = 100_000
MAX_DIGITS = 1000
TAG = "tag:yaml.org,2002:"
CORE_TAGS = frozenset(TAG + name for name in ("str", "int", "float", "bool", "null", "seq", "map", "merge"))


@dataclass(frozen=True)
class Difference:
    """A plain scalar YAML 1.1 reads differently: where it is, its text and both readings."""

    node: ScalarNode
    yaml12: Any
    yaml11: Any


class CoreResolver(BaseResolver):
    """Implicit tags of the YAML 1.2 core schema (YAML 1.2.2, section 10.3.2), plus ``<<``."""


for _tag, _pattern, _first in (
    ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
              r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+.0123456789"),
    ("merge", r"^(?:<<)$", "<"),
):
    CoreResolver.add_implicit_resolver(TAG + _tag, re.compile(_pattern), list(_first))


class CoreConstructor(SafeConstructor):
    """Builds Python values for the core schema's tags only."""

    yaml_constructors: dict[Any, Any] = {}

    def construct_core_bool(self, node: ScalarNode) -> bool:
        value = self.construct_scalar(node)
        if value.lower() not in ("true", "false"):
            raise ConstructorError(None, None, f"{value!r} is not a YAML 1.2 boolean (true or false)", node.start_mark)
        return value.lower() == "true"

    def construct_core_int(self, node: ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        _check_length(value, node)
        text = value[1:] if value[:1] in "+-" else value
        sign = -1 if value[:1] == "-" else 1
        try:
            if text[:2] == "0o":
                return sign * int(text[2:], 8)
            if text[:2] == "0x":
                return sign * int(text[2:], 16)
            return sign * int(text, 10)
        except ValueError:
            raise ConstructorError(None, None, f"{value!r} is not a YAML 1.2 integer", node.start_mark) from None

    def construct_core_float(self, node: ScalarNode) -> float:
        value = str(self.construct_scalar(node))
        _check_length(value, node)
        lowered = value.lower()
        if lowered in (".nan",):
            return math.nan
        if lowered.lstrip("+-") == ".inf":
            return -math.inf if lowered.startswith("-") else math.inf
        try:
            return float(value)
        except ValueError:
            raise ConstructorError(None, None, f"{value!r} is not a YAML 1.2 number", node.start_mark) from None

    def construct_core_null(self, node: ScalarNode) -> None:
        value = self.construct_scalar(node)
        if value not in ("", "~", "null", "Null", "NULL"):
            raise ConstructorError(None, None, f"{value!r} is not a YAML 1.2 null", node.start_mark)
        return None


for _name, _method in (("bool", CoreConstructor.construct_core_bool), ("int", CoreConstructor.construct_core_int),
                       ("float", CoreConstructor.construct_core_float), ("null", CoreConstructor.construct_core_null),
                       ("str", SafeConstructor.construct_yaml_str), ("seq", SafeConstructor.construct_yaml_seq),
                       ("map", SafeConstructor.construct_yaml_map)):
    CoreConstructor.add_constructor(TAG + _name, _method)
CoreConstructor.add_constructor(None, SafeConstructor.construct_undefined)


def _check_length(value: str, node: Node) -> None:
    if len(value) > MAX_DIGITS:
        raise ConstructorError(None, None, f"a number of {len(value):,} characters is too long (at most {MAX_DIGITS}); "
                                           "quote it if it is text", node.start_mark)


class BoundedComposer(Composer):
    """PyYAML's composer, refusing deep nesting, alias bombs, recursive aliases and foreign tags.

    ``_sizes`` holds, per composed node, how many nodes it stands for once aliases are expanded;
    each alias adds its target's size to ``_expanded`` (linear work, whatever the expansion)."""

    file: str

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._count = 0
        self._expanded = 0
        self._sizes: dict[int, int] = {}
        self.plain: set[int] = set()

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise _refuse(f"alias *{event.anchor} refers to the node that contains it (a recursive alias)",
                                  event.start_mark, self.file, "orch reads trees: copy the values instead")
                self._expanded += size
                if self._expanded > ALIAS_BUDGET:
                    raise _refuse(f"aliases expand to more than {ALIAS_BUDGET:,} nodes (an alias bomb?)",
                                  event.start_mark, self.file, "write the values out, or use fewer nested aliases")
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        event = self.peek_event()
        self._count += 1
        if self._count > MAX_NODES:
            raise _refuse(f"the file has more than {MAX_NODES:,} values", event.start_mark, self.file,
                          "generate tasks with a search_space or task_factory instead of listing each one")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _refuse(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark, self.file,
                          "spec files are a few levels deep; check the brackets and indentation")
        try:
            node: Node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node.tag not in CORE_TAGS:
            raise _refuse(f"tag {_short(node.tag)} is not allowed", node.start_mark, self.file,
                          "orch reads plain YAML (strings, numbers, booleans, null, lists, mappings); "
                          "remove the tag, or quote the value")
        if isinstance(event, ScalarEvent) and event.implicit[0] and event.tag is None:
            self.plain.add(id(node))
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in _children(node))
        return node


class CoreLoader(Reader, Scanner, Parser, BoundedComposer, CoreResolver, CoreConstructor):  # type: ignore[misc]
    """Reads one document of ``text`` from ``file`` (the name is for errors). The reference
    reader: PyYAML's pure-Python scanner and parser."""

    def __init__(self, text: str, file: str) -> None:
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        BoundedComposer.__init__(self)
        CoreResolver.__init__(self)
        CoreConstructor.__init__(self)
        self.file = file


if CParser is not None:
    class FastCoreLoader(CParser, BoundedComposer, CoreResolver, CoreConstructor):  # type: ignore[misc]
        """``CoreLoader`` with libyaml's scanner and parser (the same YAML 1.1 grammar, in C);
        composing, every bound, resolving and constructing are the same Python code. Its
        problem reports are libyaml's own words: callers read an invalid file again with
        ``CoreLoader`` to report it (``yaml_source.parse_yaml``)."""

        def __init__(self, text: str, file: str) -> None:
            CParser.__init__(self, text)
            BoundedComposer.__init__(self)
            CoreResolver.__init__(self)
            CoreConstructor.__init__(self)
            self.file = file

        def get_single_node(self) -> Node | None:
            return Composer.get_single_node(self)  # the bounded composer, not libyaml's
else:  # PyYAML built without libyaml
    FastCoreLoader = None


def fast_reads_alike(text: str) -> bool:
    """Whether ``FastCoreLoader`` reads ``text`` as ``CoreLoader`` does: not with a tab (PyYAML
    refuses tabs in places where YAML and libyaml allow them: ``a: x\ty``), a byte order mark
    (libyaml does not count it in columns) or a character YAML forbids (``CoreLoader`` refuses
    those before reading anything, libyaml only where it meets them)."""
    return "\t" not in text and not text.startswith("\ufeff") and Reader.NON_PRINTABLE.search(text) is None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


def _short(tag: str) -> str:
    return "!!" + tag[len(TAG):] if tag.startswith(TAG) else tag


def _refuse(message: str, mark: Any, file: str, hint: str) -> SpecError:
    return SpecError(message, hint=hint, where=Where(file=file, line=mark.line + 1, column=mark.column + 1))


_YAML11 = Resolver()
_YAML11_CONSTRUCTOR = SafeConstructor()


def yaml11_reading(value: str) -> tuple[bool, Any]:
    """How a YAML 1.1 reader (PyYAML's safe loader) reads the plain scalar ``value``:
    (True, value), or (False, None) when it cannot (e.g. ``2024-13-45`` as a date)."""
    if len(value) > MAX_DIGITS:
        return False, None  # no YAML 1.1 number or date is that long: a string in both
    tag = _YAML11.resolve(ScalarNode, value, (True, False))
    constructor = SafeConstructor.yaml_constructors.get(tag)
    if constructor is None:
        return False, None
    try:
        return True, constructor(_YAML11_CONSTRUCTOR, ScalarNode(tag, value))
    except (ValueError, TypeError, OverflowError, yaml.YAMLError):
        return False, None


def differences(loader: CoreLoader, root: Node) -> list[Difference]:
    """Plain scalars under ``root`` that YAML 1.1 reads differently, in document order (each once)."""
    out: list[Difference] = []
    seen: set[int] = set()
    readings: dict[tuple[str, str], tuple[bool, Any, Any]] = {}  # (tag, text) -> (differs, 1.2, 1.1)
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            if id(node) in loader.plain and node.tag != TAG + "merge":
                reading = readings.get((node.tag, node.value))
                if reading is None:
                    ok, old = yaml11_reading(node.value)
                    new = loader.yaml_constructors[node.tag](loader, node)
                    reading = readings[(node.tag, node.value)] = (
                        ok and (type(old) is not type(new) or repr(old) != repr(new)), new, old)
                if reading[0]:
                    out.append(Difference(node, reading[1], reading[2]))
        else:
            stack.extend(reversed(_children(node)))
    return sorted(out, key=lambda d: (d.node.start_mark.line, d.node.start_mark.column))
