"""The values of Batch's autoscale formula language, and what its operators and functions do
with them, as the autoscale article of the Batch documentation ("Create an automatic formula for
scaling compute nodes in a Batch pool": Types, Operations, Functions) lists them.

Types: ``double`` (float), ``doubleVec`` (``Vec``), ``string`` (str: the bare words such as
``taskcompletion``, and quoted strings), ``timestamp`` (``Timestamp``, with the members ``year``,
``month``, ``day``, ``weekday`` (1 = Monday), ``hour``, ``minute``, ``second``) and
``timeinterval`` (``Interval``). Only the operations of the article's table exist (``%`` is not
one; ``timestamp - timeinterval`` is not either: add a negative interval); a function takes a
*doubleVecList* (doubles and vectors, flattened). ``ceil``, ``floor``, ``round`` and ``abs`` are
not in the language. Anything else is an ``EvaluationError`` naming the operator or function.
"""
from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Union


class EvaluationError(ValueError):
    """A formula that parsed but cannot be evaluated; ``code`` is the ``autoScaleRun.error`` code."""

    def __init__(self, message: str, code: str = "InvalidFormula") -> None:
        super().__init__(message)
        self.code = code


class StopEvaluation(Exception):
    """``stop()``: evaluation ends here; the variables keep the values they have."""


@dataclass(frozen=True)
class Vec:
    """A ``doubleVec``."""

    items: tuple[float, ...]

    def __str__(self) -> str:
        return "[" + ",".join(format_double(item) for item in self.items) + "]"


@dataclass(frozen=True)
class Interval:
    """A ``timeinterval``, in seconds."""

    seconds: float

    def __str__(self) -> str:
        whole = abs(self.seconds)
        hours, rest = divmod(whole, 3600)
        minutes, seconds = divmod(rest, 60)
        sign = "-" if self.seconds < 0 else ""
        return f"{sign}{int(hours):02d}:{int(minutes):02d}:{seconds:06.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Timestamp:
    """A ``timestamp`` (UTC)."""

    moment: datetime

    def member(self, name: str) -> float:
        values = {"year": self.moment.year, "month": self.moment.month, "day": self.moment.day,
                  "weekday": self.moment.isoweekday(), "hour": self.moment.hour, "minute": self.moment.minute,
                  "second": self.moment.second}
        if name not in values:
            raise EvaluationError(f"a timestamp has no member {name!r} (it has {', '.join(values)})")
        return float(values[name])

    def __str__(self) -> str:
        return self.moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.moment.microsecond // 1000:03d}Z"


Value = Union[float, Vec, str, Timestamp, Interval]
TIME_INTERVALS = {"TimeInterval_Zero": 0.0, "TimeInterval_100ns": 1e-7, "TimeInterval_Microsecond": 1e-6,
                  "TimeInterval_Millisecond": 1e-3, "TimeInterval_Second": 1.0, "TimeInterval_Minute": 60.0,
                  "TimeInterval_Hour": 3600.0, "TimeInterval_Day": 86400.0, "TimeInterval_Week": 604800.0,
                  "TimeInterval_Year": 365 * 86400.0}


def type_name(value: Value) -> str:
    return {float: "double", Vec: "doubleVec", str: "string", Timestamp: "timestamp",
            Interval: "timeinterval"}[type(value)]


def format_double(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def format_value(value: Value) -> str:
    """A value as ``autoScaleRun.results`` shows it."""
    return format_double(value) if isinstance(value, float) else str(value)


def truthy(value: Value) -> bool:
    """The condition of ``?:``, ``&&``, ``||`` and ``!``: a double, nonzero is true."""
    if not isinstance(value, float):
        raise EvaluationError(f"a condition must be a double, not a {type_name(value)}")
    return value != 0.0


_ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: _divide(a, b)}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b, ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b, "!=": lambda a, b: a != b}


def _divide(a: float, b: float) -> float:
    if b == 0:
        raise EvaluationError("division by zero")
    return a / b


def binary(op: str, left: Value, right: Value) -> Value:
    """``left op right`` for the operations the language has (see the module docstring)."""
    kinds = (type(left), type(right))
    if op in ("&&", "||") and kinds == (float, float):
        return float(truthy(left) and truthy(right)) if op == "&&" else float(truthy(left) or truthy(right))
    if op in _COMPARE and kinds[0] == kinds[1] and kinds[0] in (float, str, Timestamp, Interval):
        return float(_COMPARE[op](_comparable(left), _comparable(right)))
    result = _arithmetic(op, left, right) if op in _ARITHMETIC else None
    if result is None:
        raise EvaluationError(f"operator {op} is not defined for {type_name(left)} and {type_name(right)}")
    return result


def _comparable(value: Value) -> Any:
    if isinstance(value, Interval):
        return value.seconds
    if isinstance(value, Timestamp):
        return value.moment
    return value


