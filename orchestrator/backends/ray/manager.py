"""The pool manager: one detached Ray actor per pool holding every job of the pool.

Contract: ``add_tasks`` is idempotent on task ids; jobs outlive the CLI that submitted them;
tasks wait for room on a node and none is lost when a job has more tasks than slots. The
manager tracks each node's share exactly, and for short tasks lets a node queue a few extra
attempts locally so that per-task round trips do not dominate.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import ray
from orchestrator.backends.ray.gang import GangRun
from orchestrator.backends.ray.job_state import JobRecord, TaskRecord
from orchestrator.backends.ray.messages import AgentFacts, RunInput, TaskEvent, TaskRun
from orchestrator.model import JobInfo, NodeInfo, TaskInfo, TaskLaunch, TaskState

SHORT_TASK_SECONDS = 0.5
PREFETCH_PER_SLOT = 16


@dataclass
class NodeShare:
    """The manager's view of one agent: capacity and the attempts assigned to it."""

    facts: AgentFacts
    handle: Any
    assigned: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)

    def used(self) -> tuple[float, float, int]:
        cpus = sum(c for c, _ in self.assigned.values())
        gpus = sum(g for _, g in self.assigned.values())
        return cpus, gpus, len(self.assigned)

    def fits_now(self, cpus: float, gpus: float) -> bool:
        used_cpus, used_gpus, count = self.used()
        return (count < self.facts.slots and used_cpus + cpus <= self.facts.cpus + 1e-9
                and used_gpus + gpus <= self.facts.gpus + 1e-9)

    def can_queue(self) -> bool:
        return len(self.assigned) < self.facts.slots * PREFETCH_PER_SLOT


