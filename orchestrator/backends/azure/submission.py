"""Submitting to Azure Batch: a ``JobLaunch`` and its tasks become a Batch job and task
collections, and an adaptive sweep's controller gets its payload.

The job is created before its tasks (``noaction`` when all tasks complete) and sealed
(``terminatejob``) only after every task is in, so it never completes half-submitted. Its
``maxParallelTasks`` is set only where the pool says the account has that feature
(``azure.max_parallel_tasks``); elsewhere the sweep controller holds trials back. A
``controlled`` job is created with the sweep manager task (``sweep_setup``, in the pool's task
container on container pools), which waits for the payload ``start_sweep`` uploads once the tasks
known up front are in. A job with limits (``limits.budget`` of the job or of its sweeps, or its
pool's ``max_spend``) gets the manager task too, and ``submit`` uploads its budget payload
(``budgets``) before adding tasks. Every task shares one
``TaskContext``: the workdir snapshot, inputs and checkpoint helper (uploaded once, by content
hash), the outputs container URL and the pool's container settings; both calls derive it the
same way from what they are given, so nothing is carried between them. Each task also gets the
SAS URL of its own checkpoint blob (``checkpoints``); the controller's payload carries those of
the trials it will add.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

from azure.batch import models as m
from orchestrator.backends.azure import (
    budgets,
    checkpoints,
    job_ops,
    naming,
    pool_model,
    sweep_setup,
    task_model,
)
from orchestrator.backends.azure.accounts import Account
from orchestrator.backends.azure.inputs import input_resource_files, upload_workdir
from orchestrator.backends.azure.ledger_observe import prices_of
from orchestrator.backends.azure.retries import code_of
from orchestrator.backends.azure.task_submit import add_tasks
from orchestrator.errors import (
    ConflictError,
    InterruptedByUser,
    NotFoundError,
    UnsupportedError,
)
from orchestrator.model import JobLaunch, SubmitReport, TaskLaunch
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.controller import ControllerSettings

OUTPUT_MARGIN = 3600.0
MANAGER_POLL_SECONDS = 1.0


def submit(account: Account, pool: PoolSpec, container: str, job: JobLaunch,
           tasks: Iterable[TaskLaunch]) -> SubmitReport:
    """Create the job if new and add the tasks Batch does not have yet (see the module docstring)."""
    options = pool_model.azure_options(pool)
    limits = limits_of(job, pool)
    manager = (_manager_task(account, pool, container, job.id, sweep=job.controlled, budget=bool(limits))
               if job.controlled or limits else None)
    max_parallel = job.max_in_flight if options.caps_in_flight else None  # else the sweep controller holds back
    batch_job, created = job_ops.ensure(account.batch, job.id, job.pool_id, lifetime=options.job_lifetime,
                                        uses_dependencies=job.uses_dependencies, max_parallel=max_parallel,
                                        manager=manager, spec_digest=job.spec_digest, sweep=job.controlled,
                                        budget=bool(limits))
    if limits:
        _upload_budget(account, pool, container, job, limits, batch_job)
    if (not created and job.spec_digest and job_ops.spec_digest(batch_job) != job.spec_digest
            and job_ops.job_state(batch_job) == "active"):
        job_ops.record_spec_digest(account.batch, batch_job, job.spec_digest)
    ctx = task_context(account, pool, container, job, batch_job)
    present = set() if created else job_ops.existing_task_ids(account.batch, job.id)
    skipped = [0]
    expiry = _expiry(batch_job, pool)

    def missing() -> Iterable[Any]:
        for launch in tasks:
            if launch.id in present:
                skipped[0] += 1
                continue
            checkpoint = (checkpoints.task_url(account.store, container, job.id, launch.id, expiry)
                          if ctx.checkpoint_helper_url and account.store is not None else None)
            yield task_model.task_options(launch, ctx, naming.task_prefix(job.id, launch.id),
                                          task_files=task_files(account, launch, expiry), checkpoint_url=checkpoint)

    try:
        tally = add_tasks(account.batch, job.id, missing())
    except KeyboardInterrupt:
        raise InterruptedByUser(f"stopped submitting job {job.id!r}; the tasks already added stay",
                                hint="submit the same file again: tasks already in are skipped") from None
    if job.seal and not tally.failed:
        seal(account, job.id)
    return SubmitReport(job_id=job.id, submitted=tally.submitted, already_present=tally.already_present + skipped[0],
                        failed=dict(tally.failed))


def start_sweep(account: Account, pool: PoolSpec, container: str, job: JobLaunch, spec: JobSpec,
                settings: ControllerSettings) -> None:
    """Hand the job's sweep manager task its payload: the spec, settings and the trials' context."""
    batch_job = job_ops.get(account.batch, job.id)
    if batch_job is None:
        raise NotFoundError(f"job {job.id!r} does not exist", hint="run `orch sweep` with the spec again")
    if not job_ops.has_sweep_manager(batch_job):
        raise ConflictError(f"job {job.id!r} exists without a sweep controller task",
                            hint="`orch jobs delete` it and run `orch sweep` again")
    store = account.require_store(f"the sweep controller of job {job.id!r}")
    ctx = task_context(account, pool, container, job, batch_job)
    expiry = _expiry(batch_job, pool)
    urls = checkpoints.controller_urls(store, container, spec, caps_in_flight=settings.caps_in_flight, expiry=expiry)
    payload = sweep_setup.ManagerPayload(
        job=spec, settings=replace(settings, poll_seconds=MANAGER_POLL_SECONDS), context=ctx,
        stopped_url=store.container_url(container, expiry, write=True, listing=True), checkpoint_urls=urls)
    sweep_setup.upload_payload(store, container, payload)


def task_context(account: Account, pool: PoolSpec, container: str, job: JobLaunch,
                 batch_job: Any) -> task_model.TaskContext:
    """What every task of the job shares; uploads the snapshot and inputs storage lacks."""
    options = pool_model.azure_options(pool)
    expiry = _expiry(batch_job, pool)
    workdir_url = outputs_url = helper_url = None
    input_files: list[Any] = []
    if job.workdir is not None or job.inputs or account.store is not None:
        store = account.require_store(f"job {job.id!r} (its workdir snapshot and inputs)")
        store.ensure_container(container)
        outputs_url = store.container_url(container, expiry, write=True)
        if job.workdir is not None:
            workdir_url = upload_workdir(store, container, job.workdir, expiry)
        input_files = input_resource_files(store, container, job.inputs, expiry)
        helper_url = checkpoints.helper_url(store, container, expiry)
    return task_model.TaskContext(
        pool_id=pool.id, job_id=job.id, vm_size=options.vm_size, cpus_per_node=pool.cpus_per_node,
        gpus_per_node=pool.gpus_per_node, slots_per_node=pool.slots_per_node, pool_env=dict(pool.env),
        workdir_url=workdir_url, outputs_url=outputs_url, output_condition=options.output_upload,
        container=pool_model.task_container_settings(pool, account.credentials), input_files=tuple(input_files),
        checkpoint_helper_url=helper_url)


def task_files(account: Account, launch: TaskLaunch, expiry: datetime) -> list[m.ResourceFile]:
    """The resource files of a task's own blob inputs, readable until ``expiry``."""
    if not launch.inputs:
        return []
    store = account.require_store(f"task {launch.id!r}'s blob inputs")
    return [m.ResourceFile(http_url=store.blob_read_url(item.blob_container, item.blob_prefix, expiry),
                           file_path=item.to) for item in launch.inputs if item.blob is not None]


