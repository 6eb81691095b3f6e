"""Node and task files: listing, properties headers and (ranged) reads.

File names are relative to a root directory (the node root or the task directory) and use
forward slashes. Reads honour ``ocp-range: bytes=START-END`` (END inclusive, optional); as on
Batch, the answer is 200 with just those bytes (the SDK accepts nothing else).
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import BatchApiError
from .times import format_http_date, format_timestamp

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class FileEntry:
    """One file or directory under a root."""

    name: str
    path: Path
    is_directory: bool
    size: int
    created: datetime
    modified: datetime
    mode: str

    @classmethod
    def of(cls, root: Path, path: Path) -> FileEntry:
        info = path.stat()
        return cls(
            name=path.relative_to(root).as_posix(),
            path=path,
            is_directory=stat.S_ISDIR(info.st_mode),
            size=0 if stat.S_ISDIR(info.st_mode) else info.st_size,
            created=datetime.fromtimestamp(info.st_ctime, timezone.utc),
            modified=datetime.fromtimestamp(info.st_mtime, timezone.utc),
            mode=f"{stat.S_IMODE(info.st_mode):04o}",
        )

    def to_json(self, url: str) -> dict[str, Any]:
        """The ``BatchNodeFile`` JSON."""
        body: dict[str, Any] = {"name": self.name, "url": url, "isDirectory": self.is_directory}
        if not self.is_directory:
            body["properties"] = {
                "creationTime": format_timestamp(self.created),
                "lastModified": format_timestamp(self.modified),
                "contentLength": str(self.size),
                "contentType": "application/octet-stream",
                "fileMode": self.mode,
            }
        return body

    def headers(self, url: str) -> dict[str, str]:
        """File property headers of HEAD/GET responses."""
        return {
            "ocp-creation-time": format_http_date(self.created),
            "ocp-batch-file-isdirectory": "true" if self.is_directory else "false",
            "ocp-batch-file-url": url,
            "ocp-batch-file-mode": self.mode,
            "Last-Modified": format_http_date(self.modified),
            "Content-Type": "application/octet-stream",
        }


def file_url(base: str, name: str) -> str:
    """URL of ``name`` under a ``.../files`` collection URL."""
    return f"{base}/{quote(name, safe='')}"


def list_entries(root: Path, *, recursive: bool) -> list[FileEntry]:
    """Entries under ``root`` (top level only unless ``recursive``), sorted by name."""
    if not root.is_dir():
        return []
    if recursive:
        paths = [Path(folder) / name for folder, dirs, files in os.walk(root) for name in dirs + files]
    else:
        paths = list(root.iterdir())
    entries = []
    for path in paths:
        try:
            entries.append(FileEntry.of(root, path))
        except FileNotFoundError:
            continue
    return sorted(entries, key=lambda entry: entry.name)


def find_entry(root: Path, name: str) -> FileEntry:
    """The entry ``name`` under ``root``; 404 FileNotFound when missing or outside ``root``."""
    relative = name.lstrip("/")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.exists():
        raise BatchApiError("FileNotFound", values=[("FilePath", name)])
    return FileEntry.of(root.resolve(), path)


def read_range(entry: FileEntry, range_header: str | None) -> bytes:
    """The file's bytes, or the ``ocp-range`` slice; 416 InvalidRange when unsatisfiable."""
    if entry.is_directory:
        raise BatchApiError("OperationInvalidForCurrentState", f"'{entry.name}' is a directory.")
    data = entry.path.read_bytes()
    if not range_header:
        return data
    match = _RANGE.match(range_header.strip())
    if not match:
        raise BatchApiError("InvalidHeaderValue", values=[("HeaderName", "ocp-range"), ("HeaderValue", range_header)])
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else len(data) - 1
    if start >= len(data) or end < start:
        raise BatchApiError("InvalidRange", values=[("HeaderName", "ocp-range"), ("HeaderValue", range_header)])
    return data[start : end + 1]
