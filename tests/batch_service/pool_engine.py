"""Pool lifecycle: create, update, resize, stop resize, remove nodes, delete.

A resize sets the targets, moves ``allocationState`` to ``resizing`` and, after
``allocation_delay_s``, adds nodes (which then boot) or removes surplus ones (idle and
unusable nodes first, newest first). ``nodeDeallocationOption`` decides what happens to tasks
on removed nodes: ``requeue`` (default) kills and requeues them, ``terminate`` kills and
completes them, ``taskcompletion``/``retaineddata`` let them finish while the node is
``leavingpool``. The pool is ``steady`` again once every change has been applied.
"""
from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from .errors import BatchApiError, invalid_property
from .layout import NodeDirs
from .node_boot import NodeBooter
from .pool_entities import NodeRecord, PoolRecord
from .specs import DEALLOCATION_OPTIONS, validate_pool_scaling, validate_pool_spec, validate_pool_update
from .state import BatchState

POOL_REPLACEABLE = ("startTask", "applicationPackageReferences", "metadata", "targetNodeCommunicationMode")


def check_pool_active(pool: PoolRecord) -> None:
    """409 PoolBeingDeleted for a pool that is being deleted."""
    if pool.lifecycle.state == "deleting":
        raise BatchApiError("PoolBeingDeleted", values=[("PoolId", pool.id)])


