"""Task inputs in blob storage: the job's workdir snapshot, uploaded once under its content hash
and handed to tasks as a read-only SAS URL that expires with the job.

The config dir is the usual workdir and holds ``credentials.yaml``: ``orchestrator.workdir``
leaves such files out of every snapshot, so no secret reaches storage or a node.
"""
from __future__ import annotations

from datetime import datetime

from orchestrator.backends.azure import naming
from orchestrator.backends.azure.blob_store import BlobStore

def upload_workdir(store: BlobStore, container: str, snapshot: tuple[str, bytes], expiry: datetime) -> str:
    """Upload the snapshot if storage lacks it; a read-only URL of it valid until ``expiry``."""
    digest, data = snapshot
    blob = naming.input_blob(digest)
    store.put(container, blob, data)
    return store.blob_read_url(container, blob, expiry)
