"""Task inputs in blob storage: the job's workdir snapshot and the spec's ``inputs:``, uploaded
once under their content hash and handed to tasks as read-only SAS URLs that expire with the job.

Local inputs go file by file to ``inputs/files/<sha256>`` in the pool's container; a file whose
hash is already there is not sent again (one listing per submission finds them). Each becomes a
resource file at ``<to>`` (a single file) or ``<to>/<path in the folder>``. A blob input becomes
one resource file over its container and prefix, with a read/list SAS of that container (Batch
puts each blob at ``<to>/<blob name>``). Credentials files are never uploaded.

The config dir is the usual workdir and holds ``credentials.yaml``: ``orchestrator.workdir``
leaves such files out of every snapshot, so no secret reaches storage or a node.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

from azure.batch import models as m
from orchestrator.backends.azure import naming
from orchestrator.backends.azure.blob_store import BlobStore, walk_files
from orchestrator.errors import NotFoundError
from orchestrator.model import JobInput, Snapshot
from orchestrator.workdir import EXCLUDED_FILES

FILES_PREFIX = f"{naming.INPUTS_PREFIX}files/"
HASH_CHUNK = 1024 * 1024


def upload_workdir(store: BlobStore, container: str, snapshot: Snapshot, expiry: datetime) -> str:
    """Upload the snapshot if storage lacks it; a read-only URL of it valid until ``expiry``."""
    blob = naming.input_blob(snapshot.digest)
    store.put(container, blob, snapshot.data)
    return store.blob_read_url(container, blob, expiry)


def input_resource_files(store: BlobStore, container: str, inputs: Sequence[JobInput],
                         expiry: datetime) -> list[m.ResourceFile]:
    """Upload the local inputs storage lacks; the resource files of every input (see the module docstring)."""
    present: set[str] | None = None
    files: list[m.ResourceFile] = []
    for spec in inputs:
        if spec.blob is not None:
            url = store.container_url(spec.blob_container, expiry, write=False)
            files.append(m.ResourceFile(storage_container_url=url, blob_prefix=spec.blob_prefix, file_path=spec.to))
            continue
        if present is None:
            present = {entry.name for entry in store.list(container, FILES_PREFIX)}
        for path, target in local_files(spec):
            blob = FILES_PREFIX + file_digest(path)
            if blob not in present:
                store.put(container, blob, path.read_bytes(), skip_same=False)
                present.add(blob)
            files.append(m.ResourceFile(http_url=store.blob_read_url(container, blob, expiry), file_path=target))
    return files


def local_files(spec: JobInput) -> Iterator[tuple[Path, str]]:
    """Each file of a local input and where it goes in the task dir."""
    assert spec.path is not None
    source = spec.path
    if not source.exists():
        raise NotFoundError(f"input {str(source)!r} does not exist", hint="paths in inputs: are relative to the config dir")
    target = spec.to.strip("/")
    if source.is_file():
        yield source, target
        return
    for path, relative in walk_files(source):
        if path.name not in EXCLUDED_FILES:
            yield path, f"{target}/{relative}"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
