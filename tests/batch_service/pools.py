"""Pools and their nodes: create, resize, delete, automatic scaling, booting new nodes.

A resize (or a new autoscale target) moves ``allocationState`` to ``resizing``; after
``allocation_delay_s`` nodes are added, or surplus ones removed (idle first, newest first) as
``nodeDeallocationOption`` says: ``requeue`` (default) or ``terminate`` their tasks at once, or
(``taskcompletion``/``retaineddata``) leave them ``leavingpool`` until their tasks end. A deleted
pool is removed ``deletion_delay_s`` after no task runs on it. An autoscale formula runs at
creation (400 ``AutoScalingFormulaSyntaxError`` when bad) and every ``autoScaleEvaluationInterval``
(or ``settings.autoscale_interval_s``), on variables computed from the pool's jobs and nodes.
A new node goes ``creating`` → ``starting`` → ``idle``; with a start task that has
``waitForSuccess`` (the default) it passes ``waitingforstarttask`` and ends ``idle`` or
``starttaskfailed``. The start task runs in ``startup/``, retried up to ``maxTaskRetryCount``.
"""
from __future__ import annotations

import copy
import threading
import time
import uuid
from typing import Any

from .autoscale import FormulaError, evaluate_formula, format_results
from .entities import NodeRecord, PoolRecord
from .errors import BatchApiError
from .layout import (
    NodeDirs,
    NodeIdentity,
    apply_settings,
    node_environment,
    prepare_task_dir,
)
from .runner import ExecutionHandle, run_process
from .specs import validate_pool_spec, validate_resize
from .state import BatchState
from .timekeeping import format_timestamp, parse_duration, utc_now
from .transfers import ResourceFileError, download_resource_files


def check_pool_active(pool: PoolRecord) -> None:
    """409 PoolBeingDeleted for a pool that is being deleted."""
    if pool.lifecycle.state == "deleting":
        raise BatchApiError("PoolBeingDeleted", values=[("PoolId", pool.id)])


def service_variables(state: BatchState, pool: PoolRecord) -> dict[str, Any]:
    """The read-only autoscale formula variables for ``pool``; lock held."""
    tasks = [task for job in state.jobs.values() if job.pool_id.lower() == pool.id.lower()
             for task in job.tasks.values()]
    active = sum(1 for task in tasks if task.state == "active")
    running = sum(1 for task in tasks if task.state in ("preparing", "running"))
    dedicated, low_priority = pool.current_counts()
    preempted = sum(1 for node in pool.nodes.values() if node.state == "preempted")
    return {
        "$CurrentDedicatedNodes": float(dedicated), "$CurrentLowPriorityNodes": float(low_priority),
        "$TargetDedicatedNodes": float(pool.target_dedicated),
        "$TargetLowPriorityNodes": float(pool.target_low_priority),
        "$ActiveTasks": float(active), "$RunningTasks": float(running), "$PendingTasks": float(active + running),
        "$SucceededTasks": float(sum(1 for task in tasks if task.succeeded())),
        "$FailedTasks": float(sum(1 for task in tasks if task.state == "completed" and not task.succeeded())),
        "$TaskSlotsPerNode": float(pool.task_slots_per_node), "$CPUPercent": 0.0, "$MemoryBytes": 0.0,
        "$PreemptedNodeCount": float(preempted), "$UsableNodeCount": float(dedicated + low_priority - preempted),
        "$NodeDeallocationOption": pool.deallocation_option,
    }


def run_formula(state: BatchState, pool: PoolRecord) -> bool:
    """Evaluate the pool's formula, record its ``autoScaleRun`` and, on success, its targets; lock held.
    Returns whether the targets changed."""
    timestamp = format_timestamp(utc_now())
    pool.last_autoscale = time.monotonic()
    try:
        variables = evaluate_formula(str(pool.spec["autoScaleFormula"]), service_variables(state, pool))
    except FormulaError as exc:
        pool.auto_scale_run = {"timestamp": timestamp,
                               "error": {"code": "AutoScalingFormulaSyntaxError", "message": str(exc)}}
        return False
    pool.auto_scale_run = {"timestamp": timestamp, "results": format_results(variables)}

    def count(name: str) -> int:
        value = variables.get(name, 0.0)
        return max(0, int(value)) if isinstance(value, (int, float)) else 0

    targets = (count("$TargetDedicatedNodes"), count("$TargetLowPriorityNodes"))
    option = variables.get("$NodeDeallocationOption")
    pool.deallocation_option = option if isinstance(option, str) else "requeue"
    changed = targets != (pool.target_dedicated, pool.target_low_priority)
    pool.target_dedicated, pool.target_low_priority = targets
    pool.revision.touch()
    return changed


