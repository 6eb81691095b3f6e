"""The scheduling loop: places active tasks on free node slots and launches their executions.

Runs in one thread, under the state lock, whenever state changes (and at least every
``PASS_INTERVAL_S``); housekeeping duties (pool resizes, job completion) run first. Jobs go by
descending priority, tasks in the order they were added. A task is placed when every task in
its ``dependsOn.taskIds`` has succeeded, its job is under ``maxParallelTasks``, and enough
schedulable nodes have ``requiredSlots`` free (one node per instance for multi-instance tasks).
``nodeFillType`` ``pack`` fills the busiest fitting node first, ``spread`` the least busy.

As on Batch, a multi-instance task is never scheduled (it stays ``active``) on a pool without
inter-node communication or with more than one task slot per node. A task whose container
settings do not fit a pool created after the task was added fails when it would be scheduled.
"""
from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from urllib.parse import quote

from .entities import JobRecord, NodeRecord, PoolRecord, TaskRecord
from .execution import Placement, TaskExecution, TaskFinishedCallback, build_plan
from .jobs import container_mismatch
from .layout import NodeDirs, NodeIdentity
from .runner import ExecutionHandle
from .state import BatchState
from .timekeeping import format_timestamp, utc_now

PASS_INTERVAL_S = 0.1
UNSCHEDULABLE = "Task cannot be scheduled on the pool associated with the job: "


def multi_instance_blocked(pool: PoolRecord, task: TaskRecord) -> bool:
    """A multi-instance task the pool can never run (Batch leaves it active)."""
    return bool(task.spec.get("multiInstanceSettings")) and (
        pool.task_slots_per_node != 1 or not pool.inter_node_communication)


def unschedulable_reason(pool: PoolRecord, task: TaskRecord) -> str | None:
    """Why the task can never run on the pool (it fails at once), or None."""
    if task.required_slots > pool.task_slots_per_node:
        return "requiredSlots exceeds taskSlotsPerNode."
    return container_mismatch(pool, task.spec)


def dependencies_satisfied(job: JobRecord, task: TaskRecord) -> bool:
    """Every task this one depends on has completed successfully."""
    for dependency_id in (task.spec.get("dependsOn") or {}).get("taskIds") or []:
        dependency = job.tasks.get(str(dependency_id).lower())
        if dependency is None or not dependency.succeeded():
            return False
    return True


def pick_nodes(pool: PoolRecord, slots: int, count: int) -> list[NodeRecord] | None:
    """``count`` distinct schedulable nodes with ``slots`` free, by the pool's fill type."""
    capacity = pool.task_slots_per_node
    fitting = [node for node in pool.nodes.values() if node.schedulable() and capacity - node.used_slots >= slots]
    if len(fitting) < count:
        return None
    fitting.sort(key=lambda node: -node.used_slots if pool.node_fill_type == "pack" else node.used_slots)
    return fitting[:count]


