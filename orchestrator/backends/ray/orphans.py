"""Task processes a node agent started, recorded on the node so they can be stopped without it.

A task runs in its own session, so when its node's raylet or agent dies the process lives on.
Each agent keeps a record under its node root, ``processes/<agent pid>.log`` (folder 0700, file
0600): one JSON line per task process it starts (``["+", [pid, start time, null], job, task]``),
written before anything waits on the process, and one when it ends (``["-", pid, start time]``).
Each line is a single append, so a short task costs two small writes and no file creation. Once
the record passes ``COMPACT_BYTES`` the agent rewrites it with only the live entries (a new file
renamed over the old one: a reader sees one or the other, whole).

Whoever finds the node gone (the pool manager on the same machine, or ``pool delete``) kills what
is still recorded — only a process whose pid and start time match the record, so a reused pid is
never signalled. Records of the earlier layout (one ``<job>__<task>__<pid>.json`` file per
process) are honoured too.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from orchestrator.backends.ray import process_tree
from orchestrator.backends.ray.process_marks import ProcessMark

FOLDER = "processes"
COMPACT_BYTES = 1 << 20
_LINE_LIMIT = 64 * 1024  # longer lines are not ours (ids are short): skipped when read


class Recorder:
    """One agent's record of its task processes (see the module docstring). Thread-safe."""

    def __init__(self, root: Path, *, compact_bytes: int = COMPACT_BYTES) -> None:
        self.folder = Path(root) / FOLDER
        self.path = self.folder / f"{os.getpid()}.log"
        self.compact_bytes = compact_bytes
        # a record left by an earlier agent of the same pid (reused) keeps its live entries
        self.live: dict[tuple[int, float], bytes] = {key: line for key, (_, line) in _live(self.path).items()}
        self.lock = threading.Lock()
        self.handle: int | None = None
        self.size = 0

    def started(self, job_id: str, task_id: str, pid: int) -> ProcessMark | None:
        """Record that the agent started ``pid`` for a task; the mark to pass to ``ended``. None
        when the process is already gone (and reaped): there is nothing to stop later."""
        mark = ProcessMark.of_pid(pid)  # it may not have exec'd yet: no executable to check
        if mark is None:
            return None
        line = (json.dumps(["+", mark.dump(), job_id, task_id]) + "\n").encode()
        with self.lock:
            self._append(line)
            self.live[(mark.pid, mark.start_time)] = line
        return mark

    def ended(self, mark: ProcessMark | None) -> None:
        """Record that the marked process ended (it is not to be stopped any more)."""
        if mark is None:
            return
        with self.lock:
            if self.live.pop((mark.pid, mark.start_time), None) is None:
                return
            self._append((json.dumps(["-", mark.pid, mark.start_time]) + "\n").encode())
            if self.size >= self.compact_bytes:
                self._compact()

    def _append(self, line: bytes) -> None:
        if self.handle is None:
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.handle = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            self.size = os.fstat(self.handle).st_size
        os.write(self.handle, line)
        self.size += len(line)

    def _compact(self) -> None:
        """Rewrite the record with the live entries only (caller holds the lock)."""
        staging = self.path.with_suffix(".tmp")
        handle = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            data = b"".join(self.live.values())
            os.write(handle, data)
        finally:
            os.close(handle)
        os.replace(staging, self.path)
        if self.handle is not None:
            os.close(self.handle)
        self.handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self.size = len(data)


def recorded(root: str | Path) -> list[ProcessMark]:
    """The task processes recorded under ``root`` that have not ended, as far as the records say."""
    folder = Path(root) / FOLDER
    if not folder.is_dir():
        return []
    marks: dict[tuple[int, float], ProcessMark] = {}
    for path in sorted(folder.glob("*.log")):
        marks.update((key, mark) for key, (mark, _) in _live(path).items())
    for path in sorted(folder.glob("*.json")):  # the earlier layout: one file per live process
        try:
            entry = json.loads(path.read_bytes()[:_LINE_LIMIT])
        except (OSError, ValueError):
            continue
        mark = ProcessMark.load(entry.get("mark")) if isinstance(entry, dict) else None
        if mark is not None:
            marks[(mark.pid, mark.start_time)] = mark
    return list(marks.values())


def _live(path: Path) -> dict[tuple[int, float], tuple[ProcessMark, bytes]]:
    """The entries of one record whose process has not ended, each with its line."""
    live: dict[tuple[int, float], tuple[ProcessMark, bytes]] = {}
    for entry, line in _lines(path):
        if entry[:1] == ["+"] and len(entry) == 4:
            mark = ProcessMark.load(entry[1])
            if mark is not None:
                live[(mark.pid, mark.start_time)] = (mark, line)
        elif entry[:1] == ["-"] and len(entry) == 3:
            live.pop((entry[1], entry[2]), None)  # type: ignore[arg-type]
    return live


def _lines(path: Path) -> Iterator[tuple[list[object], bytes]]:
    """The record's entries with their lines, read line by line (a cut or foreign line is skipped)."""
    try:
        with open(path, "rb") as handle:
            while line := handle.readline(_LINE_LIMIT):
                if not line.endswith(b"\n"):
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, list):
                    yield entry, line
    except OSError:
        return


def kill_recorded(root: str | Path) -> int:
    """Kill every recorded task process under ``root`` that is still the recorded process (and
    its descendants). Returns how many were killed; the records are removed either way (call it
    once the node's agent is gone)."""
    killed = 0
    for mark in recorded(root):
        proc = mark.live()  # still that very process: pid and start time agree
        if proc is not None:
            process_tree.kill_tree(proc.pid, grace=2.0)
            killed += 1
    folder = Path(root) / FOLDER
    for path in list(folder.glob("*.log")) + list(folder.glob("*.json")) if folder.is_dir() else []:
        path.unlink(missing_ok=True)
    return killed
