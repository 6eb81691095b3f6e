"""Pools and their nodes: create, resize, delete, automatic scaling, booting new nodes.

A resize (or a new autoscale target) moves ``allocationState`` to ``resizing``; after
``allocation_delay_s`` nodes are added, or surplus ones removed (idle first, newest first) as
``nodeDeallocationOption`` says: ``requeue`` (default) or ``terminate`` their tasks at once, or
(``taskcompletion``/``retaineddata``) leave them ``leavingpool`` until their tasks end. A deleted
pool is removed ``deletion_delay_s`` after no task runs on it. An autoscale pool's formula must
parse (400 ``AutoScalingFormulaSyntaxError``); it is evaluated over the pool's sampled metrics at
creation, when autoscale is enabled again, and on its schedule (``scaling``). Every node's life
is recorded (``node_lives``) and the pool's statistics rolled up from them.
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

from . import node_lives, scaling
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
from .timekeeping import format_timestamp, utc_now
from .transfers import ResourceFileError, download_resource_files


def check_pool_active(pool: PoolRecord) -> None:
    """409 PoolBeingDeleted for a pool that is being deleted."""
    if pool.lifecycle.state == "deleting":
        raise BatchApiError("PoolBeingDeleted", values=[("PoolId", pool.id)])


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
                scaling.check_formula(spec.get("autoScaleFormula"))
                pool.last_autoscale = time.monotonic()
                scaling.sample(self.state, pool)
                scaling.run_formula(self.state, pool)
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

    def enable_autoscale(self, pool_id: str, body: dict[str, Any]) -> PoolRecord:
        """``enableautoscale``: a new formula and/or interval, evaluated now (see ``scaling``)."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            before = (pool.target_dedicated, pool.target_low_priority)
            scaling.enable(self.state, pool, body)
            if (pool.target_dedicated, pool.target_low_priority) != before:
                self.start_allocation(pool)
            return pool

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
            if not any(node.removal_pending for node in pool.nodes.values()):
                pool.allocation.move("steady")  # the resize is done when its nodes are in (or out)
            pool.revision.touch()
            self.state.wake()

    def _add_node(self, pool: PoolRecord, dedicated: bool) -> None:
        node_id = f"tvmps_{uuid.uuid4().hex}{uuid.uuid4().hex}_{'d' if dedicated else 'p'}"
        root = self.state.nodes_dir() / node_id
        NodeDirs(root).create()
        node = NodeRecord(node_id, pool.id, self.state.next_ip_address(), dedicated, str(pool.spec.get("vmSize") or ""),
                          root)
        pool.nodes[node_id.lower()] = node
        node_lives.allocated(self.state, pool, node)
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
        self.forget_node(pool, node)

    def forget_node(self, pool: PoolRecord, node: NodeRecord) -> None:
        """The node leaves the pool (its life ends); lock held."""
        node_lives.removed(self.state, node)
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
                self.forget_node(pool, node)
            if pool.lifecycle.state == "deleting":
                busy = any(node.running for node in pool.nodes.values())
                if not busy and time.monotonic() - (pool.deleting_since or 0.0) >= self.state.settings.deletion_delay_s:
                    for node in list(pool.nodes.values()):
                        self.forget_node(pool, node)
                    del self.state.pools[pool.id.lower()]
                continue
            scaling.sample(self.state, pool)
            node_lives.roll_up(self.state, pool)
            settled = not pool.allocation_in_flight and not any(n.removal_pending for n in pool.nodes.values())
            if pool.allocation.state != "steady" and settled:
                pool.allocation.move("steady")
                pool.revision.touch()
            if scaling.due(self.state, pool):
                pool.last_autoscale = time.monotonic()
                before = (pool.target_dedicated, pool.target_low_priority)
                scaling.run_formula(self.state, pool)
                if (pool.target_dedicated, pool.target_low_priority) != before:
                    self.start_allocation(pool)

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
