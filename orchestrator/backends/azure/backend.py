"""``AzureBackend``: the Backend contract on Azure Batch + Blob (see ``orchestrator.backend``).

A pool is a Batch pool (its id is the spec's); its record's engine part keeps the credentials
file it was made with and its blob container (``naming.pool_container``), which holds the
workdir snapshots (content-addressed), inputs, task outputs, copies of every task's stdout,
stderr and metrics, and each task's last saved checkpoint (``checkpoints``; deleted with the job). A job is a Batch job with the spec's id; tasks keep their spec/trial ids,
so a submission re-run after Ctrl-C adds only what is missing (``submission``). Capabilities:
a sweep host (a job manager task runs the controller), a data store and storage teardown (the
pool's blob container), a price list (``vm_sizes``) and a cost ledger (``costs``). Pools with an
``idle_timeout`` stop themselves (``autostop``).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from orchestrator.backend import Capability, ProgressFn
from orchestrator.backends.azure import (
    arm_pools,
    autostop,
    budgets,
    checkpoints,
    costs,
    job_ops,
    naming,
    pool_model,
    pool_ops,
    submission,
    sweep_setup,
    vm_sizes,
)
from orchestrator.backends.azure.accounts import Accounts
from orchestrator.backends.azure.batch_client import text
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.data_transfer import BlobDataStore
from orchestrator.backends.azure.retries import RetryPolicy, code_of
from orchestrator.backends.azure.task_files import read_task_file
from orchestrator.errors import (
    ConflictError,
    NotFoundError,
    OrchError,
    UnsupportedError,
    WaitTimeoutError,
)
from orchestrator.model import (
    FileChunk,
    JobInfo,
    JobLaunch,
    JobRef,
    PoolInfo,
    PriceQuote,
    SubmitReport,
    TaskInfo,
    TaskLaunch,
    UsageSpan,
)
from orchestrator.records import pool_records
from orchestrator.spec.job import JobSpec
from orchestrator.spec.money import format_money
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.controller import ControllerSettings
from orchestrator.sweep.task_factory import ListedFile

STATUS_TTL = 1.0
DELETE_TIMEOUT = 1800.0
WAKE_PATIENCE = 90.0  # Batch takes a new formula at most every 30 s, and not while the pool resizes


class AzureBackend:
    name = "azure"
    capabilities = frozenset({Capability.SWEEP_HOST, Capability.DATA_STORE, Capability.STORAGE_TEARDOWN,
                              Capability.PRICE_LIST, Capability.BLOB_FILES, Capability.COST_LEDGER})

    def __init__(self, config_dir: Path | None = None, *, credentials: Credentials | None = None,
                 policy: RetryPolicy | None = None) -> None:
        self.accounts = Accounts(config_dir, credentials, policy)
        self._tasks_seen: dict[str, tuple[float, list[Any], Any]] = {}

    # -- pools ---------------------------------------------------------------------------
    def ensure_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        options = pool_model.azure_options(spec)
        problem = options.controller_problem() if spec.max_spend is not None else None
        if problem is not None:  # the pool's jobs' managers keep max_spend: they must reach Batch
            raise UnsupportedError(f"pool {spec.id!r} has max_spend, which the job manager task of each of its jobs "
                                   f"keeps on its nodes; {problem[0].split('; ', 1)[-1]}", hint=problem[1])
        account = self.accounts.for_pool(spec.id)
        create_options = pool_model.pool_create_options(spec, account.credentials, datetime.now(timezone.utc))
        container = naming.pool_container(spec.id, options.storage_container)
        if progress:
            progress(f"creating Batch pool {spec.id!r} ({options.vm_size}) on {account.credentials.batch.url}")
        identity = options.identity
        through = (None if identity is None else  # Batch takes pool identities only through Resource Manager
                   lambda: arm_pools.create(account.credentials.batch, create_options.as_dict(), identity,
                                            policy=account.batch.policy))
        created = pool_ops.create(account.batch, spec, create_options, through)
        # only once Batch has the pool: a refused create leaves nothing to clean up
        pool_records.save_engine(spec.id, {"credentials_file": self.accounts.source_of(account),
                                           "container": container, "address": account.credentials.batch.url})
        if account.store is not None:
            account.store.ensure_container(container)
        if not created and pool_ops.is_stopped(account.batch, spec.id) and progress:
            progress(f"pool {spec.id!r} stopped itself after {spec.idle_timeout:g}s without work: starting it again")
        if not created and pool_ops.needs_wake(account.batch, spec):
            if not pool_ops.wake(account.batch, spec, patience=WAKE_PATIENCE):
                raise WaitTimeoutError(f"Batch did not let orch wake pool {spec.id!r} within {WAKE_PATIENCE:g}s "
                                       "(it was resizing)", hint="run `orch pool create` again")
        pool_ops.wait_ready(account.batch, spec.id, options.allocation_timeout, progress)
        return self._require_pool(spec.id)

    def get_pool(self, pool_id: str) -> PoolInfo | None:
        """The pool as Batch has it (and an observation of it for the cost ledger)."""
        record = pool_records.load(pool_id)
        if record is None:
            return None
        account, spec = self.accounts.for_pool(pool_id), record.pool_spec()
        found = pool_ops.fetch(account.batch, pool_id)
        if found is None:
            return None
        pool, nodes = found
        _best_effort(lambda: costs.note_pool(account, pool_id, self._container(pool_id), spec, pool, nodes))
        if spec.autodelete and autostop.is_stopped(pool):
            return pool_ops.autodelete(account.batch, pool, spec)
        return pool_ops.status(account.batch, pool, nodes, spec)

    def resize_pool(self, spec: PoolSpec, *, progress: ProgressFn | None = None) -> PoolInfo:
        api = self.accounts.for_pool(spec.id).batch
        timeout = pool_model.azure_options(spec).allocation_timeout
        pool_ops.resize(api, spec, timeout)
        pool_ops.wait_ready(api, spec.id, timeout, progress)
        return self._require_pool(spec.id)

    def delete_pool(self, pool_id: str, *, force: bool = False, progress: ProgressFn | None = None) -> None:
        account = self.accounts.for_pool(pool_id)
        api, container = account.batch, self._container(pool_id)
        if not force and pool_ops.get(api, pool_id) is not None:
            busy = pool_ops.busy_tasks(api, pool_id)
            if busy:
                raise ConflictError(f"pool {pool_id!r} has {busy} running task(s)",
                                    hint="cancel the jobs first, or pass --force to kill them")
        record = pool_records.load(pool_id)
        spec = record.pool_spec() if record is not None else None
        _best_effort(lambda: costs.usage(account, pool_id, container, spec, None))  # what runs now, kept
        pool_ops.delete(api, pool_id, DELETE_TIMEOUT, progress)
        costs.note_pool_deleted(account, pool_id, container)

    # -- capability: cost ledger -----------------------------------------------------------
    def usage(self, pool_id: str, *, since: float | None = None) -> Iterator[UsageSpan]:
        """The pool's node time, priced and shared out to tasks (``costs``); a deleted pool's from
        what orch recorded of it."""
        record = pool_records.load(pool_id)
        spec = record.pool_spec() if record is not None else None
        yield from costs.usage(self.accounts.for_pool(pool_id), pool_id, self._container(pool_id), spec, since)

    # -- capabilities: data store, storage teardown, price list ---------------------------
    def data_store(self, pool: PoolSpec) -> BlobDataStore:
        """The pool's blob container in its storage account."""
        store = self.accounts.for_pool(pool.id).require_store(f"pool {pool.id!r}'s data")
        return BlobDataStore(store, naming.pool_container(pool.id, pool_model.azure_options(pool).storage_container))

    def delete_storage(self, pool: PoolSpec) -> list[str]:
        """Delete the pool's blob container; returns what was removed."""
        data = self.data_store(pool)
        return [f"blob container {data.location}"] if data.store.delete_container(data.location) else []

    def blob_files(self, pool: PoolSpec, container: str, prefix: str) -> Iterator[ListedFile]:
        """The blobs a Shipyard ``azure_storage`` file factory lists, in the pool's storage account."""
        store = self.accounts.for_pool(pool.id).require_store(f"listing {container}/{prefix} for a file factory")
        for name in store.names(container, prefix):
            yield ListedFile(path=name, url=store.blob_url(container, name), container=container)

    def quote(self, pool: PoolSpec) -> PriceQuote:
        """List prices of the pool's nodes (an autoscale pool at its minimum and maximum)."""
        options = pool_model.azure_options(pool)
        size, scale = options.vm_size, options.autoscale
        if scale is None:
            rows = [("nodes", vm_sizes.estimate_cost(size, pool.nodes.dedicated, pool.nodes.low_priority))]
        else:
            bounds = [("autoscale minimum", scale.min_nodes)]
            if scale.max_nodes is not None:
                bounds.append(("autoscale maximum", scale.max_nodes))
            rows = [(label, vm_sizes.estimate_cost(size, 0 if scale.low_priority else n, n if scale.low_priority else 0))
                    for label, n in bounds]
        about = vm_sizes.table_about()
        return PriceQuote(service="Azure Batch", estimates=tuple(rows), terms=about.get("price_terms"),
                          source=about.get("price_source"))

    # -- jobs ----------------------------------------------------------------------------
    def submit(self, job: JobLaunch, tasks: Iterable[TaskLaunch]) -> SubmitReport:
        """Submit, waking the pool first if autostop stopped it (or may soon: ``pool_ops.wake_for_work``).
        A pool that spent its ``max_spend`` takes no job (its jobs' managers keep it server-side)."""
        pool = pool_records.require(job.pool_id).pool_spec()
        account = self.accounts.for_pool(job.pool_id)
        if submission.limits_of(job, pool):
            refused = submission.manager_problem(job.id, pool, what="keeping this job's budget")
            if refused is not None:
                raise refused
        if pool.max_spend is not None:
            spent = sum(span.cost for span in costs.usage(account, pool.id, self._container(pool.id), pool, None))
            if spent >= pool.max_spend:
                raise ConflictError(f"pool {pool.id!r} has spent {format_money(spent)} of its max_spend of "
                                    f"{format_money(pool.max_spend)}: no task starts on it",
                                    hint="raise max_spend in the pool file and `orch pool create` it, or use "
                                         "another pool")
        pool_ops.wake_for_work(account.batch, pool)
        return submission.submit(account, pool, self._container(job.pool_id), job, tasks)

    def list_jobs(self, pool_id: str) -> list[JobInfo]:
        api = self.accounts.for_pool(pool_id).batch
        jobs = [job for job in api.listed("listing jobs", api.client.list_jobs)
                if job.pool_info is not None and job.pool_info.pool_id == pool_id]
        return sorted((self._job_info(job, pool_id) for job in jobs), key=lambda j: j.created_at)

    def get_job(self, job: JobRef) -> JobInfo | None:
        batch_job = job_ops.get(self.accounts.for_pool(job.pool_id).batch, job.job_id)
        return self._job_info(batch_job, job.pool_id) if batch_job is not None else None

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        cached = self._tasks_seen.get(job.job_id)
        if cached is not None and time.monotonic() - cached[0] < STATUS_TTL:
            return self._task_infos(cached[2], job.pool_id, cached[1])
        batch_job = job_ops.get(self.accounts.for_pool(job.pool_id).batch, job.job_id)
        if batch_job is None:
            raise NotFoundError(f"job {job.job_id!r} does not exist", hint="see `orch jobs list`")
        return self._task_infos(batch_job, job.pool_id)

    def stop_tasks(self, job: JobRef, task_ids: Sequence[str]) -> None:
        api = self.accounts.for_pool(job.pool_id).batch
        job_ops.remember_stopped(job.pool_id, job.job_id, list(task_ids))
        for task_id in task_ids:
            try:
                api.call(f"stopping task {task_id!r}", api.client.terminate_task, job.job_id, task_id)
            except (ConflictError, NotFoundError):
                continue  # already ended, or gone
        self._tasks_seen.pop(job.job_id, None)

    def cancel_job(self, job: JobRef) -> None:
        self.accounts.for_pool(job.pool_id).batch.terminate_job(job.job_id, naming.CANCEL_REASON)
        self._tasks_seen.pop(job.job_id, None)

    def delete_job(self, job: JobRef) -> None:
        account = self.accounts.for_pool(job.pool_id)
        api = account.batch
        record = pool_records.load(job.pool_id)
        if job_ops.get(api, job.job_id) is not None:  # the cost ledger keeps what the job ran
            costs.note_job_ending(account, job.pool_id, self._container(job.pool_id),
                                  record.pool_spec() if record is not None else None, job.job_id)
        try:
            api.call(f"deleting job {job.job_id!r}",
                     lambda: api.client.begin_delete_job(job.job_id, polling_interval=1).result())
        except ConflictError as exc:
            if code_of(exc) != "JobBeingDeleted":
                raise
        finally:
            self._tasks_seen.pop(job.job_id, None)
        job_ops.forget_stopped(job.pool_id, job.job_id)
        if account.store is not None:  # the same job id submitted again must not resume these
            checkpoints.forget(account.store, self._container(job.pool_id), job.job_id)

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        account = self.accounts.for_pool(job.pool_id)
        return read_task_file(account.batch, job.job_id, task_id, name, offset, store=account.store,
                              container=self._container(job.pool_id),
                              task_ended=lambda: self._task_ended(job, task_id))

    # -- sweep host ----------------------------------------------------------------------
    def start_sweep(self, job: JobLaunch, spec: JobSpec, settings: ControllerSettings) -> None:
        """Hand the job's sweep manager task (created by ``submit``) its payload (see ``sweep_setup``)."""
        pool = pool_records.require(job.pool_id).pool_spec()
        submission.start_sweep(self.accounts.for_pool(job.pool_id), pool, self._container(job.pool_id), job, spec,
                               settings)

    def sweep_state(self, job: JobRef) -> dict[str, Any] | None:
        """The sweep manager task's latest summary while it runs (see ``sweep_manager``), else None."""
        api = self.accounts.for_pool(job.pool_id).batch
        task = api.get_or_none("reading the sweep manager", api.client.get_task, job.job_id, naming.SWEEP_MANAGER_ID)
        if task is None or text(task.state) == "completed":
            return None
        chunk = read_task_file(api, job.job_id, naming.SWEEP_MANAGER_ID, sweep_setup.STATE_FILE, 0, store=None,
                               container="", task_ended=lambda: False)
        summary = json.loads(chunk.data) if chunk is not None and chunk.data else {}
        return {**summary, "running": True, "task_state": text(task.state)}

    # -- plumbing ------------------------------------------------------------------------
    def _job_info(self, job: Any, pool_id: str) -> JobInfo:
        tasks = self._task_infos(job, pool_id)
        if job_ops.settled(job, tasks):
            self.accounts.for_pool(pool_id).batch.terminate_job(job.id, naming.DEPENDENCY_REASON)
            job = job_ops.get(self.accounts.for_pool(pool_id).batch, job.id) or job
        return job_ops.job_info(job, tasks)

    def _task_infos(self, job: Any, pool_id: str, raw: list[Any] | None = None) -> list[TaskInfo]:
        account = self.accounts.for_pool(pool_id)
        if raw is None:
            raw = job_ops.list_raw_tasks(account.batch, job.id)
            self._tasks_seen[job.id] = (time.monotonic(), raw, job)
        is_cancelled, stopped = job_ops.cancelled(job), job_ops.stopped_ids(pool_id, job.id)
        if account.store is not None and job_ops.has_sweep_manager(job):
            stopped |= sweep_setup.stopped_markers(account.store, self._container(pool_id), job.id)
        budget = (budgets.read_state(account.store, self._container(pool_id), job.id)
                  if account.store is not None and job_ops.keeps_budgets(job) else None)
        return job_ops.task_infos(raw, job.id, job_cancelled=is_cancelled, stopped=stopped, budget=budget,
                                  budget_ended=job_ops.ended_for_budget(job))

    def _task_ended(self, job: JobRef, task_id: str) -> bool:
        cached = self._tasks_seen.get(job.job_id)
        if cached is not None and time.monotonic() - cached[0] < 10 * STATUS_TTL:
            state = next((text(t.state) for t in cached[1] if t.id == task_id), None)
            if state is not None:
                return state == "completed"
        api = self.accounts.for_pool(job.pool_id).batch
        task = api.get_or_none(f"reading task {task_id!r}", api.client.get_task, job.job_id, task_id)
        return task is None or text(task.state) == "completed"

    def _container(self, pool_id: str) -> str:
        record = pool_records.load(pool_id)
        return (record.engine.get("container") if record else None) or naming.pool_container(pool_id)

    def _require_pool(self, pool_id: str) -> PoolInfo:
        info = self.get_pool(pool_id)
        if info is None:
            raise NotFoundError(f"pool {pool_id!r} does not exist")
        return info


def _best_effort(note: Callable[[], object]) -> None:
    """A ledger record taken while reading: a storage hiccup must not fail ``pool show``."""
    try:
        note()
    except OrchError:
        pass
