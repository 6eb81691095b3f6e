"""The scheduling loop: places active tasks on free node slots.

Runs in one thread, under the state lock, whenever state changes (and at least every
``PASS_INTERVAL_S``). Jobs go by descending priority, tasks in the order they were added.
A task is placed when its dependencies are satisfied, its job is under ``maxParallelTasks``,
and enough schedulable nodes have ``requiredSlots`` free (one node per instance for
multi-instance tasks). ``nodeFillType`` ``pack`` fills the busiest fitting node first,
``spread`` the least busy. Housekeeping duties (pool resizes, job completion) run first.
"""
from __future__ import annotations

import threading
import traceback
from collections.abc import Callable

from .exit_conditions import dependency_action, dependency_ids
from .job_entities import JobRecord, TaskRecord
from .launcher import TaskLauncher
from .pool_entities import NodeRecord, PoolRecord
from .state import BatchState
from .task_completion import TaskFinishedCallback
from .times import format_timestamp, utc_now

PASS_INTERVAL_S = 0.1
UNSCHEDULABLE = {
    "category": "usererror",
    "code": "TaskSchedulingConstraintFailed",
    "message": "Task cannot be scheduled on the pool associated with the job: requiredSlots exceeds taskSlotsPerNode.",
}


def dependencies_satisfied(job: JobRecord, task: TaskRecord) -> bool:
    """Every task this one depends on has completed with a ``satisfy`` dependency action."""
    for dependency_id in dependency_ids(task):
        dependency = job.tasks.get(dependency_id.lower())
        if dependency is None or dependency.state != "completed" or dependency_action(dependency) != "satisfy":
            return False
    return True


def pick_nodes(pool: PoolRecord, slots: int, count: int) -> list[NodeRecord] | None:
    """``count`` distinct schedulable nodes with ``slots`` free, by the pool's fill type."""
    capacity = pool.task_slots_per_node
    fitting = [node for node in pool.nodes.values() if node.schedulable() and capacity - node.used_slots >= slots]
    if len(fitting) < count:
        return None
    if pool.node_fill_type == "pack":
        fitting.sort(key=lambda node: -node.used_slots)
    else:
        fitting.sort(key=lambda node: node.used_slots)
    return fitting[:count]


def _has_free_slot(pool: PoolRecord) -> bool:
    return any(node.schedulable() and node.used_slots < pool.task_slots_per_node for node in pool.nodes.values())


class TaskScheduler:
    """Owns the scheduling thread."""

    def __init__(self, state: BatchState, launcher: TaskLauncher, on_finished: TaskFinishedCallback,
                 housekeeping: list[Callable[[], None]]) -> None:
        self.state = state
        self.launcher = launcher
        self.on_finished = on_finished
        self.housekeeping = housekeeping
        self._thread = threading.Thread(target=self._loop, name="batch-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """End the loop (sets ``state.stopping``) and wait for the thread."""
        with self.state.lock:
            self.state.stopping = True
            self.state.wake()
        self._thread.join(timeout=10)

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
        """Place every task that can start now; call with the state lock held."""
        jobs = sorted(self.state.jobs.values(), key=lambda job: -int(job.spec.get("priority") or 0))
        for job in jobs:
            pool = self.state.pools.get(job.pool_id.lower())
            if job.state == "active" and pool is not None and pool.lifecycle.state == "active":
                self._schedule_job(job, pool)

    def _schedule_job(self, job: JobRecord, pool: PoolRecord) -> None:
        limit = int(job.spec.get("maxParallelTasks", -1))
        running = sum(1 for task in job.tasks.values() if task.state in ("preparing", "running"))
        for task in list(job.tasks.values()):
            if not _has_free_slot(pool):
                return
            if limit != -1 and running >= limit:
                return
            if task.state != "active" or not dependencies_satisfied(job, task):
                continue
            if task.required_slots > pool.task_slots_per_node:
                self._fail_unschedulable(job, task)
                continue
            nodes = pick_nodes(pool, task.required_slots, task.instances)
            if nodes is not None:
                self.launcher.launch(job, task, pool, nodes)
                running += 1

    def _fail_unschedulable(self, job: JobRecord, task: TaskRecord) -> None:
        now = format_timestamp(utc_now())
        task.execution.update(startTime=now, endTime=now, result="failure", failureInfo=dict(UNSCHEDULABLE))
        task.failure_kind = "preprocessing"
        task.move("completed")
        self.on_finished(job, task)