class TaskScheduler:
    """Owns the scheduling thread and the execution threads it starts."""

    def __init__(self, state: BatchState, on_finished: TaskFinishedCallback,
                 housekeeping: list[Callable[[], None]]) -> None:
        self.state = state
        self.on_finished = on_finished
        self.housekeeping = housekeeping
        self._thread = threading.Thread(target=self._loop, name="batch-scheduler", daemon=True)
        self._executions: list[threading.Thread] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10) -> None:
        """End the loop (sets ``state.stopping``) and wait (bounded) for its thread."""
        with self.state.lock:
            self.state.stopping = True
            self.state.wake()
        self._thread.join(timeout=timeout_s)

    def join_executions(self, timeout_s: float) -> None:
        """Wait (bounded, per thread) for execution threads to end."""
        for thread in list(self._executions):
            thread.join(timeout_s)

    def _loop(self) -> None:
        with self.state.lock:
            while not self.state.stopping:
                try:
                    for duty in self.housekeeping:
                        duty()
                    self.schedule_pass()
                except Exception:  # keep scheduling; a bug here must be visible, not fatal
                    traceback.print_exc()
                self.state.changed.wait(timeout=PASS_INTERVAL_S)

    def schedule_pass(self) -> None:
        """Place every task that can start now; lock held."""
        for job in sorted(self.state.jobs.values(), key=lambda job: -int(job.spec.get("priority") or 0)):
            pool = self.state.pools.get(job.pool_id.lower())
            if job.state == "active" and pool is not None and pool.lifecycle.state == "active":
                self._schedule_job(job, pool)

    def _schedule_job(self, job: JobRecord, pool: PoolRecord) -> None:
        limit = int(job.spec.get("maxParallelTasks", -1))
        running = len(job.running_tasks())
        for task in list(job.tasks.values()):
            if not any(n.schedulable() and n.used_slots < pool.task_slots_per_node for n in pool.nodes.values()):
                return
            if limit != -1 and running >= limit:
                return
            if task.state != "active" or not dependencies_satisfied(job, task) or multi_instance_blocked(pool, task):
                continue
            reason = unschedulable_reason(pool, task)
            if reason is not None:
                now = format_timestamp(utc_now())
                failure = {"category": "usererror", "code": "TaskSchedulingConstraintFailed",
                           "message": UNSCHEDULABLE + reason}
                task.execution.update(startTime=now, endTime=now, result="failure", failureInfo=failure)
                task.move("completed")
                self.on_finished(job, task)
                continue
            nodes = pick_nodes(pool, task.required_slots, task.instances)
            if nodes is not None:
                self._launch(job, task, pool, nodes)
                running += 1

    def _launch(self, job: JobRecord, task: TaskRecord, pool: PoolRecord, nodes: list[NodeRecord]) -> None:
        """Reserve slots on ``nodes`` (primary first), fill in node info, start the execution thread."""
        handle = ExecutionHandle()
        placements = []
        for index, node in enumerate(nodes):
            key = task.key if index == 0 else f"{task.key}#{index}"
            node.running[key] = task.required_slots
            node.total_tasks_run += 1
            node.lifecycle.move("running")
            identity = NodeIdentity(pool.id, node.id, node.root_dir, node.ip_address, node.is_dedicated)
            placements.append(Placement(identity, key))
        task.task_dir = NodeDirs(nodes[0].root_dir).task_dir(job.id, task.id)
        task.node_info = self._node_info(job, task, pool, nodes[0])
        task.handle = handle
        task.execution["startTime"] = format_timestamp(utc_now())
        task.subtasks = [{"id": index, "nodeInfo": self._node_info(job, task, pool, node), "state": "running",
                          "startTime": task.execution["startTime"]} for index, node in enumerate(nodes) if index]
        if task.spec.get("containerSettings"):  # the command runs on the host; the container is recorded
            task.execution["containerInfo"] = {"containerId": f"{job.id}_{task.id}".lower(), "state": "running"}
        task.move("preparing")
        plan = build_plan(self.state, job, task, placements, handle)
        thread = threading.Thread(target=TaskExecution(self.state, plan, self.on_finished).run,
                                  name=f"task-{job.id}-{task.id}", daemon=True)
        self._executions = [t for t in self._executions if t.is_alive()] + [thread]
        thread.start()

    def _node_info(self, job: JobRecord, task: TaskRecord, pool: PoolRecord, node: NodeRecord) -> dict[str, str]:
        """``nodeInfo`` of a task (or a subtask) on ``node``."""
        dirs = NodeDirs(node.root_dir)
        node_url, task_root = node.url(self.state.base_url), dirs.relative(dirs.task_dir(job.id, task.id))
        return {"affinityId": f"TVM:{node.id}", "nodeUrl": node_url, "poolId": pool.id, "nodeId": node.id,
                "taskRootDirectory": task_root,
                "taskRootDirectoryUrl": f"{node_url}/files/{quote(task_root, safe='')}"}
