"""A pool's blob container as orch's ``DataStore`` (``orch data``, ``orch down --storage``).

Uploads skip files whose content the blob already has (SHA-256 kept in blob metadata), so
uploading a folder again sends only what changed. Downloads keep paths relative to the prefix
and refuse names that would leave the destination folder.
"""
from __future__ import annotations

from pathlib import Path

from orchestrator.backends.azure.blob_store import BlobStore, walk_files
from orchestrator.errors import NotFoundError, SpecError
from orchestrator.model import StoredFile, TransferReport


class BlobDataStore:
    """One pool's blob container (``location``) in one storage account."""

    def __init__(self, store: BlobStore, container: str) -> None:
        self.store, self.location = store, container

    def list(self, prefix: str = "") -> list[StoredFile]:
        return self.store.list(self.location, prefix)

    def upload(self, source: Path, prefix: str) -> TransferReport:
        """Upload a file or a folder under ``prefix``; unchanged files are not sent again."""
        if not source.exists():
            raise NotFoundError(f"{source} does not exist")
        self.store.ensure_container(self.location)
        sent: list[str] = []
        unchanged: list[str] = []
        base = prefix.strip("/")
        for path, relative in walk_files(source):
            name = f"{base}/{relative}" if base else relative
            (sent if self.store.put(self.location, name, path.read_bytes()) else unchanged).append(name)
        return TransferReport(sent=tuple(sent), unchanged=tuple(unchanged))

    def download(self, prefix: str, destination: Path) -> list[Path]:
        """Download every blob under ``prefix`` into ``destination`` (a single blob keeps its name)."""
        entries = self.list(prefix)
        if not entries:
            raise NotFoundError(f"nothing under {self.location}/{prefix}", hint="see `orch data ls`")
        written = []
        root = destination.resolve()
        for entry in entries:
            target = (root / _relative(entry, prefix)).resolve()
            if not target.is_relative_to(root):
                raise SpecError(f"blob {entry.name!r} would be written outside {destination}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.store.get(self.location, entry.name))
            written.append(target)
        return written


def _relative(entry: StoredFile, prefix: str) -> str:
    """The name below the prefix's folder: ``a/b`` + ``a/b/c.txt`` → ``b/c.txt``; ``a/b/`` → ``c.txt``."""
    cut = prefix[: prefix.rfind("/") + 1]
    return entry.name[len(cut):] if entry.name.startswith(cut) else entry.name
