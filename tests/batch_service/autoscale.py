"""Evaluating Batch autoscale formulas (a practical subset of the formula language).

A formula is ``;``-separated assignments ``$Var = expr`` or ``var = expr``. Expressions have
numbers, variables, ``+ - * / %``, comparisons, ``&& || !``, ``cond ? a : b``, parentheses,
the functions ``min max avg sum floor ceil round abs`` and ``TimeInterval_*`` constants.
Service variables (``$CurrentDedicatedNodes``, ``$PendingTasks`` ...) are single samples;
``$X.GetSample(...)`` and ``$X.GetSamplePercent(...)`` read them. Bare words such as
``requeue`` are string values (for ``$NodeDeallocationOption``).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+(?:\.\d+)?)|(?P<name>\$?[A-Za-z_]\w*)"
                    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!?:(),.=;]))")
_FUNCTIONS: dict[str, Callable[..., float]] = {
    "min": lambda *a: min(a), "max": lambda *a: max(a), "avg": lambda *a: sum(a) / len(a),
    "sum": lambda *a: sum(a), "floor": math.floor, "ceil": math.ceil, "round": round, "abs": abs,
}
_TIME_INTERVALS = {"TimeInterval_Zero": 0, "TimeInterval_Second": 1, "TimeInterval_Minute": 60,
                   "TimeInterval_Hour": 3600, "TimeInterval_Day": 86400, "TimeInterval_Week": 604800}
_BINARY: dict[str, tuple[int, Callable[[Any, Any], Any]]] = {
    "||": (1, lambda a, b: float(bool(a) or bool(b))), "&&": (2, lambda a, b: float(bool(a) and bool(b))),
    "==": (3, lambda a, b: float(a == b)), "!=": (3, lambda a, b: float(a != b)),
    "<": (4, lambda a, b: float(a < b)), "<=": (4, lambda a, b: float(a <= b)),
    ">": (4, lambda a, b: float(a > b)), ">=": (4, lambda a, b: float(a >= b)),
    "+": (5, lambda a, b: a + b), "-": (5, lambda a, b: a - b),
    "*": (6, lambda a, b: a * b), "/": (6, lambda a, b: a / b), "%": (6, lambda a, b: a % b),
}
ENUM_WORDS = ("requeue", "terminate", "taskcompletion", "retaineddata")


class FormulaError(ValueError):
    """The formula cannot be parsed or evaluated."""


def _tokenize(text: str) -> list[str]:
    tokens, position = [], 0
    text = re.sub(r"//[^\n]*", "", text)
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if not match:
            raise FormulaError(f"unexpected character {text[position:].strip()[0]!r}")
        tokens.append(match.group(match.lastgroup or 0))
        position = match.end()
    return tokens


class _Evaluator:
    def __init__(self, tokens: list[str], variables: dict[str, Any]) -> None:
        self.tokens, self.index, self.variables = tokens, 0, variables

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise FormulaError(f"expected {expected or 'a token'}, found {token or 'end of formula'}")
        self.index += 1
        return token

    def statements(self) -> None:
        while self.peek() is not None:
            if self.peek() == ";":
                self.take()
                continue
            name = self.take()
            if not re.fullmatch(r"\$?[A-Za-z_]\w*", name):
                raise FormulaError(f"expected a variable name, found {name!r}")
            self.take("=")
            self.variables[name] = self.expression(0)
            if self.peek() is not None:
                self.take(";")

    def expression(self, min_precedence: int) -> Any:
        left = self.unary()
        while True:
            token = self.peek()
            if token == "?" and min_precedence == 0:
                self.take()
                when_true = self.expression(0)
                self.take(":")
                when_false = self.expression(0)
                left = when_true if left else when_false
                continue
            if token not in _BINARY or _BINARY[token][0] <= min_precedence:
                return left
            precedence, apply = _BINARY[self.take()]
            right = self.expression(precedence)
            try:
                left = apply(left, right)
            except (TypeError, ZeroDivisionError) as exc:
                raise FormulaError(f"cannot evaluate {token}: {exc}") from exc

    def unary(self) -> Any:
        token = self.take()
        if token == "-":
            return -self.unary()
        if token == "!":
            return float(not self.unary())
        if token == "(":
            value = self.expression(0)
            self.take(")")
            return value
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return float(token)
        return self.name(token)

    def name(self, token: str) -> Any:
        if not re.fullmatch(r"\$?[A-Za-z_]\w*", token):
            raise FormulaError(f"unexpected {token!r}")
        if self.peek() == "(" and token in _FUNCTIONS:
            self.take("(")
            args = [self.expression(0)]
            while self.peek() == ",":
                self.take()
                args.append(self.expression(0))
            self.take(")")
            return float(_FUNCTIONS[token](*args))
        if token in _TIME_INTERVALS:
            return float(_TIME_INTERVALS[token])
        if token.lower() in ENUM_WORDS:
            return token.lower()
        if token not in self.variables:
            raise FormulaError(f"undefined variable {token}")
        value = self.variables[token]
        if self.peek() == ".":
            self.take(".")
            method = self.take()
            self.take("(")
            depth = 1
            while depth:
                depth += {"(": 1, ")": -1}.get(self.take(), 0)
            return 100.0 if method == "GetSamplePercent" else value
        return value


def evaluate_formula(formula: str, service_variables: dict[str, Any]) -> dict[str, Any]:
    """All variables after running ``formula`` with the given service variables preset."""
    variables: dict[str, Any] = dict(service_variables)
    _Evaluator(_tokenize(formula), variables).statements()
    return variables


def format_results(variables: dict[str, Any]) -> str:
    """Batch's ``autoScaleRun.results`` string for the standard output variables."""
    def text(value: Any) -> str:
        return value if isinstance(value, str) else f"{int(value)}" if float(value).is_integer() else f"{value}"
    names = ("$TargetDedicatedNodes", "$TargetLowPriorityNodes", "$NodeDeallocationOption")
    return ";".join(f"{name}={text(variables[name])}" for name in names if name in variables)