class PoolManager:
    """See the module docstring. All public methods are Ray actor methods."""

    def __init__(self, pool_id: str, agent_names: list[str], facts: list[AgentFacts], namespace: str) -> None:
        self.pool_id, self.namespace = pool_id, namespace
        self.nodes: list[NodeShare] = []
        self.jobs: dict[str, JobRecord] = {}
        self.gang_nodes: dict[tuple[str, str], list[int]] = {}
        self.agent_names: list[str] = []
        self.lock = threading.RLock()
        self.set_nodes(agent_names, facts)

    def set_nodes(self, agent_names: list[str], facts: list[AgentFacts]) -> int:
        """Use these agents from now on (pool create and resize). Returns the node count."""
        with self.lock:
            self.agent_names = list(agent_names)
            self.nodes = [NodeShare(facts=f, handle=ray.get_actor(n, namespace=self.namespace))
                          for n, f in zip(agent_names, facts)]
            self._dispatch()
            return len(self.nodes)

    # -- jobs ----------------------------------------------------------------------------
    def add_tasks(self, job_id: str, launches: list[TaskLaunch], *,
                  workdir: tuple[str, bytes] | None = None, seal: bool = False,
                  max_running: int | None = None, spec_digest: str | None = None,
                  inputs: list[tuple[str, str, bytes, str | None]] | None = None) -> tuple[int, int]:
        """Create the job if new and add tasks not yet present: ``(added, already_present)``.

        ``workdir`` is the snapshot ``(sha256, zip bytes)``; the manager owns its object so it
        outlives the submitting CLI. ``inputs`` are ``(to, sha256, zip bytes, file name or None)``.
        """
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                owned = (workdir[0], ray.put(workdir[1])) if workdir else None
                packed = tuple(RunInput(to=to, digest=digest, ref=ray.put(data), file_name=name)
                               for to, digest, data, name in inputs or ())
                job = self.jobs[job_id] = JobRecord(id=job_id, pool_id=self.pool_id, created_at=time.time(),
                                                    workdir=owned, max_running=max_running, inputs=packed)
            result = job.add(launches)
            job.sealed = job.sealed or seal
            if spec_digest and not job.finished:
                job.spec_digest = spec_digest
            self._dispatch()
            return result

    def seal(self, job_id: str) -> bool | None:
        """Every task is in: the job completes when its tasks are all done. None for an unknown job."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            job.sealed = True
            return True

    def cancel_job(self, job_id: str) -> int | None:
        """Cancel pending tasks and kill running ones. Returns how many were running (None: unknown job)."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            running = job.cancel_pending()
            for node in self.nodes:
                if any(key[0] == job_id for key in node.assigned):
                    node.handle.cancel.remote(job_id)
            return len(running)

    def stop_tasks(self, job_id: str, task_ids: list[str]) -> int | None:
        """Stop tasks early (a sweep policy): they end as ``stopped``, not failed. None: unknown job."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            running = job.stop(task_ids)
            for node in self.nodes:
                mine = [t for t in running if (job_id, t) in node.assigned]
                if mine:
                    node.handle.cancel.remote(job_id, mine)
            self._dispatch()
            return len(running)

    def delete_job(self, job_id: str) -> bool | None:
        """Forget a job (cancel it first if needed). None if unknown."""
        with self.lock:
            if job_id not in self.jobs:
                return None
            if not self.jobs[job_id].finished:
                self.cancel_job(job_id)
            del self.jobs[job_id]
            return True

    def list_jobs(self) -> list[JobInfo]:
        with self.lock:
            return [job.info() for job in self.jobs.values()]

    def get_job(self, job_id: str) -> JobInfo | None:
        with self.lock:
            job = self.jobs.get(job_id)
            return job.info() if job else None

    def list_tasks(self, job_id: str, states: list[str] | None = None) -> list[TaskInfo] | None:
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            wanted = set(states) if states else None
            return [r.info(job_id) for r in job.tasks.values() if wanted is None or r.state.value in wanted]

    def task_node(self, job_id: str, task_id: str) -> int | None:
        with self.lock:
            job = self.jobs.get(job_id)
            record = job.tasks.get(task_id) if job else None
            return record.node if record else None

    def nodes_info(self) -> list[NodeInfo]:
        with self.lock:
            out = []
            for node in self.nodes:
                _, _, count = node.used()
                running = sum(1 for key in node.assigned
                              if self.jobs.get(key[0]) and self.jobs[key[0]].tasks[key[1]].state == TaskState.RUNNING)
                out.append(NodeInfo(id=node.facts.node_id, address=node.facts.address, state="idle" if not count else "running",
                                    cpus=node.facts.cpus, gpus=node.facts.gpus,
                                    free_slots=max(0, node.facts.slots - count), running_tasks=running))
            return out

    def busy(self) -> int:
        """How many tasks are pending or running in all jobs."""
        with self.lock:
            return sum(j.counts[TaskState.PENDING.value] + j.counts[TaskState.RUNNING.value]
                       for j in self.jobs.values())

    # -- events from agents --------------------------------------------------------------
    def report(self, events: list[TaskEvent]) -> None:
        with self.lock:
            for event in events:
                job = self.jobs.get(event.job_id)
                if job is None or event.task_id not in job.tasks:
                    continue
                if event.state == "running":
                    job.started(event.task_id, event.attempt, event.node, event.time)
                    continue
                if event.started is not None:
                    job.started(event.task_id, event.attempt, event.node, event.started)
                key = (event.job_id, event.task_id)
                for index in self.gang_nodes.pop(key, [event.node]):
                    self.nodes[index].assigned.pop(key, None)
                job.ended(event.task_id, event.attempt, event.state, event.exit_code, event.error,
                          event.time, event.node)
            self._dispatch()

    # -- scheduling ----------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Assign ready tasks to nodes, oldest job first; one batched call per node."""
        batches: dict[int, list[TaskRun]] = {}
        for job in sorted(self.jobs.values(), key=lambda j: j.created_at):
            short = (job.mean_duration() or SHORT_TASK_SECONDS) < SHORT_TASK_SECONDS
            in_flight = sum(1 for node in self.nodes for key in node.assigned if key[0] == job.id)
            while job.ready and (job.max_running is None or in_flight < job.max_running):
                record = job.tasks[job.ready[0]]
                if record.launch.distributed is not None:
                    if not self._start_gang(job, record):
                        break
                    job.ready.popleft()
                    in_flight += 1
                    continue
                index = self._pick_node(record, short)
                if index is None:
                    break
                job.ready.popleft()
                in_flight += 1
                self.nodes[index].assigned[(job.id, record.launch.id)] = (record.launch.resources.cpus,
                                                                          record.launch.resources.gpus)
                batches.setdefault(index, []).append(self._run_for(job, record))
        for index, runs in batches.items():
            self.nodes[index].handle.submit.remote(runs)

    def _start_gang(self, job: JobRecord, record: TaskRecord) -> bool:
        """Reserve distinct nodes for a multi-node task and hand it to the head's agent."""
        spec = record.launch.distributed
        assert spec is not None
        cpus, gpus = record.launch.resources.cpus, record.launch.resources.gpus
        free = [i for i, node in enumerate(self.nodes) if node.fits_now(cpus, gpus)]
        wanted = int(spec.nodes)  # resolved to a count at submission
        if len(free) < wanted:
            return False
        chosen = sorted(free, key=lambda i: len(self.nodes[i].assigned))[:wanted]
        key = (job.id, record.launch.id)
        for index in chosen:
            self.nodes[index].assigned[key] = (cpus, gpus)
        self.gang_nodes[key] = chosen
        gang = GangRun(run=self._run_for(job, record), spec=spec,
                       agents=tuple(self.agent_names[i] for i in chosen),
                       hosts=tuple(self.nodes[i].facts.address for i in chosen))
        self.nodes[chosen[0]].handle.run_gang.remote(gang)
        return True

    def _pick_node(self, record: TaskRecord, short: bool) -> int | None:
        cpus, gpus = record.launch.resources.cpus, record.launch.resources.gpus
        best, best_load = None, None
        for index, node in enumerate(self.nodes):
            if node.fits_now(cpus, gpus) or (short and node.can_queue() and cpus <= node.facts.cpus
                                            and gpus <= node.facts.gpus):
                load = len(node.assigned) / max(1, node.facts.slots)
                if best_load is None or load < best_load:
                    best, best_load = index, load
        return best

    def _run_for(self, job: JobRecord, record: TaskRecord) -> TaskRun:
        launch = record.launch
        workdir_hash, workdir_ref = job.workdir if job.workdir else (None, None)
        return TaskRun(job_id=job.id, task_id=launch.id, attempt=record.attempt, command=launch.command,
                       env=dict(launch.env), cpus=launch.resources.cpus, gpus=launch.resources.gpus,
                       wall_time=launch.max_wall_time, output_files=launch.output_files,
                       workdir_hash=workdir_hash, workdir_ref=workdir_ref,
                       inputs=job.inputs)  # type: ignore[arg-type]