def seal(account: Account, job_id: str) -> None:
    """Let the job complete once its tasks have (a job that completed already is fine)."""
    try:
        job_ops.seal(account.batch, job_id)
    except ConflictError as exc:
        if code_of(exc) not in ("JobCompleted", "JobBeingTerminated"):
            raise


def limits_of(job: JobLaunch, pool: PoolSpec) -> budgets.Limits:
    """The USD limits a job's manager keeps: its own, its sweeps', its pool's ``max_spend``."""
    return budgets.Limits(job=job.budget, sweeps=dict(job.sweep_budgets), pool=pool.max_spend)


def manager_problem(job_id: str, pool: PoolSpec, *, what: str) -> UnsupportedError | None:
    """Why ``what`` (a sweep controller, budgets) cannot run in a manager task on ``pool``, or None."""
    problem = pool_model.azure_options(pool).controller_problem()
    if problem is None:
        return None
    text = problem[0].replace("this sweep needs a sweep controller", f"{what} needs a job manager task")
    return UnsupportedError(f"job {job_id!r} on pool {pool.id!r}: {text}", hint=problem[1])


def _manager_task(account: Account, pool: PoolSpec, container: str, job_id: str, *, sweep: bool,
                  budget: bool) -> Any:
    options = pool_model.azure_options(pool)
    refused = manager_problem(job_id, pool, what="this sweep" if sweep else "keeping this job's budget")
    if refused is not None:  # planning refuses sweeps first; a direct caller gets the same answer
        raise refused
    store = account.require_store(f"the job manager of job {job_id!r}")
    store.ensure_container(container)
    expiry = datetime.now(timezone.utc) + timedelta(seconds=options.job_lifetime + OUTPUT_MARGIN)
    sweep_url = sweep_setup.payload_url(store, container, job_id, expiry) if sweep else None
    budget_url = store.blob_read_url(container, naming.budget_payload_blob(job_id), expiry) if budget else None
    return sweep_setup.manager_task(sweep_url, dict(pool.env), identity=options.identity, budget_url=budget_url,
                                    container=pool_model.task_container_settings(pool, account.credentials))


def _upload_budget(account: Account, pool: PoolSpec, container: str, job: JobLaunch, limits: budgets.Limits,
                   batch_job: Any) -> None:
    store = account.require_store(f"the budgets of job {job.id!r}")
    options = pool_model.azure_options(pool)
    payload = budgets.BudgetPayload(job_id=job.id, pool_id=pool.id, limits=limits,
                                    prices=prices_of(pool, options.vm_size), slots_per_node=pool.slots_per_node,
                                    ledger_url=store.container_manager_url(container, _expiry(batch_job, pool)),
                                    poll_seconds=MANAGER_POLL_SECONDS)
    store.put(container, naming.budget_payload_blob(job.id), payload.to_json())


def _expiry(batch_job: Any, pool: PoolSpec) -> datetime:
    """When the job's SAS URLs expire: its lifetime after creation, plus time to upload outputs."""
    lifetime = pool_model.azure_options(pool).job_lifetime
    expiry: datetime = batch_job.creation_time + timedelta(seconds=lifetime + OUTPUT_MARGIN)
    return expiry
