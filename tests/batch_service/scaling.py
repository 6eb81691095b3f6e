"""Automatic scaling of pools over time: metric samples, evaluations, and enabling autoscale.

Every active autoscale pool's metrics are sampled every ``autoscale_sample_period_s`` from its
creation (``samples``). Its formula is evaluated when the pool is created, whenever autoscale is
enabled (``POST /pools/{id}/enableautoscale``: a new formula and/or interval; a new interval starts
a new evaluation schedule at the time of the request), and every ``autoScaleEvaluationInterval``
of the schedule (``settings.autoscale_interval_s`` overrides every pool's interval: tests use it
instead of the 5-minute minimum, which requests are still held to). Each evaluation records
``autoScaleRun`` (timestamp, results or error) and, when it succeeds, sets the targets and
``nodeDeallocationOption`` the next resize uses. Enabling autoscale is refused (409) while the
pool resizes or is being deleted, and within ``enable_autoscale_min_interval_s`` (30 s, as Batch
documents) of the last time.

Task metrics count the tasks of the pool's active jobs: ``$ActiveTasks`` the active ones whose
dependencies are met (a multi-instance task counts its instances), ``$RunningTasks`` those
preparing or running, ``$PendingTasks`` both; job manager tasks are tasks too. Node metrics count
nodes (``$CurrentLowPriorityNodes`` includes preempted ones). Resource metrics ($CPUPercent ...)
read 0: local nodes are processes of this machine.
"""
from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from .autoscale import FormulaSyntaxError, Outcome, evaluate, parse, run_error
from .entities import PoolRecord
from .errors import BatchApiError, invalid_property
from .samples import METRICS, Metric
from .scheduler import dependencies_satisfied
from .state import BatchState
from .timekeeping import format_timestamp, parse_duration, utc_now

_FIVE_MINUTES, _WEEK = timedelta(minutes=5), timedelta(hours=168)


def check_formula(formula: Any) -> str:
    """400 AutoScalingFormulaSyntaxError unless ``formula`` parses."""
    if not isinstance(formula, str) or not formula.strip():
        raise invalid_property("autoScaleFormula", "The formula must be a non-empty string.")
    try:
        parse(formula)
    except FormulaSyntaxError as exc:
        raise BatchApiError("AutoScalingFormulaSyntaxError", f"The specified auto-scaling formula has a syntax "
                                                             f"error: {exc}") from None
    return formula


def check_interval(value: Any) -> str:
    """400 InvalidPropertyValue unless ``value`` is an ISO-8601 duration of 5 minutes to 168 hours."""
    try:
        interval = parse_duration(str(value))
    except ValueError:
        raise invalid_property("autoScaleEvaluationInterval", "The value is not an ISO-8601 duration.") from None
    if not _FIVE_MINUTES <= interval <= _WEEK:
        raise invalid_property("autoScaleEvaluationInterval", "The value must be between 5 minutes and 168 hours.")
    return str(value)


def current_metrics(state: BatchState, pool: PoolRecord) -> dict[str, float]:
    """The pool's metrics now (see the module docstring); lock held."""
    active = running = succeeded = failed = 0
    for job in state.jobs.values():
        if job.pool_id.lower() != pool.id.lower() or job.state != "active":
            continue
        for task in job.tasks.values():
            if task.state == "active" and dependencies_satisfied(job, task):
                active += task.instances
            elif task.state in ("preparing", "running"):
                running += 1
            elif task.state == "completed":
                succeeded, failed = (succeeded + 1, failed) if task.succeeded() else (succeeded, failed + 1)
    dedicated, low_priority = pool.current_counts()
    preempted = sum(1 for node in pool.nodes.values() if node.state == "preempted")
    values = dict.fromkeys(METRICS, 0.0)
    values.update({"$ActiveTasks": active, "$RunningTasks": running, "$PendingTasks": active + running,
                   "$SucceededTasks": succeeded, "$FailedTasks": failed, "$CurrentDedicatedNodes": dedicated,
                   "$CurrentLowPriorityNodes": low_priority, "$PreemptedNodeCount": preempted,
                   "$UsableNodeCount": sum(1 for n in pool.nodes.values() if n.state in ("idle", "running")),
                   "$SampleNodeCount": len(pool.nodes), "$TaskSlotsPerNode": pool.task_slots_per_node})
    return {name: float(value) for name, value in values.items()}