class PoolEngine:
    """Operations on pools, and the threads that allocate and boot their nodes; public methods take
    the state lock themselves unless noted."""

    def __init__(self, state: BatchState) -> None:
        self.state = state

    def create_pool(self, spec: dict[str, Any], *, identities: list[dict[str, Any]] | None = None) -> PoolRecord:
        """Add a pool and start allocating its nodes; 409 PoolExists / PoolBeingDeleted, 400 for a bad body.
        ``identities``: its user-assigned identities (only Resource Manager gives them: ``arm``)."""
        validate_pool_spec(spec)
        with self.state.lock:
            existing = self.state.pools.get(spec["id"].lower())
            if existing is not None:
                check_pool_active(existing)
                raise BatchApiError("PoolExists", values=[("PoolId", spec["id"])])
            pool = PoolRecord(spec["id"], dict(spec), target_dedicated=int(spec.get("targetDedicatedNodes") or 0),
                              target_low_priority=int(spec.get("targetLowPriorityNodes") or 0),
                              resize_timeout=str(spec.get("resizeTimeout") or "PT15M"),
                              identities=list(identities or []))
            if spec.get("enableAutoScale"):
                run_formula(self.state, pool)
                if pool.auto_scale_run and "error" in pool.auto_scale_run:
                    raise BatchApiError("AutoScalingFormulaSyntaxError", pool.auto_scale_run["error"]["message"])
            self.state.pools[pool.id.lower()] = pool
            self.start_allocation(pool)
            return pool

    def resize(self, pool_id: str, body: dict[str, Any]) -> None:
        """Set new targets; 409 while resizing, deleting or autoscaling."""
        option = validate_resize(body)
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            if pool.enable_auto_scale:
                raise BatchApiError("OperationInvalidForCurrentState", "The pool has automatic scaling enabled.")
            if pool.allocation.state != "steady":
                raise BatchApiError("PoolBeingResized", values=[("PoolId", pool.id)])
            pool.target_dedicated = int(body.get("targetDedicatedNodes") or 0)
            pool.target_low_priority = int(body.get("targetLowPriorityNodes") or 0)
            pool.resize_timeout = str(body.get("resizeTimeout") or pool.resize_timeout)
            pool.deallocation_option = option
            self.start_allocation(pool)

    def delete_pool(self, pool_id: str) -> None:
        """Start deleting: state ``deleting``, tasks on its nodes requeued, start tasks killed."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            pool.lifecycle.move("deleting")
            pool.revision.touch()
            pool.deleting_since = time.monotonic()
            pool.allocation_generation += 1
            for node in pool.nodes.values():
                self.cancel_node_work(node, "requeue")
            self.state.wake()

    def start_allocation(self, pool: PoolRecord) -> None:
        """Begin applying the pool's targets after the allocation delay; lock held."""
        pool.allocation_generation += 1
        pool.allocation_in_flight = True
        pool.allocation.move("resizing")
        pool.revision.touch()
        threading.Thread(target=self._allocate, args=(pool.id, pool.allocation_generation), daemon=True).start()
        self.state.wake()

    def _allocate(self, pool_id: str, generation: int) -> None:
        time.sleep(self.state.settings.allocation_delay_s)
        with self.state.lock:
            pool = self.state.pools.get(pool_id.lower())
            if (pool is None or pool.allocation_generation != generation or pool.lifecycle.state != "active"
                    or self.state.stopping):
                return
            for dedicated in (True, False):
                target = pool.target_dedicated if dedicated else pool.target_low_priority
                members = [n for n in pool.nodes.values() if n.is_dedicated == dedicated and not n.removal_pending]
                for _ in range(target - len(members)):
                    self._add_node(pool, dedicated)
                surplus = sorted(members, key=lambda n: (n.state != "preempted", bool(n.running),
                                                         -n.allocation_time.timestamp()))
                for node in surplus[: max(0, len(members) - target)]:
                    self._remove_node(pool, node, pool.deallocation_option)
            pool.allocation_in_flight = False
            pool.revision.touch()
            self.state.wake()

    def _add_node(self, pool: PoolRecord, dedicated: bool) -> None:
        node_id = f"tvmps_{uuid.uuid4().hex}{uuid.uuid4().hex}_{'d' if dedicated else 'p'}"
        root = self.state.nodes_dir() / node_id
        NodeDirs(root).create()
        pool.nodes[node_id.lower()] = NodeRecord(node_id, pool.id, self.state.next_ip_address(), dedicated,
                                                 str(pool.spec.get("vmSize") or ""), root)
        self.start_boot(pool.id, node_id)

    def start_boot(self, pool_id: str, node_id: str) -> None:
        """Take a node (new, or re-initialized after a preemption) through creating → … → idle."""
        threading.Thread(target=self._boot, args=(pool_id, node_id), name=f"boot-{node_id}", daemon=True).start()

    def _remove_node(self, pool: PoolRecord, node: NodeRecord, option: str) -> None:
        if node.running and option in ("taskcompletion", "retaineddata"):
            node.removal_pending = True
            node.lifecycle.move("leavingpool")
            return
        self.cancel_node_work(node, "requeue" if option == "requeue" else "terminate")
        del pool.nodes[node.id.lower()]

    def cancel_node_work(self, node: NodeRecord, reason: str) -> None:
        """Kill the node's start task and its tasks' processes (``reason``: requeue or terminate); lock held."""
        if node.start_task_handle is not None:
            node.start_task_handle.cancel("delete")
        for key in list(node.running):
            task = self.state.find_task(*key.split("#")[0].split("/", 1))
            if task is not None and task.handle is not None:
                task.handle.cancel(reason)

    def housekeeping(self) -> None:
        """Finish node removals and deletions, settle allocations, re-run due formulas; lock held."""
        for pool in list(self.state.pools.values()):
            for node in [n for n in pool.nodes.values() if n.removal_pending and not n.running]:
                del pool.nodes[node.id.lower()]
            if pool.lifecycle.state == "deleting":
                busy = any(node.running for node in pool.nodes.values())
                if not busy and time.monotonic() - (pool.deleting_since or 0.0) >= self.state.settings.deletion_delay_s:
                    del self.state.pools[pool.id.lower()]
                continue
            settled = not pool.allocation_in_flight and not any(n.removal_pending for n in pool.nodes.values())
            if pool.allocation.state != "steady" and settled:
                pool.allocation.move("steady")
                pool.revision.touch()
            if pool.enable_auto_scale and time.monotonic() - pool.last_autoscale >= self._interval(pool):
                if run_formula(self.state, pool):
                    self.start_allocation(pool)

    def _interval(self, pool: PoolRecord) -> float:
        override = self.state.settings.autoscale_interval_s
        return override if override is not None else parse_duration(pool.auto_scale_interval).total_seconds()

    def _step(self, pool_id: str, node_id: str, state_name: str, generation: int) -> bool:
        time.sleep(self.state.settings.node_boot_delay_s)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or self.state.stopping or node.boot_generation != generation:
                return False
            node.lifecycle.move(state_name)
            if state_name == "starting":
                node.last_boot_time = utc_now()
            self.state.wake()
            return True

    def _boot(self, pool_id: str, node_id: str) -> None:
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            generation = node.boot_generation if node is not None else -1
        if not self._step(pool_id, node_id, "starting", generation):
            return
        time.sleep(self.state.settings.node_boot_delay_s)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            pool = self.state.pools.get(pool_id.lower())
            if node is None or pool is None or self.state.stopping or node.boot_generation != generation:
                return
            start_task = copy.deepcopy(pool.spec.get("startTask"))
            wait = bool((start_task or {}).get("waitForSuccess", True))
            node.lifecycle.move("waitingforstarttask" if start_task and wait else "idle")
            self.state.wake()
            if not start_task:
                return
            handle = ExecutionHandle()
            node.start_task_handle = handle
            node.start_task_info = {"state": "running", "startTime": format_timestamp(utc_now()), "retryCount": 0}
            identity = NodeIdentity(pool.id, node.id, node.root_dir, node.ip_address, node.is_dedicated)
            account, account_url = self.state.account, self.state.base_url
        info = self._run_start_task(identity, start_task, handle, account, account_url)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or node.start_task_handle is not handle:
                return
            node.start_task_handle = None
            node.start_task_info = {**(node.start_task_info or {}), **info}
            if wait:
                node.lifecycle.move("idle" if info["result"] == "success" else "starttaskfailed")
            self.state.wake()

    def _run_start_task(self, node: NodeIdentity, start_task: dict[str, Any], handle: ExecutionHandle,
                        account: str, account_url: str) -> dict[str, Any]:
        """Run the start task with retries; the ``startTaskInfo`` fields of its end."""
        task_dir = NodeDirs(node.root_dir).startup
        working_dir = prepare_task_dir(task_dir)
        done: dict[str, Any] = {"state": "completed"}
        try:
            download_resource_files(start_task.get("resourceFiles"), working_dir, self.state.settings.auto_storage)
        except ResourceFileError as exc:
            done.update(endTime=format_timestamp(utc_now()), result="failure", failureInfo=exc.failure_info())
            return done
        env = node_environment(account, account_url, node, task_dir)
        apply_settings(env, start_task.get("environmentSettings"))
        max_retries, retries = int(start_task.get("maxTaskRetryCount") or 0), 0
        while True:
            outcome = run_process(str(start_task["commandLine"]), cwd=working_dir, env=env,
                                  stdout_path=task_dir / "stdout.txt", stderr_path=task_dir / "stderr.txt",
                                  handle=handle)
            if outcome.exit_code == 0 or outcome.cancel_reason or outcome.launch_error:
                break
            if max_retries != -1 and retries >= max_retries:
                break
            retries += 1
            done["lastRetryTime"] = format_timestamp(utc_now())
        done.update(endTime=format_timestamp(utc_now()), retryCount=retries,
                    result="success" if outcome.exit_code == 0 else "failure")
        if outcome.exit_code is not None:
            done["exitCode"] = outcome.exit_code
        if outcome.launch_error:
            done["failureInfo"] = {"category": "usererror", "code": outcome.launch_error,
                                   "message": outcome.launch_message or ""}
        return done
