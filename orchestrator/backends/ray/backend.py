"""``RayBackend``: the Backend contract on Ray (see ``orchestrator.backend``).

A pool is a Ray cluster reached through the address in its record, with one detached pool
manager actor that holds every job of the pool and node agents that run tasks. Jobs are named
by ``JobRef``: the pool's manager is asked for the job. Capabilities: a sweep host (a detached
controller actor per job), a cost ledger (the manager's records of node time and task holds;
see ``cost_keeper``), batched file reads (one call per node for many task files) and job
watching (task states in one small answer; waiting for a job's end in the manager, which answers
as it journals it). A local pool that stopped itself after its ``idle_timeout`` is read from
what it left on disk (``stopped_pool``) and started again by the next submission or ``pool create``.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import ray
from orchestrator import workdir
from orchestrator.backend import Capability, ProgressFn
from orchestrator.backends.ray import ledger_copy, pool_ops, stopped_pool, task_files
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.connection import NAMESPACE, connect, ray_errors
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.errors import (
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
)
from orchestrator.model import (
    FileChunk,
    JobInfo,
    JobLaunch,
    JobRef,
    PoolInfo,
    SubmitReport,
    TaskInfo,
    TaskLaunch,
    TaskState,
    UsageSpan,
)
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.controller import ControllerSettings

SUBMIT_CHUNK = 1000
FIRST_CHUNK = 100  # a small first call, so the first tasks start while the rest are sent
CALL_TIMEOUT = 60.0
READ_LIMIT = 4 * 1024 * 1024
BATCH_BYTES = 8 * 1024 * 1024  # what one node's answer to read_files holds, give or take 4 KiB a file


class RayBackend:
    name = "ray"
    capabilities = frozenset({Capability.SWEEP_HOST, Capability.COST_LEDGER, Capability.FILE_BATCHES,
                              Capability.JOB_WATCHING})

    def __init__(self, config_dir: Path | None = None) -> None:
        """``config_dir`` is accepted for symmetry with other backends; Ray needs no credentials file."""
        self.config_dir = config_dir

    # -- pools ---------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        record = pool_records.require(spec.id)
        if record.state == "ready":
            info = self.get_pool(spec.id)
            deadline = time.monotonic() + stopped_pool.STOP_WAIT_SECONDS
            while info is not None and info.state == "stopping" and time.monotonic() < deadline:
                time.sleep(0.5)  # a stop under way ends before the pool starts again
                info = self.get_pool(spec.id)
            if info is not None and info.state == "ready":
                return info
            if info is not None and info.state in ("stopped", "deleted"):
                _say(progress, "starting the stopped pool again (its jobs are kept)")
        pool_ops.create(spec, progress)
        return self._require_pool(spec.id)

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        record = pool_records.load(pool_id)
        if record is None:
            return None
        cluster = ClusterRecord.of(record)
        target = record.pool_spec().nodes.dedicated
        if cluster.stopped_at is not None:
            return PoolInfo(id=pool_id, backend=self.name, state="stopped", address=cluster.address,
                            target_nodes=target, detail=stopped_pool.note(cluster.stopped_at))
        if stopped_pool.stopping(pool_id):
            return PoolInfo(id=pool_id, backend=self.name, state="stopping", address=cluster.address,
                            target_nodes=target, detail="stopping itself after its idle_timeout")
        try:
            manager = self._manager(cluster)
        except BackendUnavailableError as exc:
            return PoolInfo(id=pool_id, backend=self.name, state="unreachable", address=cluster.address,
                            target_nodes=target, detail=exc.message)
        if manager is None:
            return PoolInfo(id=pool_id, backend=self.name, state=record.state if record.state != "ready" else "broken",
                            address=cluster.address, target_nodes=target)
        with ray_errors(f"reading pool {pool_id!r}"):
            nodes, idle = ray.get([manager.nodes_info.remote(), manager.idle_state.remote()], timeout=CALL_TIMEOUT)
        state, detail = "ready", ""
        if idle["stopped_at"] is not None:
            state, detail = ("deleted" if idle["deleted"] else "stopped"), stopped_pool.note(idle["stopped_at"],
                                                                                       deleted=idle["deleted"])
        elif idle["stopping"]:
            state = "stopping"
        return PoolInfo(id=pool_id, backend=self.name, state=state, nodes=tuple(nodes), address=cluster.address,
                        target_nodes=target, detail=detail, stops_at=idle["stops_at"])

    def resize_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        record = pool_records.require(spec.id)
        cluster = ClusterRecord.of(record)
        if cluster.stopped_at is not None:  # it starts with the new count (the record's spec) next time
            return PoolInfo(id=spec.id, backend=self.name, state="stopped", address=cluster.address,
                            target_nodes=spec.nodes.dedicated, detail=stopped_pool.note(cluster.stopped_at))
        self._connect(cluster)
        pool_ops.resize(spec, record.pool_spec().nodes.dedicated, progress)
        return self._require_pool(spec.id)

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        record = pool_records.require(pool_id)
        cluster = ClusterRecord.of(record)
        try:
            manager = self._manager(cluster)
        except BackendUnavailableError:
            manager = None
        if manager is not None and not force:
            with ray_errors(f"checking pool {pool_id!r}"):
                busy = ray.get(manager.busy.remote(), timeout=CALL_TIMEOUT)
            if busy:
                raise ConflictError(f"pool {pool_id!r} has {busy} pending or running task(s)",
                                    hint="cancel the jobs first, or pass --force to kill them")
        _say(progress, "stopping agents and tasks")
        ledger_copy.settle(cluster, manager)
        pool_ops.teardown(cluster, record.pool_spec())
        ledger_copy.close_nodes(stopped_pool.ledger_path(pool_id, cluster), time.time())

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job: JobLaunch, tasks: Iterable[TaskLaunch]) -> SubmitReport:
        manager = self._awake_manager(job.pool_id)
        if job.budget is not None or job.sweep_budgets:
            with ray_errors(f"setting the budgets of {job.id!r}"):
                ray.get(manager.set_budgets.remote(job.id, job.budget, dict(job.sweep_budgets)), timeout=CALL_TIMEOUT)
        inputs = _packed_inputs(job)
        snapshot = (job.workdir.digest, job.workdir.data) if job.workdir else None
        added = present = 0
        chunk: list[TaskLaunch] = []
        first = True
        with ray_errors(f"submitting job {job.id!r}"):
            for launch in tasks:
                chunk.append(launch)
                if len(chunk) >= (FIRST_CHUNK if first else SUBMIT_CHUNK):
                    a, p = ray.get(manager.add_tasks.remote(job.id, chunk, workdir=snapshot if first else None,
                                                            max_running=job.max_in_flight,
                                                            spec_digest=job.spec_digest,
                                                            inputs=inputs if first else None), timeout=CALL_TIMEOUT)
                    added, present, chunk, first = added + a, present + p, [], False
            a, p = ray.get(manager.add_tasks.remote(job.id, chunk, workdir=snapshot if first else None, seal=job.seal,
                                                    max_running=job.max_in_flight, spec_digest=job.spec_digest,
                                                    inputs=inputs if first else None),
                           timeout=CALL_TIMEOUT)
        return SubmitReport(job_id=job.id, submitted=added + a, already_present=present + p)

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        cluster = ClusterRecord.of(pool_records.require(pool_id))
        if cluster.stopped_at is not None:
            return sorted((job.info() for job in stopped_pool.jobs(pool_id).values()), key=lambda j: j.created_at)
        manager = self._manager(cluster)
        if manager is None:
            return []
        with ray_errors("listing jobs"):
            jobs: list[JobInfo] = ray.get(manager.list_jobs.remote(), timeout=CALL_TIMEOUT)
        return sorted(jobs, key=lambda j: j.created_at)

    def get_job(self, job: JobRef) -> JobInfo | None:
        record = pool_records.load(job.pool_id)
        if record is not None and ClusterRecord.of(record).stopped_at is not None:
            kept = stopped_pool.jobs(job.pool_id).get(job.job_id)
            return kept.info() if kept is not None else None
        manager = self._manager(ClusterRecord.of(record)) if record is not None else None
        if manager is None:
            return None
        with ray_errors(f"reading job {job.job_id!r}"):
            info: JobInfo | None = ray.get(manager.get_job.remote(job.job_id), timeout=CALL_TIMEOUT)
        return info

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        kept = self._stopped_job(job)
        if kept is not None:
            return [record.info(job.job_id) for record in kept.tasks.values()]
        manager = self._pool_manager(job.pool_id)
        with ray_errors(f"listing tasks of {job.job_id!r}"):
            tasks: list[TaskInfo] | None = ray.get(manager.list_tasks.remote(job.job_id), timeout=CALL_TIMEOUT)
        if tasks is None:
            raise NotFoundError(f"job {job.job_id!r} does not exist", hint="see `orch jobs list`")
        return tasks

    def stop_tasks(self, job: JobRef, task_ids: Sequence[str]) -> None:
        self._call(job, "stop_tasks", f"stopping tasks of {job.job_id!r}", list(task_ids))

    def cancel_job(self, job: JobRef) -> None:
        self._call(job, "cancel_job", f"cancelling {job.job_id!r}")

    def delete_job(self, job: JobRef) -> None:
        self._call(job, "delete_job", f"deleting {job.job_id!r}")

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        kept = self._stopped_job(job)
        if kept is not None:
            return stopped_pool.read_file(job.pool_id, kept, task_id, name, offset)
        manager = self._pool_manager(job.pool_id)
        with ray_errors(f"reading {name} of {job.job_id}/{task_id}"):
            node = ray.get(manager.task_node.remote(job.job_id, task_id), timeout=CALL_TIMEOUT)
            if node is None:
                return None
            try:
                agent = ray.get_actor(pool_ops.agent_name(job.pool_id, node), namespace=NAMESPACE)
                chunk: FileChunk | None = ray.get(agent.read_file.remote(job.job_id, task_id, name, offset),
                                                  timeout=CALL_TIMEOUT)
                return chunk
            except (ValueError, ray.exceptions.RayActorError):
                root = ray.get(manager.node_root.remote(node), timeout=CALL_TIMEOUT)
        if root and Path(root).is_dir():  # the node is gone but its files are on this machine
            return task_files.read_at(task_files.resolve(Path(root), job.job_id, task_id, name), offset, READ_LIMIT)
        raise NotFoundError(f"node {node}, which ran task {task_id!r}, is gone, and its files with it",
                            hint="a task's files live on its node; outputs it copied elsewhere remain")

    # -- batched reads, waiting ------------------------------------------------------------
    def read_files(self, job: JobRef, reads: Sequence[tuple[str, str, int]]) -> list[FileChunk | None]:
        """One call to the manager for the tasks' nodes, then one per node; a node whose agent is
        gone is read as ``read_file`` reads it."""
        manager = self._pool_manager(job.pool_id)
        out: list[FileChunk | None] = [None] * len(reads)
        unread: list[int] = []
        with ray_errors(f"reading {len(reads)} task file(s) of {job.job_id}"):
            nodes = ray.get(manager.task_nodes.remote(job.job_id, [task_id for task_id, _, _ in reads]),
                            timeout=CALL_TIMEOUT) or [None] * len(reads)
            by_node: dict[int, list[int]] = {}
            for position, node in enumerate(nodes):
                if node is not None:
                    by_node.setdefault(node, []).append(position)
            calls = {}
            for node, positions in by_node.items():
                try:
                    agent = ray.get_actor(pool_ops.agent_name(job.pool_id, node), namespace=NAMESPACE)
                except ValueError:
                    unread += positions
                    continue
                calls[node] = agent.read_files.remote([(job.job_id, *reads[p]) for p in positions], BATCH_BYTES)
            for node, call in calls.items():
                try:
                    chunks = ray.get(call, timeout=CALL_TIMEOUT)
                except ray.exceptions.RayActorError:
                    unread += by_node[node]
                    continue
                for position, chunk in zip(by_node[node], chunks):
                    out[position] = chunk
        for position in sorted(unread):
            task_id, name, offset = reads[position]
            out[position] = self.read_file(job, task_id, name, offset=offset)
        return out

    def wait_job(self, job: JobRef, *, timeout: float) -> JobInfo | None:
        record = pool_records.load(job.pool_id)
        manager = self._manager(ClusterRecord.of(record)) if record is not None else None
        if manager is None:
            return None
        with ray_errors(f"waiting for job {job.job_id!r}"):
            info: JobInfo | None = ray.get(manager.wait_job.remote(job.job_id, timeout),
                                           timeout=timeout + CALL_TIMEOUT)
        return info

    def task_states(self, job: JobRef) -> dict[str, TaskState]:
        manager = self._pool_manager(job.pool_id)
        with ray_errors(f"reading task states of {job.job_id!r}"):
            states: dict[str, str] | None = ray.get(manager.task_states.remote(job.job_id), timeout=CALL_TIMEOUT)
        if states is None:
            raise NotFoundError(f"job {job.job_id!r} does not exist", hint="see `orch jobs list`")
        return {task_id: TaskState(state) for task_id, state in states.items()}

    # -- sweep host ----------------------------------------------------------------------
    def start_sweep(self, job: JobLaunch, spec: JobSpec, settings: ControllerSettings) -> None:
        self._pool_manager(job.pool_id)
        from orchestrator.backends.ray import sweep_actor

        with ray_errors(f"starting the sweep controller of {job.id!r}"):
            sweep_actor.start(spec, settings)

    def sweep_state(self, job: JobRef) -> dict[str, Any] | None:
        """The job's controller: whether it runs, its passes and last error; None when none runs."""
        record = pool_records.load(job.pool_id)
        if record is None or self._manager(ClusterRecord.of(record)) is None:
            return None
        from orchestrator.backends.ray import sweep_actor

        actor = sweep_actor.find(job.job_id)
        if actor is None:
            return None
        try:
            state: dict[str, Any] = ray.get(actor.state.remote(), timeout=CALL_TIMEOUT)
        except ray.exceptions.RayActorError:
            return None
        return state

    # -- cost ledger ---------------------------------------------------------------------
    def usage(self, pool_id: str, *, since: float | None = None) -> Iterator[UsageSpan]:
        """The ledger's spans (``usage``): a local cluster's file (kept after pool delete), or for
        a cluster at ``ray.address`` the manager's, copied here so it outlives the pool."""
        record = pool_records.load(pool_id)
        cluster = ClusterRecord.of(record) if record is not None else None
        if cluster is not None and cluster.address and not cluster.started_cluster and cluster.stopped_at is None:
            try:
                ledger_copy.copy(cluster, self._manager(cluster))
            except BackendUnavailableError:
                pass  # unreachable: what was copied last time
        return stopped_pool.ledger_spans(stopped_pool.ledger_path(pool_id, cluster), pool_id, since)

    # -- plumbing ------------------------------------------------------------------------
    def _awake_manager(self, pool_id: str) -> Any:
        """The pool's manager, ready for a submission: the idle clock starts over, and a pool that
        stopped itself (or is stopping) is started again first, its jobs kept."""
        cluster = ClusterRecord.of(pool_records.require(pool_id))
        if cluster.stopped_at is None and not stopped_pool.stopping(pool_id):
            manager = self._pool_manager(pool_id)
            state = self._keep_awake(manager, pool_id)
            deadline = time.monotonic() + stopped_pool.STOP_WAIT_SECONDS
            while state == "stopping" and not cluster.started_cluster and time.monotonic() < deadline:
                time.sleep(0.2)  # a pool on a cluster at ray.address is releasing its agents
                state = self._keep_awake(manager, pool_id)
            if state == "running":
                return manager
            if state == "deleted":
                raise NotFoundError(f"pool {pool_id!r} deleted itself after its idle_timeout (autodelete)",
                                    hint="`orch pool create` makes it again; `orch pool delete` forgets it")
        if cluster.started_cluster and stopped_pool.wait_stopped(pool_id) is None:
            raise NotFoundError(f"pool {pool_id!r} deleted itself after its idle_timeout (autodelete)",
                                hint="`orch pool create` makes it again")
        pool_ops.create(pool_records.require(pool_id).pool_spec(), None)
        return self._pool_manager(pool_id)

    @staticmethod
    def _keep_awake(manager: Any, pool_id: str) -> str:
        with ray_errors(f"reaching the manager of pool {pool_id!r}"):
            state: str = ray.get(manager.keep_awake.remote(), timeout=CALL_TIMEOUT)
        return state

    def _stopped_job(self, job: JobRef) -> JobRecord | None:
        """The job as a stopped local pool's journal has it (None while the pool runs);
        ``NotFoundError`` for a job it does not have."""
        record = pool_records.load(job.pool_id)
        if record is None or ClusterRecord.of(record).stopped_at is None:
            return None
        kept = stopped_pool.jobs(job.pool_id).get(job.job_id)
        if kept is None:
            raise NotFoundError(f"job {job.job_id!r} does not exist", hint="see `orch jobs list`")
        return kept

    def _connect(self, cluster: ClusterRecord) -> None:
        connect(cluster.address or "auto", cluster.token_file, pool_id=cluster.pool_id, loopback=cluster.loopback)

    def _manager(self, cluster: ClusterRecord) -> Any | None:
        self._connect(cluster)
        return pool_ops.get_manager(cluster.pool_id)

    def _pool_manager(self, pool_id: str) -> Any:
        manager = self._manager(ClusterRecord.of(pool_records.require(pool_id)))
        if manager is None:
            raise NotFoundError(f"pool {pool_id!r} is not running (its manager is gone)",
                                hint="run `orch pool delete --force` then `orch pool create`")
        return manager

    def _call(self, job: JobRef, method: str, what: str, *args: Any) -> None:
        """Call a job method of the pool manager; ``NotFoundError`` when it does not know the job."""
        manager = self._pool_manager(job.pool_id)
        with ray_errors(what):
            known = ray.get(getattr(manager, method).remote(job.job_id, *args), timeout=CALL_TIMEOUT)
        if known is None:
            raise NotFoundError(f"job {job.job_id!r} does not exist", hint="see `orch jobs list`")

    def _require_pool(self, pool_id: str) -> PoolInfo:
        info = self.get_pool(pool_id)
        if info is None:
            raise NotFoundError(f"pool {pool_id!r} does not exist")
        return info


def _say(progress: ProgressFn | None, text: str) -> None:
    if progress:
        progress(text)


def _packed_inputs(job: JobLaunch) -> list[tuple[str, str, bytes, str | None]]:
    """Local inputs packed for the manager to own ((to, digest, zip, file name)); planning refused blob ones."""
    packed = []
    for item in job.inputs:
        assert item.path is not None, "the ray backend declares no blob inputs"
        snap = workdir.snapshot_path(item.path)
        packed.append((item.to, snap.digest, snap.data, None if item.path.is_dir() else item.path.name))
    return packed
