"""Reading a task's files at an offset: from its node through Batch, else from blob storage.

One poll of a file that did not grow costs one request (the file's properties); new bytes
cost one ranged download more. A file Batch cannot serve (not written yet, task not started,
node gone) is read from the copy uploaded when the task ended, but only for tasks that have
ended, so waiting for a task to start costs nothing extra. Chunks read from the node carry the
file's creation time as their ``origin``: a requeued attempt writes a new file, which a follower
then reads from the start.
"""
from __future__ import annotations

from typing import Any, Callable

from orchestrator.backends.azure import naming
from orchestrator.backends.azure.batch_client import BatchApi
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.retries import code_of
from orchestrator.errors import ConflictError, NotFoundError, SpecError
from orchestrator.model import FileChunk

READ_LIMIT = 4 * 1024 * 1024


def read_task_file(api: BatchApi, job_id: str, task_id: str, name: str, offset: int, *,
                   store: BlobStore | None, container: str, task_ended: Callable[[], bool]) -> FileChunk | None:
    """Bytes of ``name`` from ``offset`` and the file's size; None while it does not exist."""
    batch_name, blob_name = naming.task_file_path(name)
    chunk = _from_node(api, job_id, task_id, batch_name, offset)
    if chunk is not None or store is None or not task_ended():
        return chunk
    return store.read_at(container, naming.task_prefix(job_id, task_id) + blob_name, offset)


def _from_node(api: BatchApi, job_id: str, task_id: str, path: str, offset: int) -> FileChunk | None:
    where = f"reading {path} of task {job_id}/{task_id}"
    try:
        props = api.call(where, api.client.get_task_file_properties, job_id, task_id, path)
        size, origin = int(props.content_length), _origin(props)
        if offset >= size:
            return FileChunk(b"", size, origin)
        end = min(size, offset + READ_LIMIT) - 1
        data = api.download(where, api.client.download_task_file, job_id, task_id, path,
                            ocp_range=f"bytes={offset}-{end}")
    except (NotFoundError, ConflictError):
        return None
    except SpecError as exc:
        if code_of(exc) == "InvalidRange":  # it shrank between the two requests: a retried task
            return FileChunk(b"", 0)
        raise
    return FileChunk(data, size, origin)


def _origin(props: Any) -> str | None:
    """Which file this is: its creation time (a requeued or retried attempt's file is a new one)."""
    created = getattr(props, "creation_time", None)
    return str(created) if created is not None else None
