"""Task processes a node agent started, recorded on the node so they can be stopped without it.

A task runs in its own session, so when its node's raylet or agent dies the process lives on.
The agent records each task process it starts (pid and start time) under its node root, and
removes the record when the process ends. Whoever finds the node gone (the pool manager on the
same machine, or ``pool delete``) kills what is still recorded — only a process whose pid and start
time match the record, so a reused pid is never signalled.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import psutil

from orchestrator.backends.ray import process_tree
from orchestrator.backends.ray.process_marks import ProcessMark

FOLDER = "processes"


def _record_name(root: Path, job_id: str, task_id: str, pid: int) -> str:
    """``<root>/processes/<job>__<task>__<pid>``, to which ``.json`` (a record) or ``.tmp`` is added."""
    return os.path.join(root, FOLDER, f"{job_id}__{task_id}__{pid}")


def record(root: Path, job_id: str, task_id: str, pid: int) -> Path:
    """Note that the agent started ``pid`` for a task (before anything waits on it)."""
    name = _record_name(root, job_id, task_id, pid)
    mark = ProcessMark.of_pid(pid)  # it may not have exec'd yet: no executable to check
    if mark is None:
        return Path(name + ".json")
    data = json.dumps({"mark": mark.dump(), "job": job_id, "task": task_id}).encode()
    try:
        _write(name + ".tmp", data)
    except FileNotFoundError:  # the first record of this node
        Path(root, FOLDER).mkdir(parents=True, exist_ok=True, mode=0o700)
        _write(name + ".tmp", data)
    os.replace(name + ".tmp", name + ".json")
    return Path(name + ".json")


def _write(path: str, data: bytes) -> None:
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(handle, data)
    finally:
        os.close(handle)


def forget(path: Path) -> None:
    path.unlink(missing_ok=True)


def matching(entry: dict[str, object]) -> psutil.Process | None:
    """The recorded process if it still runs as that very process (pid and start time agree)."""
    mark = ProcessMark.load(entry.get("mark"))
    return mark.live() if mark is not None else None


def kill_recorded(root: str | Path) -> int:
    """Kill every recorded task process under ``root`` that is still the recorded process (and
    its descendants). Returns how many were killed; records are removed either way."""
    folder = Path(root) / FOLDER
    killed = 0
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        proc = matching(entry)
        if proc is not None:
            process_tree.kill_tree(proc.pid, grace=2.0)
            killed += 1
        path.unlink(missing_ok=True)
    return killed
