"""Checkpoints that follow a task on Azure: where they live and what each task is given.

Every task gets ``ORCH_CHECKPOINT_DIR``. Where the job has storage, the task's checkpoint is one
blob in the pool's container, ``checkpoints/<job>/<task>/checkpoint.zip`` (a sweep's trials are
tasks, so each trial has its own), restored before each attempt and saved while it runs by the
node-side helper ``node_checkpoint`` (stdlib only: nodes need Python 3, not orch). The helper is
uploaded once under its content hash (``inputs/<sha256>.py``) and reaches tasks as a resource
file with a read-only URL; each task gets a SAS URL of its own checkpoint blob only (read,
create, write), in its environment, expiring with the job. The trials an adaptive sweep's
controller adds later get theirs the same way, minted up front into its payload
(``controller_urls``), since the controller holds no storage key.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from orchestrator.backends.azure import naming, node_checkpoint
from orchestrator.backends.azure.blob_store import BlobStore, sha256_of
from orchestrator.spec.job import JobSpec
from orchestrator.sweep import expand
from orchestrator.sweep.adaptive import needs_controller
from orchestrator.sweep.trial import trial_task_id

MINTED_TRIALS = 10_000
"""At most this many trials of a controller-driven sweep get checkpoint URLs up front (the rest
run with an unsaved ``ORCH_CHECKPOINT_DIR``)."""


def helper_source() -> bytes:
    """The node-side helper, as uploaded."""
    return Path(node_checkpoint.__file__).read_bytes()


def helper_url(store: BlobStore, container: str, expiry: datetime) -> str:
    """Upload the helper if storage lacks it; a read-only URL of it valid until ``expiry``."""
    source = helper_source()
    blob = naming.input_blob(sha256_of(source), ".py")
    store.put(container, blob, source)
    return store.blob_read_url(container, blob, expiry)


def task_url(store: BlobStore, container: str, job_id: str, task_id: str, expiry: datetime) -> str:
    """The SAS URL of one task's checkpoint blob (read, create, write until ``expiry``)."""
    return store.blob_write_url(container, naming.checkpoint_blob(job_id, task_id), expiry)


def controller_urls(store: BlobStore, container: str, job: JobSpec, *, caps_in_flight: bool,
                    expiry: datetime) -> dict[str, str]:
    """Checkpoint URLs of every trial a sweep controller may add to ``job`` (trial id -> URL)."""
    urls: dict[str, str] = {}
    for task_id, task in zip(job.task_ids(), job.tasks):
        if not task.is_sweep() or not needs_controller(task, caps_in_flight=caps_in_flight):
            continue
        for index in range(expand.count(task, limit=MINTED_TRIALS) or 0):
            trial_id = trial_task_id(task_id, index)
            urls[trial_id] = task_url(store, container, job.id, trial_id, expiry)
    return urls


def forget(store: BlobStore, container: str, job_id: str) -> int:
    """Delete a job's checkpoints (a job submitted again under its id starts afresh)."""
    return store.delete_prefix(container, naming.checkpoint_prefix(job_id))
