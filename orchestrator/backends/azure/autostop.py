"""Autostop on Azure Batch: a pool with ``idle_timeout`` scales itself to zero nodes, run by Batch.

Batch evaluates a pool's autoscale formula every ``autoScaleEvaluationInterval`` (5 minutes at
least) over metrics it samples every 30 seconds, with no orch process anywhere. orch gives every
pool with an ``idle_timeout`` of T seconds a formula (``formula``) that keeps the pool's nodes
(its node counts, or what its own ``azure.autoscale`` asks) while work is about, and asks for
zero nodes, dedicated and Spot alike, once an evaluation finds:

- no active or running task in any sample of the last T seconds and one sample period (the last
  busy sample may be taken up to a period before the last task ended), nor in the latest sample
  (``$PendingTasks``: a job's manager task is a task too), and
- T seconds since orch last woke the pool: the formula carries the time orch created the pool,
  resized it, or woke it for new work (``time("…")``), so a pool is never stopped before it had
  T seconds to receive work.

So a pool stops between T and T + one sample period (30 s) + one evaluation interval after its
last task ended.
``$NodeDeallocationOption`` is ``taskcompletion``: no running task is ever cut short. A stopped
pool starts again when orch wakes it (``orch jobs add`` on it, ``orch pool create``), which
enables autoscale with a new wake time: Batch evaluates the formula at once and allocates nodes;
without orch, its next evaluation sees the new tasks and does the same.

``autodelete``: Batch has no way to delete an idle pool by itself, and whatever calls Pool - Delete
must run somewhere: as a task on the pool it keeps the pool busy (and a task waiting on a stopped
pool starts it again), a job schedule runs its jobs on a pool too, and an auto pool cannot carry
the managed identity that could call Batch. So an ``autodelete`` pool stops server-side exactly
as above (zero nodes cost nothing), and the first orch command that reads it afterwards
(``orch status``, ``pool list``, ``pool show``) deletes it (``pool_ops.autodelete``); work sent
to it before that (``orch jobs add``) starts it again instead.

``state_of`` reads a pool's last evaluation: stopped, and ``stops_at`` says when an idle pool
will stop.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

from orchestrator.backends.azure.spec import DEFAULT_IDLE_TIMEOUT
from orchestrator.spec.pool import PoolSpec

__all__ = ["DEFAULT_IDLE_TIMEOUT", "FIXED_INTERVAL", "IDLE", "formula", "is_stopped", "results", "stops_at",
           "wake_of"]

FIXED_INTERVAL = 300.0  # Batch's shortest evaluation interval: a fixed-size pool stops soonest with it
IDLE = "orch_idle"
_WAKE = re.compile(r'orch_awake = time\(\) - time\("([^"]+)"\)')


def wake_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def idle_lines(idle_timeout: float, wake: datetime) -> list[str]:
    """Statements that set ``orch_idle`` (see the module docstring)."""
    quiet = max(1, math.ceil(idle_timeout))
    return [f"// orch autostop: no nodes once no task was active or running for {quiet} s (idle_timeout)",
            f"orch_quiet = TimeInterval_Second * {quiet} + $PendingTasks.GetSamplePeriod();",
            f'orch_awake = time() - time("{wake_text(wake)}") < orch_quiet;',
            "orch_busy = max(0, $PendingTasks.GetSample(1), $PendingTasks.GetSample(orch_quiet));",
            f"{IDLE} = !orch_awake && orch_busy == 0;"]


def formula(spec: PoolSpec, scaling: str | None, wake: datetime) -> str | None:
    """The pool's whole formula: ``scaling`` (its own autoscale formula, or None for fixed node
    counts) with the autostop statements around it when it has an ``idle_timeout``; None for a
    fixed-size pool that never stops."""
    if spec.idle_timeout is None:
        return scaling
    lines = idle_lines(spec.idle_timeout, wake)
    if scaling is None:
        lines += [f"$TargetDedicatedNodes = {IDLE} ? 0 : {spec.nodes.dedicated};",
                  f"$TargetLowPriorityNodes = {IDLE} ? 0 : {spec.nodes.low_priority};",
                  "$NodeDeallocationOption = taskcompletion;"]
        return "\n".join(lines)
    return "\n".join([*lines, scaling.rstrip().rstrip(";") + ";",
                      f"$TargetDedicatedNodes = {IDLE} ? 0 : $TargetDedicatedNodes;",
                      f"$TargetLowPriorityNodes = {IDLE} ? 0 : $TargetLowPriorityNodes;"])


def wake_of(pool_formula: str | None) -> datetime | None:
    """When orch last woke the pool, read from its formula (None: not an autostop formula)."""
    match = _WAKE.search(pool_formula or "")
    if match is None:
        return None
    return datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))


def same_formula(current: str | None, wanted: str | None) -> bool:
    """Whether two formulas differ at most in their wake time."""
    def body(formula: str | None) -> str:
        return _WAKE.sub('orch_awake = time() - time("")', formula or "")
    return body(current) == body(wanted)


def results(pool: Any) -> dict[str, str]:
    """The variables of the pool's last autoscale evaluation (``autoScaleRun.results``)."""
    run = getattr(pool, "auto_scale_run", None)
    pairs = (item.split("=", 1) for item in (getattr(run, "results", None) or "").split(";") if "=" in item)
    return {name: value for name, value in pairs}


def is_stopped(pool: Any) -> bool:
    """Autostop took the pool to zero nodes and it has not been woken since."""
    return (bool(pool.enable_auto_scale) and results(pool).get(IDLE) == "1" and not pool.target_dedicated_nodes
            and not pool.target_low_priority_nodes)


def stops_at(pool: Any, idle_timeout: float, quiet_since: float) -> float:
    """When an evaluation first finds the pool idle (epoch seconds): the first one at least
    ``idle_timeout`` after it went quiet (its last task ended, or orch woke it)."""
    earliest = quiet_since + idle_timeout
    run = pool.auto_scale_run
    interval = pool.auto_scale_evaluation_interval.total_seconds() if pool.auto_scale_evaluation_interval else 900
    if run is None or run.timestamp is None:
        return earliest
    last = run.timestamp.timestamp()
    steps = max(0, math.ceil((earliest - last) / interval))
    return last + steps * interval

