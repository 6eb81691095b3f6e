"""Spot (low-priority) preemption, injected by tests, as Batch documents it for Spot nodes:

- the node's state becomes ``preempted``; listing the pool's nodes still returns it and
  ``currentLowPriorityNodes`` still counts it, but no task is scheduled on it;
- every task running on it is requeued: its processes are killed, it goes back to ``active``
  with ``requeueCount`` + 1 and ``lastRequeueTime`` (a requeue is not a retry: it does not count
  against ``maxTaskRetryCount``) and runs again when a node is free. A multi-instance task is
  requeued whole (all its instances, on every node) when any one of its nodes is preempted;
- the VM is effectively deleted: the node's local files (task directories, start task) are lost;
- the pool seeks its Spot target again: when replacement capacity is found (after
  ``restore_after_s``; ``None`` = not found, the node stays ``preempted``) the node keeps its id
  and is re-initialized, going through ``creating`` and ``starting`` (and its start task) before
  tasks are scheduled on it;
- autoscale formulas read the count of preempted nodes as ``$PreemptedNodeCount``.

Only Spot nodes (``isDedicated`` false) can be preempted.
"""
from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass

from . import node_lives
from .entities import NodeRecord, PoolRecord
from .errors import BatchApiError
from .layout import NodeDirs
from .pools import PoolEngine
from .state import BatchState

WIPE_WAIT_S = 10.0


@dataclass(frozen=True)
class Preemption:
    """What one injected preemption did: the node and the tasks (``job/task``) it requeued."""

    pool_id: str
    node_id: str
    requeued: tuple[str, ...]

    def as_json(self) -> dict[str, object]:
        return {"poolId": self.pool_id, "nodeId": self.node_id, "requeuedTasks": list(self.requeued)}


class Preemptions:
    """Preempts Spot nodes (see the module docstring); methods take the state lock themselves."""

    def __init__(self, state: BatchState, pools: PoolEngine) -> None:
        self.state, self.pools = state, pools

    def preempt(self, pool_id: str, node_id: str | None = None, *, job_id: str | None = None,
                task_id: str | None = None, restore_after_s: float | None = None) -> Preemption:
        """Preempt ``node_id``, or the node running ``job_id/task_id`` (its primary instance), or
        the first busy Spot node. 404 for an unknown pool, node or task; 409 for a dedicated node,
        one already preempted, or no node to preempt."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            node = self._pick(pool, node_id, job_id, task_id)
            if node.is_dedicated:
                raise BatchApiError("OperationInvalidForCurrentState", f"Node {node.id} is dedicated; only Spot "
                                    "nodes are preempted.")
            if node.state == "preempted":
                raise BatchApiError("OperationInvalidForCurrentState", f"Node {node.id} is already preempted.")
            requeued = tuple(sorted({key.split("#")[0] for key in node.running}))
            tasks = [self.state.find_task(*key.split("/", 1)) for key in requeued]
            self.pools.cancel_node_work(node, "requeue")
            node.start_task_handle = None
            node.boot_generation += 1
            node.lifecycle.move("preempted")
            node_lives.preempted(self.state, node)
            pool.revision.touch()
            self.state.wake()
            finished = [task.handle.finished for task in tasks if task is not None and task.handle is not None]
            generation = node.boot_generation
        threading.Thread(target=self._replace, args=(pool.id, node.id, generation, finished, restore_after_s),
                         name=f"preempted-{node.id}", daemon=True).start()
        return Preemption(pool.id, node.id, requeued)

    def _pick(self, pool: PoolRecord, node_id: str | None, job_id: str | None, task_id: str | None) -> NodeRecord:
        if node_id is not None:
            return self.state.node(pool.id, node_id)
        if job_id is not None and task_id is not None:
            task = self.state.task(job_id, task_id)
            running_on = (task.node_info or {}).get("nodeId")
            if running_on is None or task.state not in ("preparing", "running"):
                raise BatchApiError("OperationInvalidForCurrentState", f"Task {task.id} is not running on a node.")
            return self.state.node(pool.id, str(running_on))
        busy = [node for node in pool.nodes.values() if not node.is_dedicated and node.running]
        if not busy:
            raise BatchApiError("OperationInvalidForCurrentState", "No Spot node of the pool is running a task.")
        return sorted(busy, key=lambda node: node.id)[0]

    def _replace(self, pool_id: str, node_id: str, generation: int, finished: list[threading.Event],
                 restore_after_s: float | None) -> None:
        """Lose the VM's files once its tasks are requeued, then (if capacity comes back) re-initialize it."""
        for event in finished:
            event.wait(WIPE_WAIT_S)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or node.boot_generation != generation:
                return
            root = node.root_dir
        shutil.rmtree(root, ignore_errors=True)
        NodeDirs(root).create()
        if restore_after_s is None:
            return
        time.sleep(restore_after_s)
        with self.state.lock:
            node = self.state.find_node(pool_id, node_id)
            if node is None or node.boot_generation != generation or node.state != "preempted" or self.state.stopping:
                return
            node.lifecycle.move("creating")
            node_lives.reallocated(self.state, node)
            node.start_task_info = None
            node.running.clear()
            self.state.wake()
        self.pools.start_boot(pool_id, node_id)
