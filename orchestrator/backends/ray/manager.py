"""The pool manager: one detached Ray actor per pool holding every job of the pool.

Contract: ``add_tasks`` is idempotent on task ids; jobs outlive the CLI that submitted them;
tasks wait for room on a node and none is lost when a job has more tasks than slots. Every
change is journaled (``journal``) before it is acknowledged or acted on (a call's changes and the
attempts it assigns commit in one transaction, before they are sent), so Ray can restart the manager
(it runs on the head node with unlimited restarts) and the new one replays the journal,
reconciles with the agents and goes on (``recovery``). A watcher thread notices lost nodes.
Placement is ``scheduling``'s; the cost ledger, budgets and autostop are ``cost_methods``'.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import ray
from orchestrator.backends.ray import recovery
from orchestrator.backends.ray.cost_keeper import CostKeeper, CostSettings
from orchestrator.backends.ray.cost_methods import CostMethods
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.journal import Journal, write_atomically
from orchestrator.backends.ray.messages import AgentFacts, TaskEvent
from orchestrator.backends.ray.scheduling import NodeShare, Scheduler
from orchestrator.model import JobInfo, NodeInfo, TaskInfo, TaskLaunch, TaskState

log = logging.getLogger("orch.manager")
WATCH_SECONDS = 2.0
WAIT_CAP = 30.0
WAITERS = "waiters"
CONCURRENCY_GROUPS = {WAITERS: 32}
"""The manager's calls that block (long polls), apart from the default group's threads."""


class PoolManager(CostMethods, Scheduler):
    """See the module docstring. All public methods are Ray actor methods."""

    def __init__(self, pool_id: str, agent_names: list[str], facts: list[AgentFacts], namespace: str,
                 journal_dir: str | None = None, costs: CostSettings | None = None) -> None:
        self.pool_id, self.namespace = pool_id, namespace
        root = Path(journal_dir) if journal_dir else Path.home() / ".orch" / "ray-pools" / pool_id
        self.journal = Journal(root)
        self.costs = CostKeeper(pool_id, costs or CostSettings(), self.journal)
        self.lock = threading.RLock()
        self.persisted = threading.Condition(self.lock)  # notified after each journal commit
        self.nodes: list[NodeShare] = []
        self.gang_nodes: dict[tuple[str, str], list[int]] = {}
        self.checkpointed: dict[str, bool] = {}  # job -> whether any of its tasks saved a checkpoint
        self.jobs: dict[str, JobRecord] = recovery.restore_jobs(self.journal, pool_id)
        self.costs.recover(self.jobs.values())
        names, facts = recovery.current_nodes(self.journal.value("nodes"), (agent_names, facts),
                                              recovery.alive_ray_nodes())
        with self.lock:
            self._use_nodes(names, facts)
            held, silent = recovery.inventories(self.nodes)
            for index in silent:
                self.nodes[index].down = True
            unknown = recovery.reconcile(self.jobs, self.nodes, self.gang_nodes, held, time.time())
            for index, job_id, task_id in unknown:
                self.nodes[index].handle.cancel.remote(job_id, [task_id])
            self._dispatch()
        threading.Thread(target=self._watch_nodes, name="node-watch", daemon=True).start()
        self._start_costs()

    # -- nodes ---------------------------------------------------------------------------
    def set_nodes(self, agent_names: list[str], facts: list[AgentFacts]) -> int:
        """Use these agents from now on (pool create, resize, repair). Returns the node count."""
        with self.lock:
            self.journal.set_value("nodes", (list(agent_names), list(facts)))
            if self.costs.stopped_at is not None:
                self.costs.mark_stopped(None)  # a stopped pool has nodes again
            self._use_nodes(agent_names, facts)
            self._dispatch()
            return len(self.nodes)

    def _use_nodes(self, names: list[str], facts: list[AgentFacts]) -> None:
        previous = {node.name: node for node in self.nodes}
        shares = []
        for name, fact in zip(names, facts):
            try:
                handle = ray.get_actor(name, namespace=self.namespace)
                down = False
            except ValueError:
                handle, down = None, True
            kept = previous.get(name)
            share = NodeShare(facts=fact, handle=handle, name=name, down=down)
            if kept is not None and not down and kept.facts.node_id == fact.node_id:
                share.assigned = kept.assigned
            shares.append(share)
        self.nodes = shares

    def _watch_nodes(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._check_nodes()
            except Exception as exc:  # the watcher must outlive any one failed check
                log.warning("node check failed: %s", exc)
            time.sleep(recovery.watch_pause(started, WATCH_SECONDS))

    def _check_nodes(self) -> None:
        alive = recovery.alive_ray_nodes()
        with self.lock:
            candidates = [(index, node) for index, node in enumerate(self.nodes) if not node.down]
        lost = [index for index, node in candidates
                if node.facts.node_id not in alive or not recovery.answers(node.handle)]
        if not lost:
            return
        with self.lock:
            for index in lost:
                log.warning("node %s is down", index)
                for job_id, task_id, others in recovery.lose_node(index, self.nodes, self.jobs, self.gang_nodes,
                                                                  time.time()):
                    for other in others:
                        self.nodes[other].handle.kill_ranks.remote(job_id, task_id)
            self._dispatch()

    # -- jobs ----------------------------------------------------------------------------
    def add_tasks(self, job_id: str, launches: list[TaskLaunch], *, workdir: tuple[str, bytes] | None = None,
                  seal: bool = False, max_running: int | None = None, spec_digest: str | None = None,
                  inputs: list[tuple[str, str, bytes, str | None]] | None = None) -> tuple[int, int]:
        """Create the job if new and add tasks not yet present: ``(added, already_present)``.

        ``workdir`` is the snapshot ``(sha256, zip bytes)`` and ``inputs`` are ``(to, sha256,
        zip bytes, file name or None)``: their bytes go to the journal, so they outlive the CLI
        and a manager restart. Everything is journaled before tasks are sent to nodes.
        """
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                for digest, data in ([workdir] if workdir else []) + [(d, b) for _, d, b, _ in inputs or ()]:
                    self.journal.put_blob(digest, data)
                job = self.jobs[job_id] = JobRecord(
                    id=job_id, pool_id=self.pool_id, created_at=time.time(), max_running=max_running,
                    workdir=workdir[0] if workdir else None,
                    inputs=tuple((to, digest, name) for to, digest, _, name in inputs or ()))
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
            self._persist()
            return True

    def cancel_job(self, job_id: str) -> int | None:
        """Cancel pending tasks and kill running ones. Returns how many were running (None: unknown job)."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            running = job.cancel_pending()
            for node in self.nodes:
                if not node.down and any(key[0] == job_id for key in node.assigned):
                    node.handle.cancel.remote(job_id)
            self._persist()
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
                if mine and not node.down:
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
            self.journal.forget_job(job_id)
            self.checkpointed.pop(job_id, None)
            for node in self.nodes:
                if not node.down:
                    node.handle.forget_job.remote(job_id)  # its files on the node go too
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

    @ray.method(concurrency_group=WAITERS)
    def wait_job(self, job_id: str, timeout: float) -> JobInfo | None:
        """The job once it has finished (as journaled), or as it is after ``timeout`` seconds
        (at most ``WAIT_CAP``); None for an unknown job. Waits run in the ``WAITERS`` group's own
        threads: any number of followers never holds up the agents' reports or other calls."""
        with self.lock:
            self.persisted.wait_for(lambda: job_id not in self.jobs or self.jobs[job_id].finished,
                                    timeout=min(timeout, WAIT_CAP))
            job = self.jobs.get(job_id)
            return job.info() if job else None

    def task_states(self, job_id: str) -> dict[str, str] | None:
        """Every task's state value, in submission order; None for an unknown job."""
        with self.lock:
            job = self.jobs.get(job_id)
            return None if job is None else {task_id: r.state.value for task_id, r in job.tasks.items()}

    def task_nodes(self, job_id: str, task_ids: list[str]) -> list[int | None] | None:
        """``task_node`` of each task, in order, in one call; None for an unknown job."""
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            return [record.node if (record := job.tasks.get(task_id)) else None for task_id in task_ids]

    def task_node(self, job_id: str, task_id: str) -> int | None:
        with self.lock:
            job = self.jobs.get(job_id)
            record = job.tasks.get(task_id) if job else None
            return record.node if record else None

    def node_root(self, index: int) -> str | None:
        """Where node ``index`` keeps task files (on its own machine)."""
        with self.lock:
            if not 0 <= index < len(self.nodes):
                return None
            extra = self.nodes[index].facts.extra or {}
            return str(extra["root"]) if "root" in extra else None

    def nodes_info(self) -> list[NodeInfo]:
        with self.lock:
            out = []
            for node in self.nodes:
                _, _, count = node.used()
                running = sum(1 for key in node.assigned
                              if self.jobs.get(key[0]) and self.jobs[key[0]].tasks[key[1]].state == TaskState.RUNNING)
                state = "down" if node.down else ("idle" if not count else "running")
                out.append(NodeInfo(id=node.facts.node_id, address=node.facts.address, state=state,
                                    cpus=node.facts.cpus, gpus=node.facts.gpus,
                                    free_slots=0 if node.down else max(0, node.facts.slots - count),
                                    running_tasks=running))
            return out

    def busy(self) -> int:
        """How many tasks are pending or running in all jobs."""
        with self.lock:
            return sum(j.counts[TaskState.PENDING.value] + j.counts[TaskState.RUNNING.value]
                       for j in self.jobs.values())

    def ping(self) -> bool:
        return True

    def pid(self) -> int:
        """The manager's process id (it changes when Ray restarts the manager)."""
        return os.getpid()

    def node_id(self) -> str:
        """The Ray node the manager runs on (the head)."""
        return str(ray.get_runtime_context().get_node_id())

    # -- what agents ask -----------------------------------------------------------------
    def report(self, events: list[TaskEvent]) -> bool:
        """Apply agents' state changes; journaled before this returns (the agent's acknowledgement)."""
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
                if event.attempt == job.tasks[event.task_id].attempt:
                    self._release(event.job_id, event.task_id, event.node)
                job.ended(event.task_id, event.attempt, event.state, event.exit_code, event.error,
                          event.time, event.node)
            self._dispatch()
            return True

    def snapshot(self, digest: str) -> bytes | None:
        """A workdir or input snapshot's zip bytes, by digest."""
        return self.journal.blob(digest)

    def save_checkpoint(self, job_id: str, task_id: str, data: bytes) -> int:
        """Keep a task's checkpoint (a zip of its ``ORCH_CHECKPOINT_DIR``), whole or not at all."""
        self.checkpointed[job_id] = True
        write_atomically(self.journal.checkpoint_path(job_id, task_id), data)
        return len(data)

    def _has_checkpoint(self, job_id: str, task_id: str) -> bool:
        """Whether the task saved a checkpoint; a job none of whose tasks did (most) is looked up
        once, not once per attempt."""
        has_any = self.checkpointed.get(job_id)
        if has_any is None:
            has_any = self.checkpointed[job_id] = self.journal.has_checkpoints(job_id)
        return has_any and self.journal.checkpoint_path(job_id, task_id).exists()

    def checkpoint(self, job_id: str, task_id: str) -> bytes | None:
        """The task's last saved checkpoint, or None."""
        try:
            return self.journal.checkpoint_path(job_id, task_id).read_bytes()
        except FileNotFoundError:
            return None

    # -- journal -------------------------------------------------------------------------
    def _persist(self) -> None:
        """Write what changed since the last call, in one durable transaction (the cost ledger
        notes it first: nodes that joined or left, attempts that started or ended)."""
        self.costs.observe(self.nodes, self.jobs.values(), self.gang_nodes)
        recovery.persist_changes(self.journal, self.jobs.values())
        with self.lock:
            self.persisted.notify_all()
