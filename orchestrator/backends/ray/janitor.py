"""Removes deleted jobs' files on a node when it is idle.

``orch jobs delete`` moves a job's folder on each node into ``<node_root>/trash`` at once
(``task_files.retire_job``); removing thousands of task folders costs seconds of disk and CPU,
so a janitor thread does it only while the node runs and queues nothing, at the lowest CPU
priority, one folder at a time, looking again every second while the node is busy.
"""
from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from orchestrator.backends.ray.task_files import TRASH

IDLE_CHECK_SECONDS = 1.0


class Janitor:
    """Empties ``<node_root>/trash`` while ``idle()`` holds (checked between folders): ``sweep``
    once, or ``start`` a thread that sweeps when woken and every ``IDLE_CHECK_SECONDS``."""

    def __init__(self, node_root: Path, idle: Callable[[], bool]) -> None:
        self.trash, self.idle = node_root / TRASH, idle
        self.wake = threading.Event()

    def start(self) -> Janitor:
        threading.Thread(target=self._loop, name="janitor", daemon=True).start()
        return self

    def _loop(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only (Linux)
        except (AttributeError, OSError):
            pass
        self.wake.set()  # trash left by an earlier agent of this node, too
        while True:
            self.wake.wait(IDLE_CHECK_SECONDS)
            self.wake.clear()
            self.sweep()

    def sweep(self) -> int:
        """Remove trash folders one at a time while the node is idle. Returns how many went."""
        try:
            entries = sorted(self.trash.iterdir())
        except OSError:
            return 0
        removed = 0
        for entry in entries:
            if not self.idle():
                break  # the next look is at most IDLE_CHECK_SECONDS away
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
        return removed
