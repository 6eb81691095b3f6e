"""Trial metrics: training code writes JSON lines, the orchestrator reads them incrementally.

From Python::

    from orchestrator import report
    report(step=3, val_accuracy=0.91, loss=0.2)

From a shell script (``step`` and ``time`` are optional; other keys are metrics)::

    echo '{"val_accuracy": 0.9, "step": 3}' >> "$ORCH_METRICS_FILE"

Each line is one JSON object ``{"step": int | null, "time": unix seconds, <metric>: value}``
appended to ``$ORCH_METRICS_FILE``. Without that variable ``report`` prints the line to stdout
prefixed ``ORCH_METRIC `` (read back with ``parse_stdout_metrics``), so nothing is lost. Values
are finite numbers or strings. Readers never fail on bad input: ``MetricsReader`` counts
unreadable lines in ``garbage_lines`` and skips them.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

METRICS_FILE_ENV = "ORCH_METRICS_FILE"
STDOUT_PREFIX = "ORCH_METRIC "
RESERVED_KEYS = frozenset({"step", "time"})
MAX_LINE_BYTES = 1 << 20
_write_lock = threading.Lock()


@dataclass(frozen=True)
class MetricRecord:
    """One reported line: ``step`` (None when not given), ``time`` (None when not given), values."""

    step: int | None
    time: float | None
    values: dict[str, float | int | str] = field(default_factory=dict)


def report(step: int | None = None, **metrics: Any) -> None:
    """Append one metrics line for the current trial (thread-safe; one write per line)."""
    if not metrics:
        raise ValueError("report() needs at least one metric, like report(step=1, loss=0.5)")
    if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
        raise ValueError(f"step must be an integer or None, got {step!r}")
    reserved = RESERVED_KEYS & set(metrics)
    if reserved:
        raise ValueError(f"metric names {sorted(reserved)} are reserved; report them under another name")
    line: dict[str, Any] = {"step": None if step is None else int(step), "time": time.time()}
    line.update({name: _checked_value(name, value) for name, value in metrics.items()})
    text = json.dumps(line, allow_nan=False) + "\n"
    path = os.environ.get(METRICS_FILE_ENV)
    if not path:
        print(STDOUT_PREFIX + text, end="", flush=True)
        return
    data = text.encode()
    with _write_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
        finally:
            os.close(fd)


def _checked_value(name: str, value: Any) -> float | int | str:
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars, 0-d arrays and tensors
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"metric {name!r} must be a finite number or a string, got {type(value).__name__} {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"metric {name!r} is {number}; only finite numbers can be reported "
                         "(skip this report or report a string such as 'nan')")
    return number


class MetricsReader:
    """Parses a metrics file fed in chunks as it grows (read at ``offset``, then ``feed``).

    Complete lines become records; a partial last line waits for the next chunk (``finish``
    parses it once the file is final). Bad lines are counted in ``garbage_lines``.
    """

    def __init__(self) -> None:
        self.offset = 0
        self.garbage_lines = 0
        self._pending = b""

    def feed(self, chunk: bytes) -> list[MetricRecord]:
        """Records of the complete lines ``chunk`` finishes."""
        self.offset += len(chunk)
        data = self._pending + chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE_BYTES:
            self._pending = b""
            self.garbage_lines += 1
        return self._parse(lines)

    def finish(self) -> list[MetricRecord]:
        """Records of a last line without a newline (call when the file will not grow)."""
        lines, self._pending = [self._pending], b""
        return self._parse(lines)

    def _parse(self, lines: Iterable[bytes]) -> list[MetricRecord]:
        records = []
        for raw in lines:
            if not raw.strip():
                continue
            record = parse_metric_line(raw.decode("utf-8", errors="replace"))
            if record is None:
                self.garbage_lines += 1
            else:
                records.append(record)
        return records


def parse_metric_line(text: str) -> MetricRecord | None:
    """One JSON line as a record, or None when it is not an object with at least one metric."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    step = data.get("step")
    if isinstance(step, float) and step.is_integer():
        step = int(step)
    if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
        return None
    stamp = data.get("time")
    if stamp is not None and (isinstance(stamp, bool) or not isinstance(stamp, (int, float))):
        return None
    values = {key: value for key, value in data.items() if key not in RESERVED_KEYS and _readable(value)}
    if not values:
        return None
    return MetricRecord(step=step, time=None if stamp is None else float(stamp), values=values)


def _readable(value: Any) -> bool:
    if isinstance(value, str):
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def parse_stdout_metrics(text: str) -> list[MetricRecord]:
    """Records from ``ORCH_METRIC {...}`` lines in captured stdout.

    The prefix may follow other text on the line (launchers such as mpirun tag output lines);
    other lines and unreadable payloads are ignored.
    """
    records = []
    for line in text.splitlines():
        start = line.find(STDOUT_PREFIX)
        if start < 0:
            continue
        record = parse_metric_line(line[start + len(STDOUT_PREFIX):])
        if record is not None:
            records.append(record)
    return records


def metric_history(records: Iterable[MetricRecord], metric: str) -> list[tuple[int, float]]:
    """``(step, value)`` of one numeric metric in report order, for early termination.

    A report of the metric without a step gets the previous step + 1 (the first gets 1), so each
    report counts as one interval as in Azure ML; string values are skipped.
    """
    history: list[tuple[int, float]] = []
    last_step = 0
    for record in records:
        value = record.values.get(metric)
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if record.step is not None:
            last_step = record.step
        elif numeric:
            last_step += 1
        if numeric:
            history.append((last_step, float(value)))  # type: ignore[arg-type]
    return history