class PoolEngine:
    """Operations on pools; public methods take the state lock themselves unless noted."""

    def __init__(self, state: BatchState, booter: NodeBooter) -> None:
        self.state = state
        self.booter = booter

    def create_pool(self, spec: dict[str, Any], initial_targets: tuple[int, int] | None = None) -> PoolRecord:
        """Add a pool and start allocating its nodes; 409 PoolExists / PoolBeingDeleted."""
        validate_pool_spec(spec)
        with self.state.lock:
            existing = self.state.pools.get(spec["id"].lower())
            if existing is not None:
                check_pool_active(existing)
                raise BatchApiError("PoolExists", values=[("PoolId", spec["id"])])
            pool = PoolRecord(spec["id"], dict(spec))
            pool.target_dedicated = int(spec.get("targetDedicatedNodes") or 0)
            pool.target_low_priority = int(spec.get("targetLowPriorityNodes") or 0)
            pool.resize_timeout = str(spec.get("resizeTimeout") or "PT15M")
            if initial_targets is not None:
                pool.target_dedicated, pool.target_low_priority = initial_targets
            self.state.pools[pool.id.lower()] = pool
            self.start_allocation(pool)
            return pool

    def update_pool(self, pool_id: str, body: dict[str, Any], *, replace: bool) -> PoolRecord:
        """PATCH merges the given properties; ``updateproperties`` replaces the replaceable ones."""
        validate_pool_update(body)
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            if replace:
                for key in POOL_REPLACEABLE:
                    pool.spec.pop(key, None)
            pool.spec.update({key: value for key, value in body.items() if key != "id"})
            pool.revision.touch()
            self.state.wake()
            return pool

    def resize(self, pool_id: str, body: dict[str, Any]) -> None:
        """Set new targets; 409 while resizing, deleting or autoscaling."""
        validate_pool_scaling(body)
        option = str(body.get("nodeDeallocationOption") or "requeue").lower()
        if option not in DEALLOCATION_OPTIONS:
            raise invalid_property("nodeDeallocationOption", f"Must be one of {', '.join(DEALLOCATION_OPTIONS)}.")
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

    def stop_resize(self, pool_id: str) -> None:
        """Stop applying the current resize; the pool keeps the nodes it has."""
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            if pool.allocation.state == "steady":
                return
            pool.allocation_generation += 1
            pool.allocation_in_flight = False
            pool.allocation.move("stopping")
            for node in pool.nodes.values():
                if node.removal_pending:
                    node.removal_pending = False
                    node.lifecycle.move("running" if node.running else "idle")
            pool.revision.touch()
            self.state.wake()

    def remove_nodes(self, pool_id: str, body: dict[str, Any]) -> None:
        """Remove named nodes (``nodeList``) and lower the dedicated/low-priority targets."""
        node_ids = body.get("nodeList")
        if not isinstance(node_ids, list) or not node_ids:
            raise BatchApiError("MissingRequiredProperty", values=[("PropertyName", "nodeList")])
        option = str(body.get("nodeDeallocationOption") or "requeue").lower()
        with self.state.lock:
            pool = self.state.pool(pool_id)
            check_pool_active(pool)
            if pool.allocation.state != "steady":
                raise BatchApiError("PoolBeingResized", values=[("PoolId", pool.id)])
            nodes = [self.state.node(pool_id, str(node_id)) for node_id in node_ids]
            for node in nodes:
                if node.is_dedicated:
                    pool.target_dedicated = max(0, pool.target_dedicated - 1)
                else:
                    pool.target_low_priority = max(0, pool.target_low_priority - 1)
                self._remove_node(pool, node, option)
            pool.allocation.move("resizing")
            pool.revision.touch()
            self.state.wake()

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
                self._cancel_node_work(node, "requeue")
            self.state.wake()

    def start_allocation(self, pool: PoolRecord) -> None:
        """Begin applying the pool's targets after the allocation delay; lock held."""
        pool.allocation_generation += 1
        pool.allocation_in_flight = True
        pool.allocation.move("resizing")
        pool.revision.touch()
        generation = pool.allocation_generation
        threading.Thread(target=self._allocate, args=(pool.id, generation), daemon=True).start()
        self.state.wake()

    def _allocate(self, pool_id: str, generation: int) -> None:
        time.sleep(self.state.settings.allocation_delay_s)
        with self.state.lock:
            pool = self.state.pools.get(pool_id.lower())
            if pool is None or pool.allocation_generation != generation or pool.lifecycle.state != "active":
                return
            if self.state.stopping:
                return
            for dedicated in (True, False):
                target = pool.target_dedicated if dedicated else pool.target_low_priority
                members = [n for n in pool.nodes.values() if n.is_dedicated == dedicated and not n.removal_pending]
                for _ in range(target - len(members)):
                    self._add_node(pool, dedicated)
                surplus = sorted(members, key=lambda n: (bool(n.running), -n.allocation_time.timestamp()))
                for node in surplus[: max(0, len(members) - target)]:
                    self._remove_node(pool, node, pool.deallocation_option)
            pool.allocation_in_flight = False
            pool.revision.touch()
            self.state.wake()

    def _add_node(self, pool: PoolRecord, dedicated: bool) -> None:
        pool.node_serial += 1
        node_id = f"tvmps_{uuid.uuid4().hex}{uuid.uuid4().hex}_{'d' if dedicated else 'p'}"
        root = self.state.nodes_dir() / node_id
        NodeDirs(root).create()
        node = NodeRecord(node_id, pool.id, self.state.next_ip_address(), dedicated,
                          str(pool.spec.get("vmSize") or ""), root)
        pool.nodes[node_id.lower()] = node
        self.booter.boot(pool.id, node_id)

    def _remove_node(self, pool: PoolRecord, node: NodeRecord, option: str) -> None:
        if node.running and option in ("taskcompletion", "retaineddata"):
            node.removal_pending = True
            node.lifecycle.move("leavingpool")
            return
        self._cancel_node_work(node, "requeue" if option == "requeue" else "terminate")
        del pool.nodes[node.id.lower()]

    def _cancel_node_work(self, node: NodeRecord, reason: str) -> None:
        if node.start_task_handle is not None:
            node.start_task_handle.cancel("delete")
        for key in list(node.running):
            job_key, _, task_key = key.split("#")[0].partition("/")
            job = self.state.jobs.get(job_key)
            task = job.tasks.get(task_key) if job else None
            if task is not None and task.handle is not None:
                task.handle.cancel(reason)

    def housekeeping(self) -> None:
        """Finish node removals, settle allocations, drop deleted pools; lock held."""
        for pool in list(self.state.pools.values()):
            for node in [n for n in pool.nodes.values() if n.removal_pending and not n.running]:
                del pool.nodes[node.id.lower()]
            busy = any(node.running for node in pool.nodes.values())
            if pool.lifecycle.state == "deleting" and not busy and pool.deleting_since is not None:
                if time.monotonic() - pool.deleting_since >= self.state.settings.deletion_delay_s:
                    del self.state.pools[pool.id.lower()]
                continue
            settled = not pool.allocation_in_flight and not any(n.removal_pending for n in pool.nodes.values())
            if pool.allocation.state != "steady" and settled:
                pool.allocation.move("steady")
                pool.revision.touch()

    def shutdown(self) -> None:
        """Kill every start task (the service is stopping)."""
        with self.state.lock:
            for pool in self.state.pools.values():
                for node in pool.nodes.values():
                    if node.start_task_handle is not None:
                        node.start_task_handle.cancel("delete")
