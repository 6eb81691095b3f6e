"""Batch autoscale formulas: parsing and evaluation over a pool's sampled metrics.

A formula is statements ``name = expression`` (or a bare call such as ``stop()``) separated by
``;`` (the last may omit it), with
``//`` comments, at most 8 KB and 100 statements. Expressions are the language of
``formula_values`` (numbers, ``"strings"``, bare words such as ``taskcompletion``, variables,
``?:``, ``|| && == != < <= > >= + - * / ! -``, function calls, ``.member`` of a timestamp and
``.Method(...)`` of a service-defined metric: ``samples``). Service-defined variables start with
``$``: the metrics are read-only; ``$TargetDedicatedNodes`` (alias ``$TargetDedicated``),
``$TargetLowPriorityNodes`` (``$TargetLowPriority``) and ``$NodeDeallocationOption`` are
read-write, preset to the pool's current targets and ``requeue``; a name with and without its
alias both set: the full name wins. Other names (with or without ``$``) are the formula's own.

``parse`` raises ``FormulaSyntaxError`` (Batch answers 400 ``AutoScalingFormulaSyntaxError`` when a
pool is created or autoscale is enabled with it); ``evaluate`` reports an evaluation that fails
(an ``InsufficientSampleData`` window, a type error, an unknown variable) as ``Outcome.error``,
Batch's ``autoScaleRun.error``, and the pool keeps its targets. Targets are truncated to whole
nodes, as the documentation's ``(tasks + 3) / 4`` idiom relies on.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .formula_values import (
    FUNCTION_NAMES,
    TIME_INTERVALS,
    EvaluationError,
    Interval,
    StopEvaluation,
    Timestamp,
    Value,
    binary,
    call,
    format_value,
    truthy,
    unary,
)
from .samples import METRICS, Metric

MAX_FORMULA_BYTES = 8 * 1024
MAX_STATEMENTS = 100
ENUM_WORDS = ("requeue", "terminate", "taskcompletion", "retaineddata")
TARGETS = {"$TargetDedicatedNodes": "$TargetDedicated", "$TargetLowPriorityNodes": "$TargetLowPriority"}
WRITABLE = (*TARGETS, *TARGETS.values(), "$NodeDeallocationOption")
METHODS = ("GetSample", "GetSamplePercent", "Count", "HistoryBeginTime", "GetSamplePeriod")
_TOKEN = re.compile(r"(?P<space>\s+|//[^\n]*)|(?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+)"
                    r"|(?P<string>\"[^\"\n]*\")|(?P<name>\$?[A-Za-z_]\w*)"
                    r"|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/<>!?:(),.=;])")
_BINARY_LEVELS = (("||",), ("&&",), ("==", "!="), ("<", "<=", ">", ">="), ("+", "-"), ("*", "/"))


class FormulaSyntaxError(ValueError):
    """The formula does not parse."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    line: int
    column: int

    @property
    def where(self) -> str:
        return f"Line {self.line}, Col {self.column}"


