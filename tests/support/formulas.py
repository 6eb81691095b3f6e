"""Evaluating an autoscale formula orch writes the way the local Batch service does, over a
made-up metric history: the pure tests of orch's formulas use it."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.batch_service.autoscale import Outcome, evaluate, parse
from tests.batch_service.samples import METRICS, Metric, MetricHistory

PERIOD, DELAY = 30.0, 60.0


def history(values: dict[str, float], now: datetime, *, minutes: float = 30.0,
            changed: dict[str, tuple[float, float]] | None = None) -> MetricHistory:
    """Samples every 30 s over the last ``minutes`` with ``values`` (others 0); ``changed`` maps a
    metric to (its value before, seconds before ``now`` it took its value)."""
    samples = MetricHistory()
    count = int(minutes * 60 / PERIOD)
    for index in range(count + 1):
        taken = now - timedelta(seconds=PERIOD * (count - index))
        row = dict(values)
        for name, (before, since) in (changed or {}).items():
            if (now - taken).total_seconds() > since:
                row[name] = before
        samples.record(taken.timestamp(), {name: float(value) for name, value in row.items()})
    return samples


def run(formula: str, values: dict[str, float], *, now: datetime | None = None, samples: bool = True,
        changed: dict[str, tuple[float, float]] | None = None, targets: tuple[int, int] = (0, 0)) -> Outcome:
    """``formula`` evaluated at ``now`` over constant ``values`` (or no samples at all)."""
    parse(formula)  # what Batch would refuse at pool creation
    now = now or datetime.now(timezone.utc)
    past = history(values, now, changed=changed) if samples else MetricHistory()
    metrics = {name: Metric(name, float(values.get(name, 0.0)), past, now.timestamp(), PERIOD, DELAY)
               for name in METRICS}
    outcome = evaluate(formula, metrics=metrics, targets=targets, now=now)
    assert outcome.error is None, outcome.error
    return outcome


def targets_after(formula: str, values: dict[str, float], **options: object) -> tuple[int, int]:
    """(dedicated, Spot) node targets ``formula`` sets over that history."""
    outcome = run(formula, values, **options)  # type: ignore[arg-type]
    return outcome.target("$TargetDedicatedNodes", 0), outcome.target("$TargetLowPriorityNodes", 0)
