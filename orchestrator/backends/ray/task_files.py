"""Where a task's files live on its node, and reading them at an offset."""
from __future__ import annotations

import glob
import os
import shutil
import time
from pathlib import Path

from orchestrator.model import FileChunk

LOG_NAMES = ("stdout", "stderr")
TRASH = "trash"  # deleted jobs' files, removed when the node is idle (``janitor``)


def task_root(node_root: Path, job_id: str, task_id: str) -> Path:
    """``<node_root>/jobs/<job>/<task>``: holds stdout.txt, stderr.txt, metrics.jsonl, wd/, outputs/."""
    return node_root / "jobs" / job_id / task_id


def make_task_dirs(root: Path, *, fresh: bool) -> Path:
    """Create ``root``, its ``wd/`` and its ``checkpoint/`` (parents as needed); returns ``wd``.
    ``fresh``: the task has no folder yet (its first attempt), so each is one ``mkdir``."""
    try:
        os.mkdir(root)
    except FileNotFoundError:
        os.makedirs(root.parent, exist_ok=True)
        os.mkdir(root)
    except FileExistsError:
        if fresh:
            raise
    wd = root / "wd"
    for folder in (wd, root / "checkpoint"):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if fresh:
                raise
    return wd


def open_logs(root: Path) -> tuple[int, int]:
    """File descriptors of a new attempt's ``stdout.txt`` and ``stderr.txt`` (created or emptied,
    0600), for the task process to inherit; the caller closes them once it started."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    out = os.open(root / "stdout.txt", flags, 0o600)
    try:
        return out, os.open(root / "stderr.txt", flags, 0o600)
    except OSError:
        os.close(out)
        raise


def resolve(node_root: Path, job_id: str, task_id: str, name: str) -> Path | None:
    """The file ``name`` of a task (``stdout``, ``stderr``, ``metrics`` or a path under wd/outputs)."""
    root = task_root(node_root, job_id, task_id)
    if name in LOG_NAMES:
        return root / f"{name}.txt"
    if name == "metrics":
        return root / "metrics.jsonl"
    candidate = (root / name).resolve()
    if root.resolve() not in candidate.parents:
        return None
    return candidate


def read_at(path: Path | None, offset: int, length: int) -> FileChunk | None:
    """Up to ``length`` bytes from ``offset`` and the file size; None if it does not exist (yet)."""
    if path is None:
        return None
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(min(offset, size))
            return FileChunk(data=handle.read(length) if offset <= size else b"", size=size)
    except (FileNotFoundError, IsADirectoryError):
        return None


def collect_outputs(root: Path, patterns: tuple[str, ...]) -> list[str]:
    """Copy files of wd/ matching ``patterns`` into outputs/; returns their relative paths."""
    wd, out = root / "wd", root / "outputs"
    kept: list[str] = []
    for pattern in patterns:
        for match in sorted(glob.glob(str(wd / pattern), recursive=True)):
            source = Path(match)
            if source.is_file():
                rel = source.relative_to(wd)
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, out / rel)
                kept.append(str(Path("outputs") / rel))
    return kept


def remove_task(root: Path) -> None:
    """Remove a task's folder (its logs, metrics, outputs, working folder; links are removed, never
    followed)."""
    shutil.rmtree(root, ignore_errors=True)


def retire_job(node_root: Path, job_id: str) -> Path | None:
    """Move ``<node_root>/jobs/<job>`` into ``<node_root>/trash`` at once (one rename: a job that
    takes the id next starts from nothing, and files still open keep working), for a ``Janitor``
    to remove when the node is idle. Returns where it went (None: the node had no files of it)."""
    source = node_root / "jobs" / job_id
    target = node_root / TRASH / f"{job_id}.{time.time_ns()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.rename(source, target)
    except FileNotFoundError:
        return None
    return target
