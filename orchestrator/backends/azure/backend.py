"""``AzureBackend``: the Backend protocol on Azure Batch + Blob (see ``orchestrator.backend``).

A pool is a Batch pool (its id is the spec's), recorded locally with the credentials file it
was made with. A job is a Batch job with the spec's id; tasks keep their spec/trial ids, so a
submission re-run after Ctrl-C adds only what is missing. Each pool has a blob container
(``naming.pool_container``) for the workdir snapshots (content-addressed), task outputs and
copies of every task's stdout, stderr and metrics. An adaptive sweep's job is created with a
job manager task that runs the sweep controller in the cloud (see ``sweep_setup``).
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable

from orchestrator.records import job_index, pool_records
from orchestrator.backend import ProgressFn
from orchestrator.sweep.adaptive import is_adaptive
from orchestrator.backends.azure import job_ops, naming, pool_model, pool_ops, sweep_setup, task_model
from orchestrator.backends.azure.accounts import Account, Accounts
from orchestrator.backends.azure.batch_client import text
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.inputs import input_resource_files, upload_workdir
from orchestrator.backends.azure.retries import RetryPolicy, code_of
from orchestrator.backends.azure.task_files import read_task_file
from orchestrator.backends.azure.task_submit import Tally, add_tasks
from orchestrator.task_launch import job_concurrency
from orchestrator.errors import BackendError, CapacityError, ConflictError, InterruptedByUser, NotFoundError
from orchestrator.model import FileChunk, JobInfo, PoolInfo, SubmitReport, TaskInfo, TaskLaunch
from orchestrator.records.pool_records import PoolRecord
from orchestrator.spec import JobSpec, PoolSpec
from orchestrator.backends.azure.credentials import Credentials

STATUS_TTL = 1.0
DELETE_TIMEOUT = 1800.0
OUTPUT_MARGIN = 3600.0


class AzureBackend:
    name = "azure"

    def __init__(self, config_dir: Path | None = None, *, credentials: Credentials | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self.accounts = Accounts(config_dir, credentials, policy)
        self.last_submit: Tally | None = None
        self._tasks_seen: dict[str, tuple[float, list[Any], Any]] = {}
        self._sweep_contexts: dict[str, task_model.TaskContext] = {}

    # -- pools ---------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        options = pool_model.azure_options(spec)
        record = pool_records.load(spec.id)
        if record is not None and record.backend != self.name:
            raise ConflictError(f"pool {spec.id!r} exists on backend {record.backend}", hint="use another pool id")
        if record is not None and pool_model.fingerprint(PoolSpec.model_validate(record.spec)) != pool_model.fingerprint(spec):
            raise ConflictError(f"pool {spec.id!r} exists with other settings",
                                hint="use `orch pool resize` for the node count, or delete and create it again")
        account = self.accounts.for_pool(spec.id) if record else self.accounts.default()
        create_options = pool_model.pool_create_options(spec, account.credentials)
        record = record or PoolRecord(id=spec.id, backend=self.name, spec=spec.model_dump(mode="json"),
                                      created_at=time.time(), address=account.credentials.batch.url)
        record.extra.update(credentials_file=self.accounts.source_of(account),
                            container=naming.pool_container(spec.id, options.storage_container))
        if progress:
            progress(f"creating Batch pool {spec.id!r} ({options.vm_size}) on {account.credentials.batch.url}")
        pool_ops.create(account.batch, spec, create_options)
        pool_records.save(record)  # only once Batch has the pool: a refused create leaves no record
        if account.store is not None:
            account.store.ensure_container(record.extra["container"])
        pool_ops.wait_ready(account.batch, spec.id, options.allocation_timeout, progress)
        record.state = "ready"
        pool_records.save(record)
        return self._require_pool(spec.id)

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        if pool_records.load(pool_id) is None:
            return None
        return pool_ops.info(self.accounts.for_pool(pool_id).batch, pool_id)

    def list_pools(self) -> list[PoolInfo]:
        return [info for record in pool_records.all_records() if record.backend == self.name
                for info in [self.get_pool(record.id)] if info is not None]

    def resize_pool(self, pool_id: str, nodes: int, *, progress: ProgressFn | None = None) -> PoolInfo:
        record = pool_records.require(pool_id)
        spec = PoolSpec.model_validate(record.spec)
        api = self.accounts.for_pool(pool_id).batch
        dedicated, low = (nodes, 0) if spec.nodes.dedicated or not spec.nodes.low_priority else (0, nodes)
        pool_ops.resize(api, pool_id, dedicated, low, pool_model.azure_options(spec).allocation_timeout)
        record.spec = spec.model_copy(update={"nodes": spec.nodes.model_copy(
            update={"dedicated": dedicated, "low_priority": low})}).model_dump(mode="json")
        pool_records.save(record)
        pool_ops.wait_ready(api, pool_id, pool_model.azure_options(spec).allocation_timeout, progress)
        return self._require_pool(pool_id)

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        pool_records.require(pool_id)
        api = self.accounts.for_pool(pool_id).batch
        if not force and pool_ops.get(api, pool_id) is not None:
            busy = pool_ops.busy_tasks(api, pool_id)
            if busy:
                raise ConflictError(f"pool {pool_id!r} has {busy} running task(s)",
                                    hint="cancel the jobs first, or pass --force to kill them")
        pool_ops.delete(api, pool_id, DELETE_TIMEOUT, progress)
        pool_records.remove(pool_id)
        job_index.forget_pool(pool_id)

    def data_store(self, spec: PoolSpec) -> tuple[BlobStore, str]:
        """The storage account and blob container of a pool (``orch data``, ``orch down --storage``)."""
        container = naming.pool_container(spec.id, pool_model.azure_options(spec).storage_container)
        return self.accounts.for_pool(spec.id).require_store(f"pool {spec.id!r}'s data"), container

    def delete_storage(self, spec: PoolSpec) -> list[str]:
        """Delete the pool's blob container; returns what was removed."""
        store, container = self.data_store(spec)
        return [f"blob container {container}"] if store.delete_container(container) else []

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job: JobSpec, tasks: Iterable[TaskLaunch], *,
               workdir: tuple[str, bytes] | None = None) -> SubmitReport:
        record = pool_records.require(job.pool)
        spec = PoolSpec.model_validate(record.spec)
        options = pool_model.azure_options(spec)
        _check_distributed(job, spec)
        account = self.accounts.for_pool(job.pool)
        job_index.record(job.id, job.pool, self.name)
        adaptive = any(is_adaptive(task) for task in job.tasks)
        batch_job, created = job_ops.ensure(account.batch, job.id, job.pool, lifetime=options.job_lifetime,
                                            uses_dependencies=any(t.depends_on for t in job.tasks),
                                            max_parallel=job_concurrency(job),
                                            manager=self._manager_task(account, spec, job.id) if adaptive else None)
        ctx = self._task_context(account, spec, job, batch_job, workdir)
        if adaptive:
            self._sweep_contexts[job.id] = ctx
        present = set() if created else job_ops.existing_task_ids(account.batch, job.id)
        skipped = [0]

        def missing() -> Iterable[Any]:
            for launch in tasks:
                if launch.id in present:
                    skipped[0] += 1
                    continue
                yield task_model.task_options(launch, ctx, naming.task_prefix(job.id, launch.id))

        try:
            tally = add_tasks(account.batch, job.id, missing())
        except KeyboardInterrupt:
            raise InterruptedByUser(f"stopped submitting job {job.id!r}; the tasks already added stay",
                                    hint="submit the same file again: tasks already in are skipped") from None
        self.last_submit = tally
        if job.auto_complete and not tally.failed:
            self._seal(account, job.id)
        return SubmitReport(job_id=job.id, submitted=tally.submitted, already_present=tally.already_present + skipped[0],
                            failed=dict(tally.failed))

    def _task_context(self, account: Account, spec: PoolSpec, job: JobSpec, batch_job: Any,
                      workdir: tuple[str, bytes] | None) -> task_model.TaskContext:
        options = pool_model.azure_options(spec)
        container = naming.pool_container(spec.id, options.storage_container)
        expiry = batch_job.creation_time + timedelta(seconds=options.job_lifetime + OUTPUT_MARGIN)
        workdir_url = outputs_url = None
        input_files: list[Any] = []
        if workdir is not None or job.inputs or account.store is not None:
            store = account.require_store(f"job {job.id!r} (its workdir snapshot and inputs)")
            store.ensure_container(container)
            outputs_url = store.container_url(container, expiry, write=True)
            if workdir is not None:
                workdir_url = upload_workdir(store, container, workdir, expiry)
            input_files = input_resource_files(store, container, job.inputs, self.accounts.config_dir or Path.cwd(),
                                               expiry)
        return task_model.TaskContext(
            pool_id=spec.id, job_id=job.id, vm_size=options.vm_size, cpus_per_node=spec.cpus_per_node,
            gpus_per_node=spec.gpus_per_node, slots_per_node=spec.slots_per_node, pool_env=dict(spec.env),
            workdir_url=workdir_url, outputs_url=outputs_url, output_condition=options.output_upload,
            container=pool_model.task_container_settings(spec, account.credentials), input_files=tuple(input_files))

    def _manager_task(self, account: Account, spec: PoolSpec, job_id: str) -> Any:
        options = pool_model.azure_options(spec)
        store = account.require_store(f"the sweep controller of job {job_id!r}")
        container = naming.pool_container(spec.id, options.storage_container)
        store.ensure_container(container)
        expiry = datetime.now(timezone.utc) + timedelta(seconds=options.job_lifetime + OUTPUT_MARGIN)
        return sweep_setup.manager_task(sweep_setup.payload_url(store, container, job_id, expiry), dict(spec.env))

    def _seal(self, account: Account, job_id: str) -> None:
        try:
            job_ops.seal(account.batch, job_id)
        except ConflictError as exc:
            if code_of(exc) not in ("JobCompleted", "JobBeingTerminated"):
                raise

    def list_jobs(self, pool_id: str | None = None) -> list[JobInfo]:
        out: list[JobInfo] = []
        for record in pool_records.all_records():
            if record.backend != self.name or (pool_id and record.id != pool_id):
                continue
            api = self.accounts.for_pool(record.id).batch
            for job in api.listed("listing jobs", api.client.list_jobs):
                if job.pool_info is not None and job.pool_info.pool_id == record.id:
                    job_index.record(job.id, record.id, self.name)
                    out.append(self._job_info(job, record.id))
        return sorted(out, key=lambda j: j.created_at)

    def get_job(self, job_id: str) -> JobInfo | None:
        try:
            account, pool_id = self.accounts.for_job(job_id)
        except NotFoundError:
            return None
        job = job_ops.get(account.batch, job_id)
        return self._job_info(job, pool_id) if job is not None else None

    def _job_info(self, job: Any, pool_id: str) -> JobInfo:
        return job_ops.job_info(job, self._task_infos(job, pool_id))

    def list_tasks(self, job_id: str) -> list[TaskInfo]:
        account, pool_id = self.accounts.for_job(job_id)
        cached = self._tasks_seen.get(job_id)
        if cached is not None and time.monotonic() - cached[0] < STATUS_TTL:
            return self._task_infos(cached[2], pool_id, cached[1])
        job = job_ops.get(account.batch, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")
        return self._task_infos(job, pool_id)

    def _task_infos(self, job: Any, pool_id: str, raw: list[Any] | None = None) -> list[TaskInfo]:
        if raw is None:
            raw = job_ops.list_raw_tasks(self.accounts.for_pool(pool_id).batch, job.id)
            self._tasks_seen[job.id] = (time.monotonic(), raw, job)
        is_cancelled, stopped = job_ops.cancelled(job), job_ops.stopped_ids(pool_id, job.id)
        store = self.accounts.for_pool(pool_id).store
        if store is not None and job_ops.has_sweep_manager(job):
            stopped |= sweep_setup.stopped_markers(store, self._container(pool_id), job.id)
        return [job_ops.task_info(task, job.id, job_cancelled=is_cancelled, stopped=stopped) for task in raw]

    def cancel_job(self, job_id: str) -> None:
        account, _ = self.accounts.for_job(job_id)
        account.batch.terminate_job(job_id, naming.CANCEL_REASON)
        self._tasks_seen.pop(job_id, None)

    def stop_tasks(self, job_id: str, task_ids: list[str]) -> None:
        account, pool_id = self.accounts.for_job(job_id)
        job_ops.remember_stopped(pool_id, job_id, task_ids)
        for task_id in task_ids:
            try:
                account.batch.call(f"stopping task {task_id!r}", account.batch.client.terminate_task, job_id, task_id)
            except (ConflictError, NotFoundError):
                continue  # already ended, or gone
        self._tasks_seen.pop(job_id, None)

    def delete_job(self, job_id: str) -> None:
        account, pool_id = self.accounts.for_job(job_id)
        try:
            account.batch.call(f"deleting job {job_id!r}", lambda: account.batch.client.begin_delete_job(
                job_id, polling_interval=1).result())
        except NotFoundError:
            pass
        except ConflictError as exc:
            if code_of(exc) != "JobBeingDeleted":
                raise
        job_ops.forget_stopped(pool_id, job_id)
        job_index.forget(job_id)
        self._tasks_seen.pop(job_id, None)

    def read_file(self, job_id: str, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        account, pool_id = self.accounts.for_job(job_id)
        return read_task_file(account.batch, job_id, task_id, name, offset, store=account.store,
                              container=self._container(pool_id),
                              task_ended=lambda: self._task_ended(account, job_id, task_id))

    def _task_ended(self, account: Account, job_id: str, task_id: str) -> bool:
        cached = self._tasks_seen.get(job_id)
        if cached is not None and time.monotonic() - cached[0] < 10 * STATUS_TTL:
            state = next((text(t.state) for t in cached[1] if t.id == task_id), None)
            if state is not None:
                return state == "completed"
        task = account.batch.get_or_none(f"reading task {task_id!r}", account.batch.client.get_task, job_id, task_id)
        return task is None or text(task.state) == "completed"

    def _container(self, pool_id: str) -> str:
        record = pool_records.load(pool_id)
        return (record.extra.get("container") if record else None) or naming.pool_container(pool_id)

    def start_sweep(self, job: JobSpec) -> None:
        """Hand the job manager task created by ``submit`` its payload (see ``sweep_setup``)."""
        account, pool_id = self.accounts.for_job(job.id)
        ctx = self._sweep_contexts.get(job.id)
        batch_job = job_ops.get(account.batch, job.id)
        if batch_job is None or not job_ops.has_sweep_manager(batch_job):
            raise ConflictError(f"job {job.id!r} exists without a sweep controller task",
                                hint="`orch jobs delete` it and run `orch sweep` again")
        if ctx is None:
            raise BackendError(f"job {job.id!r} was not submitted by this process, so its trials' context is unknown",
                               hint="run `orch sweep` with the spec again: trials already in are kept")
        pool = PoolSpec.model_validate(pool_records.require(pool_id).spec)
        store = account.require_store(f"the sweep controller of job {job.id!r}")
        container, lifetime = self._container(pool_id), pool_model.azure_options(pool).job_lifetime
        expiry = batch_job.creation_time + timedelta(seconds=lifetime + OUTPUT_MARGIN)
        payload = sweep_setup.ManagerPayload(job=job, settings=sweep_setup.controller_settings(pool), context=ctx,
                                             stopped_url=store.container_url(container, expiry, write=True,
                                                                             listing=True))
        sweep_setup.upload_payload(store, container, payload)

    def sweep_state(self, job_id: str) -> dict[str, object] | None:
        """The sweep manager task's latest summary while it runs (see ``sweep_manager``), else None."""
        account, _ = self.accounts.for_job(job_id)
        api = account.batch
        task = api.get_or_none("reading the sweep manager", api.client.get_task, job_id, naming.SWEEP_MANAGER_ID)
        if task is None or text(task.state) == "completed":
            return None
        chunk = read_task_file(api, job_id, naming.SWEEP_MANAGER_ID, sweep_setup.STATE_FILE, 0, store=None,
                               container="", task_ended=lambda: False)
        summary = json.loads(chunk.data) if chunk is not None and chunk.data else {}
        return {**summary, "running": True, "task_state": text(task.state)}

    def _require_pool(self, pool_id: str) -> PoolInfo:
        info = self.get_pool(pool_id)
        if info is None:
            raise NotFoundError(f"pool {pool_id!r} does not exist")
        return info


def _check_distributed(job: JobSpec, spec: PoolSpec) -> None:
    multi = [i for i, t in enumerate(job.tasks) if t.distributed is not None and t.distributed.nodes != 1]
    if multi and not pool_model.inter_node_communication(spec):
        raise CapacityError(f"tasks[{multi[0]}] spans several nodes but pool {spec.id!r} was created without "
                            "inter-node communication",
                            hint="set azure.inter_node_communication: true in the pool file and create it again")