def _arithmetic(op: str, left: Value, right: Value) -> Value | None:
    apply = _ARITHMETIC[op]
    if isinstance(left, float) and isinstance(right, float):
        return apply(left, right)
    if isinstance(left, Vec) and isinstance(right, float):
        return Vec(tuple(apply(item, right) for item in left.items))
    if isinstance(left, Vec) and isinstance(right, Vec):
        if len(left.items) != len(right.items):
            raise EvaluationError(f"vectors of lengths {len(left.items)} and {len(right.items)} cannot be combined")
        return Vec(tuple(apply(a, b) for a, b in zip(left.items, right.items)))
    if op == "*" and isinstance(left, float) and isinstance(right, Interval):
        return Interval(left * right.seconds)
    if op in ("*", "/") and isinstance(left, Interval) and isinstance(right, float):
        return Interval(apply(left.seconds, right))
    if op in ("+", "-") and isinstance(left, Interval) and isinstance(right, Interval):
        return Interval(apply(left.seconds, right.seconds))
    if op == "+" and isinstance(left, Interval) and isinstance(right, Timestamp):
        return Timestamp(_shift(right.moment, left.seconds))
    if op == "+" and isinstance(left, Timestamp) and isinstance(right, Interval):
        return Timestamp(_shift(left.moment, right.seconds))
    if op == "-" and isinstance(left, Timestamp) and isinstance(right, Timestamp):
        return Interval((left.moment - right.moment).total_seconds())
    return None


def _shift(moment: datetime, seconds: float) -> datetime:
    return datetime.fromtimestamp(moment.timestamp() + seconds, timezone.utc)


def unary(op: str, value: Value) -> Value:
    if op == "!" and isinstance(value, float):
        return float(not truthy(value))
    if op == "-" and isinstance(value, float):
        return -value
    if op == "-" and isinstance(value, Interval):
        return Interval(-value.seconds)
    raise EvaluationError(f"operator {op} is not defined for {type_name(value)}")


def flatten(name: str, args: list[Value]) -> list[float]:
    """A doubleVecList: doubles and vectors as one list of doubles."""
    out: list[float] = []
    for arg in args:
        if isinstance(arg, float):
            out.append(arg)
        elif isinstance(arg, Vec):
            out.extend(arg.items)
        else:
            raise EvaluationError(f"{name}() takes doubles and doubleVecs, not a {type_name(arg)}")
    return out


def _nonempty(name: str, values: list[float]) -> list[float]:
    if not values:
        raise EvaluationError(f"{name}() of an empty doubleVecList")
    return values


def _log(name: str, base: Callable[[float], float]) -> Callable[[list[Value]], Value]:
    def apply(args: list[Value]) -> Value:
        if len(args) == 1 and isinstance(args[0], float):
            return _positive_log(name, base, args[0])
        return Vec(tuple(_positive_log(name, base, item) for item in flatten(name, args)))
    return apply


def _positive_log(name: str, base: Callable[[float], float], value: float) -> float:
    if value <= 0:
        raise EvaluationError(f"{name}() of {format_double(value)}")
    return base(value)


def _percentile(args: list[Value]) -> Value:
    if len(args) != 2 or not isinstance(args[0], Vec) or not isinstance(args[1], float):
        raise EvaluationError("percentile() takes a doubleVec and a double")
    items = sorted(_nonempty("percentile", list(args[0].items)))
    rank = min(len(items) - 1, max(0, math.ceil(args[1] / 100.0 * len(items)) - 1))
    return items[rank]


def _val(args: list[Value]) -> Value:
    if len(args) != 2 or not isinstance(args[0], Vec) or not isinstance(args[1], float):
        raise EvaluationError("val() takes a doubleVec and a double")
    index = int(args[1])
    if not 0 <= index < len(args[0].items):
        raise EvaluationError(f"val(): index {index} is outside a vector of {len(args[0].items)}")
    return args[0].items[index]


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _list_function(name: str, reduce: Callable[[list[float]], float]) -> Callable[[list[Value]], Value]:
    return lambda args: float(reduce(_nonempty(name, flatten(name, args))))


def parse_time(text: str) -> datetime:
    """``time("...")``: W3C-DTF (``2026-12-01T17:32:59Z``) or RFC 1123 (``Tue, 01 Dec 2026 17:32:59 GMT``)."""
    for parse in (lambda: datetime.fromisoformat(text.replace("Z", "+00:00")), lambda: parsedate_to_datetime(text)):
        try:
            moment = parse()
        except (TypeError, ValueError, IndexError):
            continue
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
    raise EvaluationError(f"time(): {text!r} is neither a W3C-DTF nor an RFC 1123 date")


def call(name: str, args: list[Value], now: datetime, rng: random.Random) -> Value:
    """The function ``name`` applied to ``args``."""
    if name == "time":
        if not args:
            return Timestamp(now)
        if len(args) == 1 and isinstance(args[0], str):
            return Timestamp(parse_time(args[0]) if args[0] else now)
        raise EvaluationError("time() takes no argument or one date string")
    if name == "rand":
        return rng.random()
    if name == "stop":
        raise StopEvaluation
    if name == "len":
        return float(len(flatten(name, args)))
    function = FUNCTIONS.get(name)
    if function is None:
        raise EvaluationError(f"unknown function {name}()")
    return function(args)


FUNCTIONS: dict[str, Callable[[list[Value]], Value]] = {
    "avg": _list_function("avg", lambda v: sum(v) / len(v)), "max": _list_function("max", max),
    "min": _list_function("min", min), "sum": lambda args: float(sum(flatten("sum", args))),
    "norm": lambda args: math.sqrt(sum(x * x for x in flatten("norm", args))),
    "range": _list_function("range", lambda v: max(v) - min(v)), "std": _list_function("std", _std),
    "lg": _log("lg", math.log2), "ln": _log("ln", math.log), "log": _log("log", math.log10),
    "percentile": _percentile, "val": _val,
}
FUNCTION_NAMES = frozenset(FUNCTIONS) | {"time", "rand", "stop", "len"}
