"""The service's in-memory account state: pools, jobs and one lock guarding them.

Every read or write of records happens under ``lock``. ``wake()`` (called with the lock held)
tells the scheduler that something changed. Ids are case-insensitive, as in Batch: the dicts
are keyed by the lower-cased id and records keep the id as given.
"""
from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .auth import JobTokens
from .entities import JobRecord, NodeRecord, PoolRecord, TaskRecord
from .errors import BatchApiError
from .settings import ServiceSettings

if TYPE_CHECKING:
    from .node_lives import NodeLife


class BatchState:
    """Pools and jobs of one Batch account, rooted at ``root_dir`` on disk."""

    def __init__(self, root_dir: Path, account: str, settings: ServiceSettings) -> None:
        self.root_dir = root_dir
        self.account = account
        self.settings = settings
        self.base_url = ""
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.pools: dict[str, PoolRecord] = {}
        self.jobs: dict[str, JobRecord] = {}
        self.node_lives: dict[str, list[NodeLife]] = {}  # by lower-cased pool id, kept after the pool goes
        self.stopping = False
        self.job_tokens = JobTokens()
        self._addresses = itertools.count(0)

    def wake(self) -> None:
        """Notify waiters (the scheduler) that state changed; call with ``lock`` held."""
        self.changed.notify_all()

    def next_ip_address(self) -> str:
        """A distinct loopback address (127.10.x.y) for a new node; all of 127/8 reaches this host."""
        serial = next(self._addresses)
        return f"127.10.{serial // 250}.{serial % 250 + 1}"

    def pool(self, pool_id: str) -> PoolRecord:
        """The pool, or 404 PoolNotFound."""
        pool = self.pools.get(pool_id.lower())
        if pool is None:
            raise BatchApiError("PoolNotFound", values=[("PoolId", pool_id)])
        return pool

    def node(self, pool_id: str, node_id: str) -> NodeRecord:
        """The node, or 404 PoolNotFound / NodeNotFound."""
        node = self.pool(pool_id).nodes.get(node_id.lower())
        if node is None:
            raise BatchApiError("NodeNotFound", values=[("NodeId", node_id)])
        return node

    def find_node(self, pool_id: str, node_id: str) -> NodeRecord | None:
        """The node if both pool and node still exist."""
        pool = self.pools.get(pool_id.lower())
        return pool.nodes.get(node_id.lower()) if pool else None

    def find_task(self, job_id: str, task_id: str) -> TaskRecord | None:
        """The task if both job and task still exist."""
        job = self.jobs.get(job_id.lower())
        return job.tasks.get(task_id.lower()) if job else None

    def job(self, job_id: str) -> JobRecord:
        """The job, or 404 JobNotFound."""
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise BatchApiError("JobNotFound", values=[("JobId", job_id)])
        return job

    def task(self, job_id: str, task_id: str) -> TaskRecord:
        """The task, or 404 JobNotFound / TaskNotFound."""
        task = self.job(job_id).tasks.get(task_id.lower())
        if task is None:
            raise BatchApiError("TaskNotFound", values=[("TaskId", task_id)])
        return task

    def nodes_dir(self) -> Path:
        """Directory that holds one root directory per node."""
        return self.root_dir / "nodes"
