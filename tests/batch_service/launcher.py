"""Starting a scheduled task: reserve node slots, fill in node info, spawn its execution thread."""
from __future__ import annotations

import threading
from urllib.parse import quote

from .job_entities import JobRecord, SubtaskRecord, TaskRecord
from .layout import NodeDirs, NodeIdentity
from .multi_instance import MultiInstanceRun
from .pool_entities import NodeRecord, PoolRecord
from .runner import ExecutionHandle
from .state import BatchState
from .task_completion import Placement, TaskFinishedCallback
from .task_execution import SingleInstanceRun
from .task_plan import build_plan
from .times import format_timestamp, utc_now


class TaskLauncher:
    """Launches executions and keeps their threads so the service can wait for them."""

    def __init__(self, state: BatchState, on_finished: TaskFinishedCallback) -> None:
        self.state = state
        self.on_finished = on_finished
        self._threads: list[threading.Thread] = []

    def launch(self, job: JobRecord, task: TaskRecord, pool: PoolRecord, nodes: list[NodeRecord]) -> None:
        """Run ``task`` on ``nodes`` (primary first); call with the state lock held."""
        handle = ExecutionHandle()
        placements = [self._reserve(task, pool, node, index) for index, node in enumerate(nodes)]
        primary = nodes[0]
        task.task_dir = NodeDirs(primary.root_dir).task_dir(job.id, task.id)
        task.node_info = self._node_info(pool, primary, NodeDirs(primary.root_dir).relative(task.task_dir))
        task.subtasks = [
            SubtaskRecord(index, pool.id, node.id, node.url(self.state.base_url),
                          NodeDirs(node.root_dir).relative(NodeDirs(node.root_dir).task_dir(job.id, task.id)))
            for index, node in enumerate(nodes[1:], start=1)
        ]
        task.handle = handle
        task.failure_kind = None
        task.execution["startTime"] = format_timestamp(utc_now())
        task.move("preparing")
        plan = build_plan(self.state, job, task, placements, handle)
        runner_type = MultiInstanceRun if task.spec.get("multiInstanceSettings") else SingleInstanceRun
        runner = runner_type(self.state, plan, self.on_finished)
        thread = threading.Thread(target=runner.run, name=f"task-{job.id}-{task.id}", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _reserve(self, task: TaskRecord, pool: PoolRecord, node: NodeRecord, index: int) -> Placement:
        key = task.key if index == 0 else f"{task.key}#{index}"
        node.running[key] = task.required_slots
        node.total_tasks_run += 1
        node.lifecycle.move("running")
        identity = NodeIdentity(pool.id, node.id, node.root_dir, node.ip_address, node.is_dedicated)
        return Placement(identity, key)

    def _node_info(self, pool: PoolRecord, node: NodeRecord, task_root: str) -> dict[str, str]:
        node_url = node.url(self.state.base_url)
        return {
            "affinityId": f"TVM:{node.id}",
            "nodeUrl": node_url,
            "poolId": pool.id,
            "nodeId": node.id,
            "taskRootDirectory": task_root,
            "taskRootDirectoryUrl": f"{node_url}/files/{quote(task_root, safe='')}",
        }

    def join(self, timeout_s: float) -> None:
        """Wait (bounded) for running executions to end."""
        for thread in list(self._threads):
            thread.join(timeout_s)
