"""``SweepCluster`` over Batch, for the sweep manager task (see ``sweep_setup``).

Every call goes to the Batch account with the job's token, and only to the job: list its tasks
(the manager itself left out), add trials as task collections (ids already present are kept),
read ``metrics.jsonl`` from the trials' nodes by byte range, terminate trials it stops, and seal
the job. Trials it adds get the checkpoint URLs minted for them up front (``checkpoints``). Stopped trials are recorded before they are terminated, as empty blobs
``stopped/<job>/<task>`` in the pool container, so every client reports them ``stopped``.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from orchestrator.backends.azure import job_ops, naming, task_model
from orchestrator.backends.azure.batch_client import BatchApi
from orchestrator.backends.azure.retries import code_of
from orchestrator.backends.azure.task_files import read_task_file
from orchestrator.backends.azure.task_model import TaskContext
from orchestrator.backends.azure.task_submit import add_tasks
from orchestrator.errors import BackendError, ConflictError, NotFoundError
from orchestrator.model import FileChunk, JobInfo, TaskInfo, TaskLaunch

SWEEP_TASK_FIELDS = [*job_ops.TASK_FIELDS, "environmentSettings"]


class StoppedMarkers:
    """The stopped-task markers of one job, through a container SAS URL that can list and write."""

    def __init__(self, container_url: str | None, job_id: str) -> None:
        self.job_id = job_id
        self.known: set[str] = set()
        self._client: Any = None
        if container_url is not None:
            from azure.storage.blob import ContainerClient

            self._client = ContainerClient.from_container_url(container_url)
            prefix = naming.stopped_prefix(job_id)  # a restarted manager knows what it stopped before
            self.known = {blob.name.removeprefix(prefix) for blob in self._client.list_blobs(name_starts_with=prefix)}

    def add(self, task_ids: list[str]) -> None:
        for task_id in task_ids:
            if self._client is not None and task_id not in self.known:
                self._client.upload_blob(naming.stopped_prefix(self.job_id) + task_id, b"", overwrite=True)
            self.known.add(task_id)


class BatchSweepCluster:
    """``SweepCluster`` for one Batch job (see the module docstring)."""

    def __init__(self, api: BatchApi, context: TaskContext, markers: StoppedMarkers,
                 checkpoint_urls: Mapping[str, str] | None = None) -> None:
        self.api, self.context, self.markers = api, context, markers
        self.checkpoint_urls = dict(checkpoint_urls or {})
        self.job_id = context.job_id

    def job(self) -> JobInfo | None:
        job = job_ops.get(self.api, self.job_id)
        return job_ops.job_info(job, []) if job is not None else None

    def tasks(self) -> list[TaskInfo]:
        job = job_ops.get(self.api, self.job_id)
        if job is None:
            return []
        raw = self.api.listed(f"listing tasks of {self.job_id!r}", self.api.client.list_tasks, self.job_id,
                              select=SWEEP_TASK_FIELDS)
        trials = [task for task in raw if task.id != naming.SWEEP_MANAGER_ID]
        infos = job_ops.task_infos(trials, self.job_id, job_cancelled=job_ops.cancelled(job),
                                   stopped=self.markers.known)
        return [_with_params(info, task) for info, task in zip(infos, trials)]

    def submit(self, launches: list[TaskLaunch]) -> None:
        options = (task_model.task_options(launch, self.context, naming.task_prefix(self.job_id, launch.id),
                                           checkpoint_url=self.checkpoint_urls.get(launch.id))
                   for launch in launches)
        tally = add_tasks(self.api, self.job_id, options)
        if tally.failed:
            raise BackendError(f"Batch refused trials of {self.job_id!r}: {dict(tally.failed)}")

    def read_metrics(self, task_id: str, offset: int) -> FileChunk | None:
        return read_task_file(self.api, self.job_id, task_id, "metrics", offset, store=None, container="",
                              task_ended=lambda: True)

    def stop(self, task_ids: list[str]) -> None:
        self.markers.add(task_ids)
        for task_id in task_ids:
            try:
                self.api.call(f"stopping task {task_id!r}", self.api.client.terminate_task, self.job_id, task_id)
            except (ConflictError, NotFoundError):
                continue  # already ended, or gone

    def seal(self) -> None:
        try:
            job_ops.seal(self.api, self.job_id)
        except ConflictError as exc:
            if code_of(exc) not in ("JobCompleted", "JobBeingTerminated"):
                raise


def _with_params(info: TaskInfo, task: Any) -> TaskInfo:
    """``info`` with the trial parameters the task carries (``task_model.PARAMS_ENV``)."""
    raw = next((s.value for s in task.environment_settings or [] if s.name == task_model.PARAMS_ENV), None)
    if not raw:
        return info
    return replace(info, params=json.loads(raw))
