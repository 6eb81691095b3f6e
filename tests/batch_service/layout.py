"""A compute node on disk: its directories, the environment Batch gives its processes, and
reading its files.

Node root ``<root>/nodes/<node-id>/`` holds ``startup/`` (start task: ``wd/``, ``stdout.txt``,
``stderr.txt``), ``shared/`` and ``workitems/<job>/job-1/<task>/`` (``wd/``, ``stdout.txt``,
``stderr.txt``), as on a Linux Batch node under ``/mnt/batch/tasks``. File names are relative
to a root (the task directory or the node root) with forward slashes. Reads honour
``ocp-range: bytes=START-END`` (END inclusive, optional); as on Batch, the answer is 200 with
just those bytes (the SDK accepts nothing else).
"""
from __future__ import annotations

import os
import re
import stat
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import BatchApiError
from .timekeeping import format_http_date

# Where a multi-instance primary listens, as in AZ_BATCH_MASTER_NODE on Batch.
MASTER_NODE_PORT = 6000


@dataclass(frozen=True)
class NodeDirs:
    """Directory paths of one node."""

    root: Path

    @property
    def startup(self) -> Path:
        return self.root / "startup"

    @property
    def shared(self) -> Path:
        return self.root / "shared"

    def task_dir(self, job_id: str, task_id: str) -> Path:
        return self.root / "workitems" / job_id / "job-1" / task_id

    def relative(self, path: Path) -> str:
        """``path`` relative to the node root, with forward slashes."""
        return path.relative_to(self.root).as_posix()

    def create(self) -> None:
        for directory in (self.startup / "wd", self.shared, self.root / "workitems"):
            directory.mkdir(parents=True, exist_ok=True)


class CreationTimes:
    """When files were created, as ``ocp-creation-time`` reports it (Linux keeps no birth time).

    Files the service creates (a task's ``stdout.txt``/``stderr.txt``) are recorded when created;
    any other file is dated when first seen. Keyed by path and inode, so a file created anew at
    the same path (a requeued task on another node, or after a preemption) gets a new time.
    """

    _lock = threading.Lock()
    _times: dict[tuple[str, int], datetime] = {}

    @classmethod
    def record(cls, path: Path) -> None:
        with cls._lock:
            cls._times[(str(path), path.stat().st_ino)] = datetime.now(timezone.utc)

    @classmethod
    def of(cls, path: Path, info: os.stat_result) -> datetime:
        key = (str(path), info.st_ino)
        with cls._lock:
            if key not in cls._times:
                cls._times[key] = datetime.fromtimestamp(min(info.st_ctime, info.st_mtime), timezone.utc)
            return cls._times[key]


def prepare_task_dir(task_dir: Path) -> Path:
    """Create the task directory with its ``wd/``, ``stdout.txt`` and ``stderr.txt``; returns ``wd``."""
    working_dir = task_dir / "wd"
    working_dir.mkdir(parents=True, exist_ok=True)
    for name in ("stdout.txt", "stderr.txt"):
        path = task_dir / name
        if not path.exists():
            path.touch()
            CreationTimes.record(path)
    return working_dir


@dataclass(frozen=True)
class NodeIdentity:
    """What a process needs to know about the node it runs on."""

    pool_id: str
    node_id: str
    root_dir: Path
    ip_address: str
    is_dedicated: bool


def node_environment(account: str, account_url: str, node: NodeIdentity, task_dir: Path) -> dict[str, str]:
    """The host environment plus the ``AZ_BATCH_*`` variables every process on ``node`` gets, and
    where its managed identities' tokens come from (``identity``)."""
    dirs = NodeDirs(node.root_dir)
    env = dict(os.environ)
    env["AZURE_POD_IDENTITY_AUTHORITY_HOST"] = (  # the node's identity endpoint (``identity``), not 169.254.169.254
        f"{account_url}/nodes/{quote(node.pool_id, safe='')}/{quote(node.node_id, safe='')}")
    env.update(AZ_BATCH_ACCOUNT_NAME=account, AZ_BATCH_ACCOUNT_URL=account_url, AZ_BATCH_POOL_ID=node.pool_id,
               AZ_BATCH_NODE_ID=node.node_id, AZ_BATCH_NODE_IS_DEDICATED="true" if node.is_dedicated else "false",
               AZ_BATCH_NODE_ROOT_DIR=str(dirs.root), AZ_BATCH_NODE_SHARED_DIR=str(dirs.shared),
               AZ_BATCH_NODE_STARTUP_DIR=str(dirs.startup), AZ_BATCH_TASK_DIR=str(task_dir),
               AZ_BATCH_TASK_WORKING_DIR=str(task_dir / "wd"), AZ_BATCH_TASK_USER="_azbatch")
    return env


