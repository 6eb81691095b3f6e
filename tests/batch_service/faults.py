"""Fault injection and the request log.

A fault rule matches a method and a regex searched in the raw path. It fires for the next
``count`` matches, or with ``probability`` from its own ``random.Random(seed)`` (at most ``count``
times when both are given), or always. Kinds: ``"429"`` (with ``Retry-After``), ``"500"``,
``"503"`` (``ServerBusy``), ``"drop"`` (close the connection without an answer). ``timing="before"``
answers instead of handling the request; ``"after"`` handles it, then answers with the fault.
"""
from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from .errors import BatchApiError
from .timekeeping import format_timestamp, utc_now

FaultKind = Literal["429", "500", "503", "drop"]
FaultTiming = Literal["before", "after"]
FAULT_KINDS: tuple[str, ...] = ("429", "500", "503", "drop")
FAULT_OPTIONS = ("path", "method", "count", "probability", "seed", "retry_after", "timing")
_ERROR_CODES = {"429": "TooManyRequests", "500": "InternalError", "503": "ServerBusy"}


@dataclass
class FaultRule:
    """One injected fault; ``fired`` counts how often it has been applied. ValueError when invalid."""

    id: int
    kind: FaultKind
    path: str = ".*"
    method: str | None = None
    count: int | None = None
    probability: float | None = None
    seed: int | None = None
    retry_after: int = 1
    timing: FaultTiming = "before"
    fired: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {self.kind!r}")
        if self.timing not in ("before", "after"):
            raise ValueError(f"fault timing must be 'before' or 'after', not {self.timing!r}")
        if self.probability is not None and not 0.0 <= self.probability <= 1.0:
            raise ValueError("fault probability must be within [0, 1]")
        if self.count is not None and self.count < 0:
            raise ValueError("fault count must be >= 0")
        re.compile(self.path)
        self._rng = random.Random(self.seed)

    def matches(self, method: str, path: str) -> bool:
        """Whether this rule applies to the request (ignoring count and probability)."""
        if self.method and self.method.upper() != method.upper():
            return False
        return re.search(self.path, path) is not None

    def try_fire(self) -> bool:
        """Consume one firing if the count and the probability draw allow it."""
        if self.count is not None and self.fired >= self.count:
            return False
        if self.probability is not None and self._rng.random() >= self.probability:
            return False
        self.fired += 1
        return True

    def error(self) -> BatchApiError:
        """The Batch error this fault answers with (not for ``drop``)."""
        headers = {"Retry-After": str(self.retry_after)} if self.kind == "429" else {}
        return BatchApiError(_ERROR_CODES[self.kind], status=int(self.kind), headers=headers)

    def describe(self) -> dict[str, Any]:
        """JSON view of the rule."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "_rng"}


class FaultInjector:
    """Thread-safe set of fault rules, consulted once before and once after each request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, kind: FaultKind, **options: Any) -> FaultRule:
        """Create and register a rule (options as in ``FaultRule``)."""
        with self._lock:
            rule = FaultRule(id=next(self._ids), kind=kind, **options)
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def pick(self, method: str, path: str, timing: FaultTiming) -> FaultRule | None:
        """The first rule with this timing that matches and fires, if any."""
        with self._lock:
            return next((rule for rule in self._rules
                         if rule.timing == timing and rule.matches(method, path) and rule.try_fire()), None)

    def describe(self) -> list[dict[str, Any]]:
        """JSON view of all rules."""
        with self._lock:
            return [rule.describe() for rule in self._rules]


@dataclass(frozen=True)
class RequestRecord:
    """One handled request: ``status`` 0 means the connection was dropped."""

    method: str
    path: str
    status: int
    fault: str | None
    time: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RequestLog:
    """Thread-safe log of every Batch API request (admin requests excluded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[RequestRecord] = []

    def record(self, method: str, path: str, status: int, fault: str | None) -> None:
        with self._lock:
            self._records.append(RequestRecord(method, path, status, fault, format_timestamp(utc_now())))

    def entries(self, *, method: str | None = None, path_pattern: str | None = None) -> list[RequestRecord]:
        """Records, optionally only those with ``method`` and a path matching ``path_pattern``."""
        with self._lock:
            records = list(self._records)
        return [record for record in records if (method is None or record.method == method.upper())
                and (path_pattern is None or re.search(path_pattern, record.path))]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