def sample(state: BatchState, pool: PoolRecord) -> None:
    """Record a sample of the pool's metrics when one is due; lock held."""
    now = time.time()
    if pool.lifecycle.state == "active" and pool.samples.due(now, state.settings.autoscale_sample_period_s):
        pool.samples.record(now, current_metrics(state, pool))


def run_formula(state: BatchState, pool: PoolRecord, formula: str | None = None) -> Outcome:
    """Evaluate ``formula`` (the pool's) and record ``autoScaleRun``; on success set the pool's
    targets and deallocation option. Lock held."""
    settings, now = state.settings, utc_now()
    current = current_metrics(state, pool)
    metrics = {name: Metric(name, current[name], pool.samples, now.timestamp(), settings.autoscale_sample_period_s,
                            settings.autoscale_sample_delay_s) for name in METRICS}
    outcome = evaluate(str(formula or pool.spec["autoScaleFormula"]), metrics=metrics,
                       targets=(pool.target_dedicated, pool.target_low_priority), now=now)
    run: dict[str, Any] = {"timestamp": format_timestamp(now), "results": outcome.results()}
    if outcome.error is not None:
        run["error"] = run_error(outcome.error)
    else:
        pool.target_dedicated = outcome.target("$TargetDedicatedNodes", pool.target_dedicated)
        pool.target_low_priority = outcome.target("$TargetLowPriorityNodes", pool.target_low_priority)
        pool.deallocation_option = outcome.deallocation()
    pool.auto_scale_run = run
    pool.revision.touch()
    return outcome


def interval_s(state: BatchState, pool: PoolRecord) -> float:
    override = state.settings.autoscale_interval_s
    return override if override is not None else parse_duration(pool.auto_scale_interval).total_seconds()


def due(state: BatchState, pool: PoolRecord) -> bool:
    """Whether the pool's evaluation schedule has reached its next evaluation; lock held."""
    return pool.enable_auto_scale and time.monotonic() - pool.last_autoscale >= interval_s(state, pool)


def enable(state: BatchState, pool: PoolRecord, body: dict[str, Any]) -> None:
    """``enableautoscale`` (see the module docstring); the caller starts the resize. Lock held."""
    unknown = sorted(set(body) - {"autoScaleFormula", "autoScaleEvaluationInterval"})
    if unknown:
        raise BatchApiError("UnsupportedProperty", values=[("PropertyName", unknown[0])])
    formula = body.get("autoScaleFormula")
    if formula is None and not pool.enable_auto_scale:
        raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "autoScaleFormula")])
    if formula is not None:
        check_formula(formula)
    interval = body.get("autoScaleEvaluationInterval")
    if interval is not None:
        check_interval(interval)
    if pool.lifecycle.state == "deleting":
        raise BatchApiError("PoolBeingDeleted", values=[("PoolId", pool.id)])
    if pool.allocation.state != "steady":
        raise BatchApiError("OperationInvalidForCurrentState", "Automatic scaling cannot be enabled while the pool "
                            "is resizing.", values=[("PoolId", pool.id)])
    wait = state.settings.enable_autoscale_min_interval_s
    if pool.last_enabled is not None and time.monotonic() - pool.last_enabled < wait:
        raise BatchApiError("OperationInvalidForCurrentState", f"Automatic scaling can be enabled on a pool at "
                            f"most once every {wait:g} seconds.", values=[("PoolId", pool.id)])
    pool.spec.update(enableAutoScale=True, autoScaleFormula=formula or pool.spec.get("autoScaleFormula"))
    pool.spec.pop("targetDedicatedNodes", None)
    pool.spec.pop("targetLowPriorityNodes", None)
    if interval is not None or "autoScaleEvaluationInterval" not in pool.spec:
        pool.spec["autoScaleEvaluationInterval"] = interval or "PT15M"
        pool.last_autoscale = time.monotonic()
    pool.last_enabled = time.monotonic()
    run_formula(state, pool)
