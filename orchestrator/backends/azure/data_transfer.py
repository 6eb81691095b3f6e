"""``orch data``: files between this machine and a pool's blob container.

Uploads skip files whose content the blob already has (SHA-256 kept in blob metadata), so
uploading a folder again sends only what changed. Downloads keep paths relative to the prefix
and refuse names that would leave the destination folder.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.backends.azure.blob_store import BlobEntry, BlobStore, walk_files
from orchestrator.errors import NotFoundError, SpecError


@dataclass
class TransferReport:
    sent: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def upload(store: BlobStore, container: str, source: Path, prefix: str) -> TransferReport:
    """Upload a file or a folder under ``prefix``; unchanged files are not sent again."""
    if not source.exists():
        raise NotFoundError(f"{source} does not exist")
    store.ensure_container(container)
    report = TransferReport()
    base = prefix.strip("/")
    for path, relative in walk_files(source):
        name = f"{base}/{relative}" if base else relative
        (report.sent if store.put(container, name, path.read_bytes()) else report.unchanged).append(name)
    return report


def download(store: BlobStore, container: str, prefix: str, destination: Path) -> list[Path]:
    """Download every blob under ``prefix`` into ``destination`` (a single blob keeps its name)."""
    entries = store.list(container, prefix)
    if not entries:
        raise NotFoundError(f"nothing under {container}/{prefix}", hint="see `orch data ls`")
    written = []
    root = destination.resolve()
    for entry in entries:
        target = (root / _relative(entry, prefix)).resolve()
        if not target.is_relative_to(root):
            raise SpecError(f"blob {entry.name!r} would be written outside {destination}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.get(container, entry.name))
        written.append(target)
    return written


def _relative(entry: BlobEntry, prefix: str) -> str:
    """The name below the prefix's folder: ``a/b`` + ``a/b/c.txt`` → ``b/c.txt``; ``a/b/`` → ``c.txt``."""
    cut = prefix[: prefix.rfind("/") + 1]
    return entry.name[len(cut):] if entry.name.startswith(cut) else entry.name
