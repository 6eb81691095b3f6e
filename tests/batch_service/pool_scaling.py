"""Automatic scaling: enable, evaluate, disable and the periodic re-evaluation.

The formula runs with service variables computed from the pool's jobs and nodes; the
resulting ``$TargetDedicatedNodes``/``$TargetLowPriorityNodes``/``$NodeDeallocationOption``
become the pool's targets. Re-evaluation happens every ``autoScaleEvaluationInterval`` (or
``settings.autoscale_interval_s`` when set).
"""
from __future__ import annotations

import time
from typing import Any

from .autoscale import FormulaError, evaluate_formula, format_results
from .body_checks import check_duration, require
from .errors import BatchApiError
from .pool_engine import PoolEngine, check_pool_active
from .pool_entities import PoolRecord
from .state import BatchState
from .times import format_timestamp, parse_duration, utc_now


def service_variables(state: BatchState, pool: PoolRecord) -> dict[str, Any]:
    """The read-only formula variables for ``pool``; lock held."""
    jobs = [job for job in state.jobs.values() if job.pool_id.lower() == pool.id.lower()]
    tasks = [task for job in jobs for task in job.tasks.values()]
    active = sum(1 for task in tasks if task.state == "active")
    running = sum(1 for task in tasks if task.state in ("preparing", "running"))
    dedicated, low_priority = pool.current_counts()
    return {
        "$CurrentDedicatedNodes": float(dedicated), "$CurrentLowPriorityNodes": float(low_priority),
        "$TargetDedicatedNodes": float(pool.target_dedicated),
        "$TargetLowPriorityNodes": float(pool.target_low_priority),
        "$ActiveTasks": float(active), "$RunningTasks": float(running), "$PendingTasks": float(active + running),
        "$SucceededTasks": float(sum(1 for task in tasks if task.succeeded())),
        "$FailedTasks": float(sum(1 for task in tasks if task.state == "completed" and not task.succeeded())),
        "$TaskSlotsPerNode": float(pool.task_slots_per_node), "$CPUPercent": 0.0, "$MemoryBytes": 0.0,
        "$PreemptedNodeCount": 0.0, "$UsableNodeCount": float(dedicated + low_priority),
        "$NodeDeallocationOption": pool.deallocation_option,
    }


def _run(state: BatchState, pool: PoolRecord, formula: str) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """(variables or None on error, the ``autoScaleRun`` JSON)."""
    timestamp = format_timestamp(utc_now())
    try:
        variables = evaluate_formula(formula, service_variables(state, pool))
    except FormulaError as exc:
        error = {"code": "AutoScalingFormulaSyntaxError", "message": str(exc)}
        return None, {"timestamp": timestamp, "error": error}
    return variables, {"timestamp": timestamp, "results": format_results(variables)}


def _targets(variables: dict[str, Any]) -> tuple[int, int, str]:
    def count(name: str) -> int:
        value = variables.get(name, 0.0)
        return max(0, int(value)) if isinstance(value, (int, float)) else 0
    option = variables.get("$NodeDeallocationOption")
    option_text = option if isinstance(option, str) else "requeue"
    return count("$TargetDedicatedNodes"), count("$TargetLowPriorityNodes"), option_text


def initial_targets(state: BatchState, spec: dict[str, Any]) -> tuple[int, int] | None:
    """Targets a new autoscale pool starts with; 400 AutoScalingFormulaSyntaxError on a bad formula."""
    if not spec.get("enableAutoScale"):
        return None
    probe = PoolRecord(str(spec.get("id") or ""), dict(spec))
    with state.lock:
        variables, run = _run(state, probe, str(require(spec, "autoScaleFormula")))
    if variables is None:
        raise BatchApiError("AutoScalingFormulaSyntaxError", run["error"]["message"])
    dedicated, low_priority, _ = _targets(variables)
    return dedicated, low_priority


class PoolScaling:
    """Autoscale operations on top of the pool engine."""

    def __init__(self, state: BatchState, pools: PoolEngine) -> None:
        self.state = state
        self.pools = pools

    def configure_new_pool(self, pool_id: str) -> None:
        """Record autoscale settings of a freshly created autoscale pool."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            if pool.spec.get("enableAutoScale"):
                self._apply(pool, str(pool.spec["autoScaleFormula"]),
                            str(pool.spec.get("autoScaleEvaluationInterval") or "PT15M"), allocate=False)

    def enable(self, pool_id: str, body: dict[str, Any]) -> None:
        """Enable (or re-configure) autoscale and evaluate the formula at once."""
        check_duration(body, "autoScaleEvaluationInterval")
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            if not pool.enable_auto_scale and pool.allocation.state != "steady":
                raise BatchApiError("PoolBeingResized", values=[("PoolId", pool.id)])
            formula = str(body.get("autoScaleFormula") or pool.auto_scale_formula or "")
            if not formula:
                raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "autoScaleFormula")])
            interval = str(body.get("autoScaleEvaluationInterval") or pool.auto_scale_interval)
            self._apply(pool, formula, interval, allocate=True)

    def evaluate(self, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The ``autoScaleRun`` of ``autoScaleFormula`` on the pool, without applying it."""
        formula = str(require(body, "autoScaleFormula"))
        with self.state.lock:
            pool = self.state.pool(pool_id)
            if not pool.enable_auto_scale:
                raise BatchApiError("OperationInvalidForCurrentState", "Automatic scaling is not enabled on the pool.")
            return _run(self.state, pool, formula)[1]

    def disable(self, pool_id: str) -> None:
        """Turn autoscale off; the pool keeps its current targets."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            pool.enable_auto_scale = False
            pool.auto_scale_formula = None
            pool.auto_scale_run = None
            pool.revision.touch()

    def _apply(self, pool: PoolRecord, formula: str, interval: str, *, allocate: bool) -> None:
        variables, run = _run(self.state, pool, formula)
        if variables is None:
            raise BatchApiError("AutoScalingFormulaSyntaxError", run["error"]["message"])
        pool.enable_auto_scale, pool.auto_scale_formula, pool.auto_scale_interval = True, formula, interval
        pool.auto_scale_run, pool.last_autoscale = run, time.monotonic()
        self._retarget(pool, variables, allocate)

    def _retarget(self, pool: PoolRecord, variables: dict[str, Any], allocate: bool) -> None:
        dedicated, low_priority, option = _targets(variables)
        changed = (dedicated, low_priority) != (pool.target_dedicated, pool.target_low_priority)
        pool.target_dedicated, pool.target_low_priority, pool.deallocation_option = dedicated, low_priority, option
        pool.revision.touch()
        if allocate and changed:
            self.pools.start_allocation(pool)

    def housekeeping(self) -> None:
        """Re-evaluate formulas whose interval has passed; lock held."""
        for pool in list(self.state.pools.values()):
            if not pool.enable_auto_scale or pool.lifecycle.state != "active" or not pool.auto_scale_formula:
                continue
            interval = self.state.settings.autoscale_interval_s
            if interval is None:
                interval = parse_duration(pool.auto_scale_interval).total_seconds()
            if time.monotonic() - pool.last_autoscale < interval:
                continue
            variables, run = _run(self.state, pool, pool.auto_scale_formula)
            pool.auto_scale_run, pool.last_autoscale = run, time.monotonic()
            if variables is not None:
                self._retarget(pool, variables, allocate=True)
