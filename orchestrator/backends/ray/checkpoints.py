"""Checkpoints that follow a task from attempt to attempt, on whatever node it lands.

Every task gets ``ORCH_CHECKPOINT_DIR``, a folder on its node. Before an attempt starts, the
task's last saved checkpoint is restored into it (an empty folder if there is none). While the
attempt runs, the folder is watched (from ``POLL_SECONDS`` after its start on, so a task that ends
sooner costs no watcher thread): once what it holds has changed and no file in it was
modified for ``QUIET_SECONDS`` (a write completed) — or it has kept changing for
``MAX_UNSAVED`` seconds — it is zipped and saved with the pool manager, which keeps it on the
head node's disk, whole or not at all; and once more when the attempt ends. Keyed by job and
task (a sweep's trial is a task). Scripts should write their files atomically (a temporary name,
then rename), as ``jobs/train_digits.py`` does, so a half-written file is never saved.
"""
from __future__ import annotations

import io
import os
import shutil
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from orchestrator.backends.ray.messages import TaskRun

POLL_SECONDS = 0.25
QUIET_SECONDS = 0.25
MAX_UNSAVED = 5.0
CALL_TIMEOUT = 120.0
Signature = tuple[tuple[str, int, int], ...]


class Saver:
    """Restores and saves one attempt's checkpoint folder (see the module docstring)."""

    def __init__(self, folder: Path, run: TaskRun, manager: Callable[[], Any]) -> None:
        self.folder, self.run, self.manager = folder, run, manager
        self.saved: Signature = ()
        self.dirty_since: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def restore(self, *, fresh: bool = False) -> bool:
        """Put the last saved checkpoint in the folder (emptied first; ``fresh``: it was just made,
        empty). True if there was one. An attempt sent with ``checkpoint`` false (the manager held
        none) starts empty, asking no one."""
        if not fresh:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True, exist_ok=True)
        if not self.run.checkpoint:
            return False
        data = ray.get(self.manager().checkpoint.remote(self.run.job_id, self.run.task_id), timeout=CALL_TIMEOUT)
        if not data:
            return False
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.extractall(self.folder)
        self.saved = signature(self.folder)
        return True

    def start(self) -> None:
        """Watch the folder from now on: a check at once, then every ``POLL_SECONDS``."""
        self._thread = threading.Thread(target=self._watch, name=f"checkpoint-{self.run.task_id}", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        """Stop watching and save what the attempt left, if it changed."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        elif not self.saved and _empty(self.folder):  # the common short task: nothing to save
            return
        self._save_if_changed(settled=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._save_if_changed(settled=False)
            self._stop.wait(POLL_SECONDS)

    def _save_if_changed(self, *, settled: bool = True) -> None:
        """Save when the folder differs from what was saved and is quiet (see the module
        docstring); ``settled``: the attempt ended, so save whatever changed."""
        try:
            current = signature(self.folder)
        except OSError:
            return
        if current == self.saved:
            self.dirty_since = None
            return
        now = time.monotonic()
        self.dirty_since = self.dirty_since or now
        quiet = not current or time.time_ns() - max(mtime for _, _, mtime in current) >= QUIET_SECONDS * 1e9
        if current and (settled or quiet or now - self.dirty_since >= MAX_UNSAVED):
            try:
                ray.get(self.manager().save_checkpoint.remote(self.run.job_id, self.run.task_id, pack(self.folder)),
                        timeout=CALL_TIMEOUT)
                self.saved, self.dirty_since = current, None
            except Exception:  # the manager may be restarting: the next poll saves again
                pass


def _empty(folder: Path) -> bool:
    """Whether the folder holds nothing (or is gone)."""
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return True


def signature(folder: Path) -> Signature:
    """What the folder holds, cheaply: (relative path, size, mtime) of every file, sorted."""
    out = []
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory) / name
            stat = path.stat()
            out.append((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(out))


def pack(folder: Path) -> bytes:
    """The folder as a zip (files read in chunks; the archive is built in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for relative, _, _ in signature(folder):
            archive.write(folder / relative, relative)
    return buffer.getvalue()
