"""How the pool manager places attempts on node agents: node shares, node choice, gangs.

The manager tracks each node's share exactly (CPUs, GPUs, slots) and, for short tasks, lets a
node queue extra attempts locally so that per-task round trips do not dominate: about
``PREFETCH_SECONDS`` of work per slot, judged from the job's recent attempts (at least
``MIN_PREFETCH``, at most ``MAX_PREFETCH``). A node that is down takes nothing. Multi-node (gang) tasks reserve distinct nodes and go to the first one's
agent, which starts every rank.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.backends.ray.gang import GangRun
from orchestrator.backends.ray.job_state import JobRecord, TaskRecord
from orchestrator.backends.ray.messages import AgentFacts, TaskRun

SHORT_TASK_SECONDS = 0.5
PREFETCH_SECONDS = 0.25
MIN_PREFETCH = 16
MAX_PREFETCH = 256


def prefetch_depth(mean_duration: float | None) -> int:
    """Attempts per slot a node may hold of a job whose recent attempts took ``mean_duration``
    seconds: 0 (only what fits now) for long or unknown ones, else enough for about
    ``PREFETCH_SECONDS`` of work, within ``MIN_PREFETCH``..``MAX_PREFETCH``."""
    if mean_duration is None or mean_duration >= SHORT_TASK_SECONDS:
        return 0
    return max(MIN_PREFETCH, min(MAX_PREFETCH, math.ceil(PREFETCH_SECONDS / max(mean_duration, 1e-6))))


@dataclass
class NodeShare:
    """The manager's view of one agent: capacity, the attempts assigned to it, whether it is up."""

    facts: AgentFacts
    handle: Any
    name: str
    assigned: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    down: bool = False

    def used(self) -> tuple[float, float, int]:
        cpus = sum(c for c, _ in self.assigned.values())
        gpus = sum(g for _, g in self.assigned.values())
        return cpus, gpus, len(self.assigned)

    def fits_now(self, cpus: float, gpus: float) -> bool:
        if self.down or len(self.assigned) >= self.facts.slots:  # a node with a queue is full: no sums
            return False
        used_cpus, used_gpus, _ = self.used()
        return used_cpus + cpus <= self.facts.cpus + 1e-9 and used_gpus + gpus <= self.facts.gpus + 1e-9

    def can_queue(self, cpus: float, gpus: float, depth: int) -> bool:
        """Whether the node may queue one more attempt, holding at most ``depth`` per slot."""
        return (not self.down and len(self.assigned) < self.facts.slots * depth
                and cpus <= self.facts.cpus and gpus <= self.facts.gpus)


class Scheduler:
    """The placing half of ``PoolManager`` (see the module docstring); callers hold its lock."""

    nodes: list[NodeShare]
    jobs: dict[str, JobRecord]
    gang_nodes: dict[tuple[str, str], list[int]]
    _persist: Callable[[], None]  # the manager's: journal what changed, durably

    def _dispatch(self) -> None:
        """Assign ready tasks to nodes, oldest job first; journal every change (those the caller
        made too: one durable transaction), then send: one batched call per node."""
        batches: dict[int, list[TaskRun]] = {}
        gangs: list[tuple[int, GangRun]] = []
        for job in sorted(self.jobs.values(), key=lambda j: j.created_at):
            if not job.ready:
                continue
            depth = prefetch_depth(job.mean_duration())
            in_flight = sum(1 for node in self.nodes for key in node.assigned if key[0] == job.id)
            while job.ready and (job.max_running is None or in_flight < job.max_running):
                record = job.tasks[job.ready[0]]
                if record.launch.distributed is not None:
                    gang = self._start_gang(job, record)
                    if gang is None:
                        break
                    gangs.append(gang)
                    job.ready.popleft()
                    in_flight += 1
                    continue
                index = self._pick_node(record, depth)
                if index is None:
                    break
                job.ready.popleft()
                in_flight += 1
                self.nodes[index].assigned[(job.id, record.launch.id)] = (record.launch.resources.cpus,
                                                                          record.launch.resources.gpus)
                job.dispatched(record.launch.id, index)
                batches.setdefault(index, []).append(self._run_for(job, record))
        self._persist()
        for index, runs in batches.items():
            self.nodes[index].handle.submit.remote(runs)
        for index, gang in gangs:
            self.nodes[index].handle.run_gang.remote(gang)

    def _start_gang(self, job: JobRecord, record: TaskRecord) -> tuple[int, GangRun] | None:
        """Reserve distinct nodes for a multi-node task: the gang for the head's agent (by index),
        or None while they are not free."""
        spec = record.launch.distributed
        assert spec is not None
        cpus, gpus = record.launch.resources.cpus, record.launch.resources.gpus
        free = [i for i, node in enumerate(self.nodes) if node.fits_now(cpus, gpus)]
        wanted = int(spec.nodes)  # resolved to a count at submission
        if len(free) < wanted:
            return None
        chosen = sorted(free, key=lambda i: len(self.nodes[i].assigned))[:wanted]
        key = (job.id, record.launch.id)
        for index in chosen:
            self.nodes[index].assigned[key] = (cpus, gpus)
        self.gang_nodes[key] = chosen
        job.dispatched(record.launch.id, chosen[0])
        gang = GangRun(run=self._run_for(job, record), spec=spec,
                       agents=tuple(self.nodes[i].name for i in chosen),
                       hosts=tuple(self.nodes[i].facts.address for i in chosen))
        return chosen[0], gang

    def _pick_node(self, record: TaskRecord, depth: int) -> int | None:
        cpus, gpus = record.launch.resources.cpus, record.launch.resources.gpus
        best, best_load = None, None
        for index, node in enumerate(self.nodes):
            if node.fits_now(cpus, gpus) or (depth and node.can_queue(cpus, gpus, depth)):
                load = len(node.assigned) / max(1, node.facts.slots)
                if best_load is None or load < best_load:
                    best, best_load = index, load
        return best

    def _run_for(self, job: JobRecord, record: TaskRecord) -> TaskRun:
        launch = record.launch
        return TaskRun(job_id=job.id, task_id=launch.id, attempt=record.attempt, command=launch.command,
                       env=dict(launch.env), cpus=launch.resources.cpus, gpus=launch.resources.gpus,
                       wall_time=launch.max_wall_time, output_files=launch.output_files, workdir_hash=job.workdir,
                       inputs=job.inputs,
                       checkpoint=record.attempt > 0 or self._has_checkpoint(job.id, launch.id))

    def _has_checkpoint(self, job_id: str, task_id: str) -> bool:
        """Whether a checkpoint of the task may be saved (the agent then asks for it before starting)."""
        return True

    def _release(self, job_id: str, task_id: str, node: int | None) -> None:
        """Free the share(s) an attempt held."""
        key = (job_id, task_id)
        for index in self.gang_nodes.pop(key, [node] if node is not None else []):
            if 0 <= index < len(self.nodes):
                self.nodes[index].assigned.pop(key, None)
