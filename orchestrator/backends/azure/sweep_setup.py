"""The cloud side of adaptive sweeps and budgets on Azure, as the submitting machine sets it up.

An adaptive sweep's Batch job, and a job with a budget or on a pool with ``max_spend``, is
created with a job manager task (``naming.SWEEP_MANAGER_ID``) that runs
``python -m orchestrator.backends.azure.sweep_manager`` on a pool node, so the controller and
the budget keeper (``budget_keeper``) need no terminal. It reaches Batch (at ``AZ_BATCH_ACCOUNT_URL``) with the pool's
user-assigned managed identity (``azure.identity``: the task is told its client or resource id
and asks the node's identity endpoint for a Batch token), or, where the pool says the account
still allows them (``azure.task_authentication_tokens``), with the job-scoped token Batch gives
a task that asks for one (``authenticationTokenSettings``; retired by Batch on 30 September
2024). Planning refuses a sweep that needs a controller on a pool with neither. The task does
not end the job when it exits (``killJobOnCompletion`` false): the job completes once sealed and
its trials are done.

The task is created with the job, before ``start_sweep`` knows the final spec, so it waits for
its payload: ``start_sweep`` uploads ``ManagerPayload`` as JSON to ``naming.sweep_spec_blob``,
and the task reads it through a read-only SAS URL (``ORCH_SWEEP_PAYLOAD_URL``) that expires with
the job. The payload carries the job spec, the controller settings and the task context (workdir
snapshot and outputs URLs), so trials the manager adds look exactly like those submitted here.

Nodes need orch installed (the pool's start task or image; on a container pool, the task image,
where the manager runs like every other task); the interpreter is ``python3`` unless the pool's
``env`` sets ``ORCH_PYTHON``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from azure.batch import models as m
from orchestrator.backends.azure import naming
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.spec import PoolIdentity
from orchestrator.backends.azure.task_model import TaskContext, environment
from orchestrator.spec.job import JobSpec
from orchestrator.sweep.controller import ControllerSettings

PAYLOAD_URL_ENV = "ORCH_SWEEP_PAYLOAD_URL"
BUDGET_PAYLOAD_URL_ENV = "ORCH_BUDGET_PAYLOAD_URL"
IDENTITY_CLIENT_ENV = "ORCH_BATCH_IDENTITY_CLIENT_ID"  # the pool identity the manager authenticates as
IDENTITY_RESOURCE_ENV = "ORCH_BATCH_IDENTITY_RESOURCE_ID"  # … when its client id is not given
STATE_FILE = "sweep-state.json"  # the manager's summary, in its working directory
MANAGER_COMMAND = ("/bin/sh -c 'exec \"${ORCH_PYTHON:-python3}\" -m orchestrator.backends.azure.sweep_manager'")
MANAGER_RETRIES = 3


def manager_task(payload_url: str | None, pool_env: dict[str, str], *, identity: PoolIdentity | None = None,
                 container: m.BatchTaskContainerSettings | None = None,
                 budget_url: str | None = None) -> m.BatchJobManagerTask:
    """The job manager task (see the module docstring): it runs the sweep controller when given
    its ``payload_url``, the budget keeper when given ``budget_url``, and authenticates as
    ``identity``, or with a job token when there is none. On a container pool ``container`` is the
    pool's task container settings: Batch requires container settings on every task of such a
    pool, the job manager's included."""
    env = dict(pool_env)
    if payload_url is not None:
        env[PAYLOAD_URL_ENV] = payload_url
    if budget_url is not None:
        env[BUDGET_PAYLOAD_URL_ENV] = budget_url
    if identity is not None:
        env.update({IDENTITY_CLIENT_ENV: identity.client_id} if identity.client_id
                   else {IDENTITY_RESOURCE_ENV: identity.resource_id})
    task = m.BatchJobManagerTask(
        id=naming.SWEEP_MANAGER_ID, display_name="orch job manager", command_line=MANAGER_COMMAND,
        environment_settings=environment(env), kill_job_on_completion=False, run_exclusive=False, required_slots=1,
        container_settings=container, constraints=m.BatchTaskConstraints(max_task_retry_count=MANAGER_RETRIES))
    if identity is None:
        task["authenticationTokenSettings"] = {"access": ["job"]}  # not modelled by azure-batch 15.1.0
    return task


@dataclass(frozen=True)
class ManagerPayload:
    """What the sweep manager needs: the job, controller settings and the trials' task context."""

    job: JobSpec
    settings: ControllerSettings
    context: TaskContext
    stopped_url: str | None  # a write+list SAS of the pool container, for stopped-task markers
    checkpoint_urls: Mapping[str, str] = field(default_factory=dict)  # trial id -> its checkpoint blob's SAS URL

    def to_json(self) -> bytes:
        context: dict[str, Any] = {f.name: getattr(self.context, f.name) for f in fields(TaskContext)}
        context["pool_env"] = dict(self.context.pool_env)
        context["container"] = self.context.container.as_dict() if self.context.container is not None else None
        context["input_files"] = [resource.as_dict() for resource in self.context.input_files]
        return json.dumps({"job": self.job.model_dump(mode="json"), "settings": asdict(self.settings),
                           "context": context, "stopped_url": self.stopped_url,
                           "checkpoint_urls": dict(self.checkpoint_urls)}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> ManagerPayload:
        raw: dict[str, Any] = json.loads(data)
        context = dict(raw["context"])
        container = context.pop("container", None)
        inputs = tuple(m.ResourceFile(resource) for resource in context.pop("input_files", []))
        return cls(job=JobSpec.model_validate(raw["job"]), settings=ControllerSettings(**raw["settings"]),
                   context=TaskContext(**context, container=m.BatchTaskContainerSettings(container)
                                       if container else None, input_files=inputs),
                   stopped_url=raw.get("stopped_url"), checkpoint_urls=dict(raw.get("checkpoint_urls") or {}))


def payload_url(store: BlobStore, container: str, job_id: str, expiry: datetime) -> str:
    """The read-only URL the manager task reads its payload from (valid before the upload)."""
    return store.blob_read_url(container, naming.sweep_spec_blob(job_id), expiry)


def upload_payload(store: BlobStore, container: str, payload: ManagerPayload) -> None:
    store.put(container, naming.sweep_spec_blob(payload.job.id), payload.to_json())


def stopped_markers(store: BlobStore, container: str, job_id: str) -> set[str]:
    """Ids of the job's tasks its sweep manager stopped."""
    prefix = naming.stopped_prefix(job_id)
    return {entry.name.removeprefix(prefix) for entry in store.list(container, prefix)}
