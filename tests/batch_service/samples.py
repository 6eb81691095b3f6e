"""The metric history an autoscale formula reads, as the Batch documentation describes it.

Batch records a sample of every service-defined metric of a pool every 30 seconds
(``settings.autoscale_sample_period_s``), from the pool's creation on; a sample becomes
available to formulas only after a delay (about a minute: ``autoscale_sample_delay_s``). A metric
is an object with the documented methods:

- ``GetSample(count)``: the last ``count`` available samples;
- ``GetSample(start [, samplePercent])``, ``GetSample(start, end [, samplePercent])``: the
  available samples taken in a window. ``start``/``end`` are time intervals looked back from now
  (``GetSample(TimeInterval_Minute, TimeInterval_Minute * 6)``: from six to one minute ago) or
  timestamps; a window given by one bound ends now. With ``samplePercent``, fewer than that
  percentage of the window's possible samples fails the evaluation (``InsufficientSampleData``:
  "Insufficient data from data set: $X wanted P%, received Q%"), and the pool keeps its targets;
- ``GetSamplePercent(start [, end])``: that percentage (at most 100);
- ``Count()``, ``HistoryBeginTime()``, ``GetSamplePeriod()``.

Used as a plain value, a metric is its current value (``$CurrentDedicatedNodes * 1.1``).
Samples older than a week are dropped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone

from .formula_values import EvaluationError, Interval, Timestamp, Value, Vec, type_name

HISTORY_S = 7 * 86400.0
TASK_METRICS = ("$ActiveTasks", "$RunningTasks", "$PendingTasks", "$SucceededTasks", "$FailedTasks")
NODE_METRICS = ("$CurrentDedicatedNodes", "$CurrentLowPriorityNodes", "$PreemptedNodeCount", "$UsableNodeCount",
                "$SampleNodeCount", "$TaskSlotsPerNode")
RESOURCE_METRICS = ("$CPUPercent", "$WallClockSeconds", "$MemoryBytes", "$DiskBytes", "$DiskReadBytes",
                    "$DiskWriteBytes", "$DiskReadOps", "$DiskWriteOps", "$NetworkInBytes", "$NetworkOutBytes")
METRICS = TASK_METRICS + NODE_METRICS + RESOURCE_METRICS


@dataclass
class MetricHistory:
    """Samples of one pool's metrics: ``(epoch seconds, {metric: value})``, oldest first."""

    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def due(self, now: float, period: float) -> bool:
        return not self.samples or now - self.samples[-1][0] >= period

    def record(self, now: float, values: dict[str, float]) -> None:
        self.samples.append((now, dict(values)))
        while self.samples and now - self.samples[0][0] > HISTORY_S:
            self.samples.pop(0)


@dataclass(frozen=True)
class Metric:
    """One service-defined metric as a formula sees it at ``now`` (see the module docstring)."""

    name: str
    current: float
    history: MetricHistory
    now: float
    period: float
    delay: float

    def available(self) -> list[tuple[float, float]]:
        cutoff = self.now - self.delay
        return [(t, float(values.get(self.name, 0.0))) for t, values in self.history.samples if t <= cutoff]

    def method(self, name: str, args: list[Value], where: str) -> Value:
        if name == "GetSample":
            return self._get_sample(args, where)
        if name == "GetSamplePercent":
            if not 1 <= len(args) <= 2:
                raise EvaluationError("GetSamplePercent() takes a start and an optional end")
            return self._window(args)[1]
        if name == "Count":
            return float(len(self.available()))
        if name == "HistoryBeginTime":
            available = self.available()
            if not available:
                raise EvaluationError(f"{self.name} has no samples yet")
            return Timestamp(datetime.fromtimestamp(available[0][0], timezone.utc))
        if name == "GetSamplePeriod":
            return Interval(self.period)
        raise EvaluationError(f"{self.name} has no method {name}()")

    def _get_sample(self, args: list[Value], where: str) -> Vec:
        if len(args) == 1 and isinstance(args[0], float):
            count = max(0, int(args[0]))
            return Vec(tuple(value for _, value in self.available()[-count:] if count))
        bounds = [arg for arg in args if isinstance(arg, (Interval, Timestamp))]
        extra = args[len(bounds):]
        if not 1 <= len(bounds) <= 2 or args[:len(bounds)] != bounds or len(extra) > 1 or (
                extra and not isinstance(extra[0], float)):
            shown = ", ".join(type_name(arg) for arg in args)
            raise EvaluationError(f"{self.name}.GetSample({shown}): give a count, or a start (and an end) as "
                                  "time intervals or timestamps, then an optional sample percentage")
        values, percent = self._window(bounds)
        if extra and isinstance(extra[0], float) and percent < extra[0]:
            raise EvaluationError(f"{where}: Insufficient data from data set: {self.name} wanted "
                                  f"{extra[0]:g}%, received {percent:g}%", code="InsufficientSampleData")
        return Vec(tuple(values))

    def _window(self, bounds: list[Value]) -> tuple[list[float], float]:
        """The available values in the window and the percentage of its possible samples they are."""
        edges = sorted(self._instant(bound) for bound in bounds)
        low, high = (edges[0], self.now) if len(edges) == 1 else (edges[0], edges[1])
        values = [value for t, value in self.available() if low <= t <= high]
        possible = max(1, math.floor((high - low) / self.period + 1e-9))
        return values, min(100.0, 100.0 * len(values) / possible)

    def _instant(self, bound: Value) -> float:
        if isinstance(bound, Interval):
            return self.now - bound.seconds
        if isinstance(bound, Timestamp):
            return bound.moment.timestamp()
        raise EvaluationError(f"a sample window is bounded by time intervals or timestamps, not a {type_name(bound)}")