def tokenize(formula: str) -> list[Token]:
    if len(formula.encode()) > MAX_FORMULA_BYTES:
        raise FormulaSyntaxError(f"The formula is longer than {MAX_FORMULA_BYTES} bytes.")
    tokens, position, line, line_start = [], 0, 1, 0
    while position < len(formula):
        match = _TOKEN.match(formula, position)
        if match is None:
            raise FormulaSyntaxError(f"Line {line}, Col {position - line_start + 1}: unexpected character "
                                     f"{formula[position]!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(Token(kind, match.group(), line, position - line_start + 1))
        newlines = match.group().count("\n")
        if newlines:
            line += newlines
            line_start = match.start() + match.group().rfind("\n") + 1
        position = match.end()
    return tokens


Node = tuple[Any, ...]


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens, self.index = tokens, 0

    def peek(self) -> Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> Token:
        token = self.peek()
        if token is None or (expected is not None and token.text != expected):
            where = token.where if token else "End of formula"
            raise FormulaSyntaxError(f"{where}: expected {expected or 'more'}, found "
                                     f"{token.text if token else 'nothing'}")
        self.index += 1
        return token

    def statements(self) -> list[tuple[str, Node, Token]]:
        out: list[tuple[str, Node, Token]] = []
        while self.peek() is not None:
            if self.peek().text == ";":  # type: ignore[union-attr]
                self.take()
                continue
            target = self.take()
            if target.kind == "name" and self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                self.index -= 1  # a bare call statement, e.g. ``stop();``
                out.append(("", self.expression(), target))
                if self.peek() is not None:
                    self.take(";")
                continue
            if target.kind != "name":
                raise FormulaSyntaxError(f"{target.where}: expected a variable to assign, found {target.text}")
            if target.text.startswith("$") and target.text in METRICS:
                raise FormulaSyntaxError(f"{target.where}: {target.text} is read-only")
            self.take("=")
            out.append((target.text, self.expression(), target))
            if self.peek() is not None:
                self.take(";")
        if len(out) > MAX_STATEMENTS:
            raise FormulaSyntaxError(f"The formula has {len(out)} statements; at most {MAX_STATEMENTS} are allowed.")
        return out

    def expression(self) -> Node:
        condition = self.binary(0)
        token = self.peek()
        if token is not None and token.text == "?":
            self.take()
            when_true = self.expression()
            self.take(":")
            return ("tern", condition, when_true, self.expression(), token)
        return condition

    def binary(self, level: int) -> Node:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        while (token := self.peek()) is not None and token.kind == "op" and token.text in _BINARY_LEVELS[level]:
            self.take()
            left = ("bin", token.text, left, self.binary(level + 1), token)
        return left

    def unary(self) -> Node:
        token = self.peek()
        if token is not None and token.text in ("-", "!"):
            self.take()
            return ("un", token.text, self.unary(), token)
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while (token := self.peek()) is not None and token.text == ".":
            self.take()
            name = self.take()
            if self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
                if name.text not in METHODS:
                    raise FormulaSyntaxError(f"{name.where}: unknown method {name.text}()")
                node = ("method", node, name.text, self.arguments(), name)
            else:
                node = ("member", node, name.text, name)
        return node

    def arguments(self) -> list[Node]:
        self.take("(")
        args: list[Node] = []
        while self.peek() is not None and self.peek().text != ")":  # type: ignore[union-attr]
            args.append(self.expression())
            if self.peek() is not None and self.peek().text == ",":  # type: ignore[union-attr]
                self.take()
        self.take(")")
        return args

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "number":
            return ("num", float(token.text))
        if token.kind == "string":
            return ("str", token.text[1:-1])
        if token.text == "(":
            inner = self.expression()
            self.take(")")
            return inner
        if token.kind != "name":
            raise FormulaSyntaxError(f"{token.where}: unexpected {token.text}")
        if self.peek() is not None and self.peek().text == "(":  # type: ignore[union-attr]
            if token.text not in FUNCTION_NAMES:
                raise FormulaSyntaxError(f"{token.where}: unknown function {token.text}()")
            return ("call", token.text, self.arguments(), token)
        if token.text in TIME_INTERVALS:
            return ("interval", TIME_INTERVALS[token.text])
        if token.text.lower() in ENUM_WORDS:
            return ("str", token.text.lower())
        return ("var", token.text, token)


def parse(formula: str) -> list[tuple[str, Node, Token]]:
    """The formula's statements; ``FormulaSyntaxError`` when it is not one."""
    return _Parser(tokenize(formula)).statements()


@dataclass
class Outcome:
    """An evaluation: every variable's final value, the names assigned in order, and the error."""

    variables: dict[str, Value]
    assigned: list[str] = field(default_factory=list)
    error: EvaluationError | None = None

    def target(self, name: str, current: int) -> int:
        """A target in whole nodes (truncated; negative is 0); ``current`` when not a double."""
        value = self.variables.get(name)
        return max(0, int(value)) if isinstance(value, float) else current

    def deallocation(self) -> str:
        value = self.variables.get("$NodeDeallocationOption")
        return value if isinstance(value, str) and value in ENUM_WORDS else "requeue"

    def results(self) -> str:
        """``autoScaleRun.results``: assigned targets, the deallocation option, then the formula's own variables."""
        shown = [name for name in WRITABLE[:4] if name in self.assigned] + ["$NodeDeallocationOption"]
        own = sorted({name for name in self.assigned if name not in WRITABLE}, key=str.lower)
        return ";".join(f"{name}={format_value(self.variables[name])}" for name in shown + own
                        if name in self.variables)


class _Evaluator:
    def __init__(self, variables: dict[str, Value], metrics: dict[str, Metric], now: datetime) -> None:
        self.variables, self.metrics, self.now = variables, metrics, now
        self.rng = random.Random()

    def value(self, node: Node) -> Value:
        kind = node[0]
        if kind in ("num", "str"):
            return node[1]  # type: ignore[no-any-return]
        if kind == "interval":
            return Interval(node[1])
        if kind == "var":
            return self.variable(node[1], node[2])
        if kind == "tern":
            return self.value(node[2]) if self._truthy(node[1], node[4]) else self.value(node[3])
        if kind == "bin":
            return self._wrap(node[4], lambda: binary(node[1], self.value(node[2]), self.value(node[3])))
        if kind == "un":
            return self._wrap(node[3], lambda: unary(node[1], self.value(node[2])))
        if kind == "call":
            return self._wrap(node[3], lambda: call(node[1], [self.value(arg) for arg in node[2]], self.now, self.rng))
        if kind == "member":
            return self._member(node)
        return self._method(node)

    def _truthy(self, node: Node, token: Token) -> bool:
        return self._wrap(token, lambda: truthy(self.value(node)))  # type: ignore[no-any-return]

    def variable(self, name: str, token: Token) -> Value:
        if name in self.variables:
            return self.variables[name]
        if name in self.metrics:
            return self.metrics[name].current
        raise EvaluationError(f"{token.where}: undefined variable {name}")

    def _member(self, node: Node) -> Value:
        target = self.value(node[1])
        if not isinstance(target, Timestamp):
            raise EvaluationError(f"{node[3].where}: .{node[2]} needs a timestamp")
        return self._wrap(node[3], lambda: target.member(node[2]))

    def _method(self, node: Node) -> Value:
        subject, name, args, token = node[1], node[2], node[3], node[4]
        if subject[0] != "var" or subject[1] not in self.metrics:
            raise EvaluationError(f"{token.where}: {name}() is a method of a service-defined metric")
        values = [self.value(arg) for arg in args]
        return self._wrap(token, lambda: self.metrics[subject[1]].method(name, values, token.where))

    @staticmethod
    def _wrap(token: Token, compute: Any) -> Any:
        try:
            return compute()
        except EvaluationError as exc:
            if str(exc).startswith("Line "):
                raise
            raise EvaluationError(f"{token.where}: {exc}", code=exc.code) from None


def evaluate(formula: str, *, metrics: dict[str, Metric], targets: tuple[int, int], now: datetime) -> Outcome:
    """Run ``formula`` (already known to parse) against the pool's metrics and current targets."""
    variables: dict[str, Value] = {"$TargetDedicatedNodes": float(targets[0]), "$TargetLowPriorityNodes":
                                   float(targets[1]), "$NodeDeallocationOption": "requeue"}
    outcome = Outcome(variables)
    evaluator = _Evaluator(variables, metrics, now)
    try:
        for name, expression, _ in parse(formula):
            value = evaluator.value(expression)
            if name:
                variables[name] = value
                outcome.assigned.append(name)
    except StopEvaluation:
        pass
    except EvaluationError as exc:
        outcome.error = exc
    for full, alias in TARGETS.items():
        if alias in outcome.assigned and full not in outcome.assigned:
            variables[full] = variables[alias]
    return outcome


def run_error(error: EvaluationError) -> dict[str, Any]:
    """``autoScaleRun.error`` for a failed evaluation."""
    messages = {"InsufficientSampleData": "Autoscale evaluation failed due to insufficient sample data"}
    return {"code": error.code, "message": messages.get(error.code, "Autoscale evaluation failed"),
            "values": [{"name": "Message", "value": str(error)}]}
