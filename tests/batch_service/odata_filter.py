"""A small OData ``$filter`` evaluator for list operations.

Supports ``eq ne gt ge lt le``, ``and or not``, parentheses, property paths with ``/``
(``executionInfo/result``), string (``'x'``, ``''`` escapes), number, ``true``/``false``/``null``
and ``datetime'...'`` literals, and ``startswith(path, 'prefix')``. Timestamps compare as times.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .errors import invalid_query
from .times import parse_timestamp

Predicate = Callable[[dict[str, Any]], bool]
_TOKEN = re.compile(
    r"\s*(?:(?P<datetime>datetime'[^']*')|(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_$][\w/.$]*)|(?P<punct>[(),]))"
)
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and b is not None and a > b,
    "ge": lambda a, b: a is not None and b is not None and a >= b,
    "lt": lambda a, b: a is not None and b is not None and a < b,
    "le": lambda a, b: a is not None and b is not None and a <= b,
}


class _FilterSyntaxError(ValueError):
    pass


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise _FilterSyntaxError(f"unexpected character at {position}")
        position = match.end()
        kind = match.lastgroup or ""
        raw = match.group(kind)
        if kind == "datetime":
            tokens.append(("literal", parse_timestamp(raw[9:-1])))
        elif kind == "string":
            tokens.append(("literal", raw[1:-1].replace("''", "'")))
        elif kind == "number":
            tokens.append(("literal", float(raw)))
        elif kind == "name" and raw in ("true", "false", "null"):
            tokens.append(("literal", {"true": True, "false": False, "null": None}[raw]))
        else:
            tokens.append((kind, raw))
    return tokens


def _lookup(item: dict[str, Any], path: str) -> Any:
    value: Any = item
    for part in path.split("/"):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _comparable(left: Any, right: Any) -> tuple[Any, Any]:
    """Coerce timestamps and numbers so that both sides compare sensibly."""
    if isinstance(right, datetime) and isinstance(left, str):
        left = parse_timestamp(left)
    if isinstance(left, datetime) and isinstance(right, str):
        right = parse_timestamp(right)
    if isinstance(right, float) and isinstance(left, str) and re.fullmatch(r"-?\d+(\.\d+)?", left):
        left = float(left)
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    return left, right


def _any_of(terms: list[Predicate]) -> Predicate:
    return lambda item: any(term(item) for term in terms)


def _all_of(terms: list[Predicate]) -> Predicate:
    return lambda item: all(term(item) for term in terms)


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, kind: str | None = None, value: Any = None) -> tuple[str, Any]:
        token = self.peek()
        if token is None or (kind and token[0] != kind) or (value is not None and token[1] != value):
            raise _FilterSyntaxError(f"expected {value or kind}, found {token}")
        self.index += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "name" and token[1] == word:
            self.index += 1
            return True
        return False

    def expression(self) -> Predicate:
        terms = [self.conjunction()]
        while self.keyword("or"):
            terms.append(self.conjunction())
        return terms[0] if len(terms) == 1 else _any_of(terms)

    def conjunction(self) -> Predicate:
        terms = [self.negation()]
        while self.keyword("and"):
            terms.append(self.negation())
        return terms[0] if len(terms) == 1 else _all_of(terms)

    def negation(self) -> Predicate:
        if self.keyword("not"):
            inner = self.negation()
            return lambda item: not inner(item)
        return self.comparison()

    def comparison(self) -> Predicate:
        if self.peek() == ("punct", "("):
            self.take("punct", "(")
            inner = self.expression()
            self.take("punct", ")")
            return inner
        left = self.operand()
        following = self.peek()
        if following is None or following in (("name", "and"), ("name", "or"), ("punct", ")")):
            return lambda item: bool(left(item))
        operator = self.take("name")[1]
        if operator not in _COMPARISONS:
            raise _FilterSyntaxError(f"unknown operator {operator!r}")
        right = self.operand()
        compare = _COMPARISONS[operator]
        return lambda item: compare(*_comparable(left(item), right(item)))

    def operand(self) -> Callable[[dict[str, Any]], Any]:
        kind, value = self.take()
        if kind == "literal":
            return lambda item: value
        if kind != "name":
            raise _FilterSyntaxError(f"unexpected {value!r}")
        if value == "startswith" and self.peek() == ("punct", "("):
            self.take("punct", "(")
            subject = self.operand()
            self.take("punct", ",")
            prefix = self.operand()
            self.take("punct", ")")
            return lambda item: str(subject(item) or "").lower().startswith(str(prefix(item)).lower())
        path = str(value)
        return lambda item: _lookup(item, path)


def compile_filter(text: str | None) -> Predicate:
    """A predicate over entity JSON; 400 InvalidQueryParameterValue when the filter is malformed."""
    if not text or not text.strip():
        return lambda item: True
    try:
        parser = _Parser(_tokenize(text))
        predicate = parser.expression()
        if parser.peek() is not None:
            raise _FilterSyntaxError(f"unexpected trailing {parser.peek()}")
    except (_FilterSyntaxError, ValueError) as exc:
        raise invalid_query("$filter", text, str(exc)) from exc
    return predicate
