"""``RayBackend``: the Backend protocol on Ray (see ``orchestrator.backend`` for the contract)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import ray

from orchestrator import workdir
from orchestrator.records import job_index, pool_records
from orchestrator.backend import ProgressFn
from orchestrator.backends.ray import pool_ops
from orchestrator.backends.ray.connection import NAMESPACE, connect, ray_errors
from orchestrator.task_launch import job_concurrency
from orchestrator.errors import BackendUnavailableError, ConflictError, NotFoundError, SpecError
from orchestrator.model import FileChunk, JobInfo, PoolInfo, SubmitReport, TaskInfo, TaskLaunch
from orchestrator.records.pool_records import PoolRecord
from orchestrator.spec import JobSpec, PoolSpec

SUBMIT_CHUNK = 1000
CALL_TIMEOUT = 60.0


class RayBackend:
    name = "ray"

    def __init__(self, config_dir: Path | None = None) -> None:
        """``config_dir`` is accepted for symmetry with other backends; Ray needs no credentials file."""
        self.config_dir = config_dir

    # -- pools ---------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        record = pool_records.load(spec.id)
        if record is not None and record.state == "ready":
            existing = PoolSpec.model_validate(record.spec)
            if existing != spec:
                raise ConflictError(f"pool {spec.id!r} exists with other settings",
                                    hint="use `orch pool resize` for the node count, or delete and create it again")
            info = self.get_pool(spec.id)
            if info is not None and info.state == "ready":
                return info
        pool_ops.create(spec, progress)
        info = self.get_pool(spec.id)
        assert info is not None
        return info

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        record = pool_records.load(pool_id)
        if record is None:
            return None
        try:
            manager = self._manager(record)
        except BackendUnavailableError as exc:
            return PoolInfo(id=pool_id, backend=self.name, state="unreachable", address=record.address,
                            target_nodes=_target(record), detail=exc.message)
        if manager is None:
            return PoolInfo(id=pool_id, backend=self.name, state=record.state if record.state != "ready" else "broken",
                            address=record.address, target_nodes=_target(record))
        with ray_errors(f"reading pool {pool_id!r}"):
            nodes = ray.get(manager.nodes_info.remote(), timeout=CALL_TIMEOUT)
        return PoolInfo(id=pool_id, backend=self.name, state="ready", nodes=tuple(nodes), address=record.address,
                        target_nodes=_target(record))

    def list_pools(self) -> list[PoolInfo]:
        return [info for r in pool_records.all_records() if r.backend == self.name
                for info in [self.get_pool(r.id)] if info is not None]

    def resize_pool(self, pool_id: str, nodes: int, *, progress: ProgressFn | None = None) -> PoolInfo:
        record = pool_records.require(pool_id)
        self._connect(record)
        pool_ops.resize(PoolSpec.model_validate(record.spec), record, nodes, progress)
        info = self.get_pool(pool_id)
        assert info is not None
        return info

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        record = pool_records.require(pool_id)
        try:
            manager = self._manager(record)
        except BackendUnavailableError:
            manager = None
        if manager is not None and not force:
            with ray_errors(f"checking pool {pool_id!r}"):
                busy = ray.get(manager.busy.remote(), timeout=CALL_TIMEOUT)
            if busy:
                raise ConflictError(f"pool {pool_id!r} has {busy} pending or running task(s)",
                                    hint="cancel the jobs first, or pass --force to kill them")
        record.state = "deleting"
        pool_records.save(record)
        if progress:
            progress("stopping agents and tasks")
        pool_ops.teardown(record)
        pool_records.remove(pool_id)
        job_index.forget_pool(pool_id)

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job: JobSpec, tasks: Iterable[TaskLaunch], *,
               workdir: tuple[str, bytes] | None = None) -> SubmitReport:
        record = pool_records.require(job.pool)
        packed_inputs = self._pack_inputs(job)
        manager = self._require_manager(record)
        job_index.record(job.id, job.pool, self.name)
        added = present = 0
        chunk: list[TaskLaunch] = []
        first = True
        max_running = job_concurrency(job)
        with ray_errors(f"submitting job {job.id!r}"):
            for launch in tasks:
                chunk.append(launch)
                if len(chunk) >= SUBMIT_CHUNK:
                    a, p = ray.get(manager.add_tasks.remote(job.id, chunk, max_retries=job.max_retries,
                                                            workdir=workdir if first else None, max_running=max_running,
                                                            inputs=packed_inputs if first else None),
                                           timeout=CALL_TIMEOUT)
                    added, present, chunk, first = added + a, present + p, [], False
            a, p = ray.get(manager.add_tasks.remote(job.id, chunk, max_retries=job.max_retries,
                                                    workdir=workdir if first else None, seal=job.auto_complete,
                                                    max_running=max_running, inputs=packed_inputs if first else None),
                           timeout=CALL_TIMEOUT)
        return SubmitReport(job_id=job.id, submitted=added + a, already_present=present + p)

    def list_jobs(self, pool_id: str | None = None) -> list[JobInfo]:
        out: list[JobInfo] = []
        for record in pool_records.all_records():
            if record.backend != self.name or (pool_id and record.id != pool_id):
                continue
            manager = self._manager(record)
            if manager is not None:
                with ray_errors("listing jobs"):
                    out.extend(ray.get(manager.list_jobs.remote(), timeout=CALL_TIMEOUT))
        return sorted(out, key=lambda j: j.created_at)

    def get_job(self, job_id: str) -> JobInfo | None:
        manager = self._job_manager(job_id, required=False)
        if manager is None:
            return None
        with ray_errors(f"reading job {job_id!r}"):
            return ray.get(manager.get_job.remote(job_id), timeout=CALL_TIMEOUT)

    def list_tasks(self, job_id: str, states: list[str] | None = None) -> list[TaskInfo]:
        manager = self._job_manager(job_id)
        with ray_errors(f"listing tasks of {job_id!r}"):
            tasks = ray.get(manager.list_tasks.remote(job_id, states), timeout=CALL_TIMEOUT)
        if tasks is None:
            raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")
        return tasks

    def cancel_job(self, job_id: str) -> None:
        manager = self._job_manager(job_id)
        with ray_errors(f"cancelling {job_id!r}"):
            ray.get(manager.cancel_job.remote(job_id), timeout=CALL_TIMEOUT)

    def stop_tasks(self, job_id: str, task_ids: list[str]) -> None:
        manager = self._job_manager(job_id)
        with ray_errors(f"stopping tasks of {job_id!r}"):
            ray.get(manager.stop_tasks.remote(job_id, list(task_ids)), timeout=CALL_TIMEOUT)

    def delete_job(self, job_id: str) -> None:
        manager = self._job_manager(job_id)
        with ray_errors(f"deleting {job_id!r}"):
            ray.get(manager.delete_job.remote(job_id), timeout=CALL_TIMEOUT)
        job_index.forget(job_id)

    def read_file(self, job_id: str, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        manager = self._job_manager(job_id)
        entry = job_index.lookup(job_id)
        with ray_errors(f"reading {name} of {job_id}/{task_id}"):
            node = ray.get(manager.task_node.remote(job_id, task_id), timeout=CALL_TIMEOUT)
            if node is None:
                return None
            agent = ray.get_actor(pool_ops.agent_name(entry.pool_id if entry else "", node), namespace=NAMESPACE)
            return ray.get(agent.read_file.remote(job_id, task_id, name, offset), timeout=CALL_TIMEOUT)

    def start_sweep(self, job: JobSpec) -> None:
        record = pool_records.require(job.pool)
        self._require_manager(record)
        from orchestrator.backends.ray import sweep_actor

        with ray_errors(f"starting the sweep controller of {job.id!r}"):
            sweep_actor.start(job, PoolSpec.model_validate(record.spec))

    def sweep_state(self, job_id: str) -> dict[str, Any] | None:
        """The job's controller: whether it runs, its passes and last error; None when none runs."""
        entry = job_index.lookup(job_id)
        record = pool_records.load(entry.pool_id) if entry else None
        if record is None or self._manager(record) is None:
            return None
        from orchestrator.backends.ray import sweep_actor

        actor = sweep_actor.find(job_id)
        if actor is None:
            return None
        try:
            state: dict[str, Any] = ray.get(actor.state.remote(), timeout=CALL_TIMEOUT)
        except ray.exceptions.RayActorError:
            return None
        return state

    def _pack_inputs(self, job: JobSpec) -> list[tuple[str, str, bytes, str | None]]:
        """Local inputs as snapshots (relative paths from the config dir); blob inputs are refused."""
        base = self.config_dir or Path(".")
        packed = []
        for index, item in enumerate(job.inputs):
            if item.path is None:
                raise SpecError(f"inputs[{index}]: blob inputs need an azure pool", where=None,
                                hint="on Ray, download the data in the task, or use a local path")
            path = (base / item.path).resolve()
            digest, data = workdir.snapshot_path(path)
            packed.append((item.to, digest, data, None if path.is_dir() else path.name))
        return packed

    # -- plumbing ------------------------------------------------------------------------
    def _connect(self, record: PoolRecord) -> None:
        connect(record.address or "auto", record.token_file, pool_id=record.id)

    def _manager(self, record: PoolRecord) -> Any | None:
        self._connect(record)
        return pool_ops.get_manager(record.id)

    def _require_manager(self, record: PoolRecord) -> Any:
        manager = self._manager(record)
        if manager is None:
            raise NotFoundError(f"pool {record.id!r} is not running (its manager is gone)",
                                hint="run `orch pool delete --force` then `orch pool create`")
        return manager

    def _job_manager(self, job_id: str, *, required: bool = True) -> Any | None:
        entry = job_index.lookup(job_id)
        records = [pool_records.load(entry.pool_id)] if entry else pool_records.all_records()
        for record in records:
            if record is None or record.backend != self.name:
                continue
            manager = self._manager(record)
            if manager is not None and (entry or ray.get(manager.get_job.remote(job_id), timeout=CALL_TIMEOUT)):
                if not entry:
                    job_index.record(job_id, record.id, self.name)
                return manager
        if required:
            raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")
        return None


def _target(record: PoolRecord) -> int:
    return int(record.spec.get("nodes", {}).get("dedicated", 0))