def apply_settings(env: dict[str, str], settings: list[dict[str, Any]] | None) -> dict[str, str]:
    """Overlay Batch ``environmentSettings`` (``[{name, value}]``) on ``env``."""
    for setting in settings or []:
        env[str(setting["name"])] = str(setting.get("value") or "")
    return env


def multi_instance_environment(ip_addresses: list[str], is_primary: bool, task_dir: Path) -> dict[str, str]:
    """Variables of one multi-instance instance: host lists, master node, shared task dir."""
    return {
        "AZ_BATCH_HOST_LIST": ",".join(ip_addresses),
        "AZ_BATCH_NODE_LIST": ";".join(ip_addresses),
        "AZ_BATCH_MASTER_NODE": f"{ip_addresses[0]}:{MASTER_NODE_PORT}",
        "AZ_BATCH_IS_CURRENT_NODE_MASTER": "true" if is_primary else "false",
        "AZ_BATCH_TASK_SHARED_DIR": str(task_dir),
    }


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass(frozen=True)
class FileEntry:
    """One existing file or directory under a root."""

    name: str
    path: Path
    is_directory: bool
    size: int
    created: datetime
    modified: datetime
    mode: str

    def headers(self, files_url: str) -> dict[str, str]:
        """The file property headers of HEAD and GET responses (``files_url``: the ``.../files`` URL)."""
        return {
            "ocp-creation-time": format_http_date(self.created),
            "ocp-batch-file-isdirectory": "true" if self.is_directory else "false",
            "ocp-batch-file-url": f"{files_url}/{quote(self.name, safe='')}",
            "ocp-batch-file-mode": self.mode,
            "Last-Modified": format_http_date(self.modified),
            "Content-Type": "application/octet-stream",
        }


def find_entry(root: Path, name: str) -> FileEntry:
    """The entry ``name`` under ``root``; 404 FileNotFound when missing or outside ``root``."""
    root = root.resolve()
    path = (root / name.lstrip("/")).resolve()
    try:
        if not path.is_relative_to(root):
            raise FileNotFoundError(name)
        info = path.stat()
    except FileNotFoundError:
        raise BatchApiError("FileNotFound", values=[("FilePath", name)]) from None
    is_directory = stat.S_ISDIR(info.st_mode)
    return FileEntry(name=path.relative_to(root).as_posix(), path=path, is_directory=is_directory,
                     size=0 if is_directory else info.st_size,
                     created=CreationTimes.of(path, info),
                     modified=datetime.fromtimestamp(info.st_mtime, timezone.utc),
                     mode=f"{stat.S_IMODE(info.st_mode):04o}")


def read_range(entry: FileEntry, range_header: str | None) -> bytes:
    """The file's bytes, or the ``ocp-range`` slice; 400 for a malformed range, 416 InvalidRange
    when unsatisfiable, 409 for a directory."""
    if entry.is_directory:
        raise BatchApiError("OperationInvalidForCurrentState", f"'{entry.name}' is a directory.")
    data = entry.path.read_bytes()
    if not range_header:
        return data
    match = _RANGE.match(range_header.strip())
    values = [("HeaderName", "ocp-range"), ("HeaderValue", range_header)]
    if not match:
        raise BatchApiError("InvalidHeaderValue", values=values)
    start = int(match.group(1))
    end = int(match.group(2)) if match.group(2) else len(data) - 1
    if start >= len(data) or end < start:
        raise BatchApiError("InvalidRange", values=values)
    return data[start : end + 1]
