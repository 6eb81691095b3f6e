"""Follow a job's task output through a backend, using the pure ``tail`` core.

For one task, its file is followed; for many, lines of every task are interleaved with a
``[task-id]`` prefix, picking up tasks as they start, until the job ends.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from orchestrator.backend import Backend
from orchestrator.model import JobInfo, JobRef, TaskState
from orchestrator.tail import Backoff, Follower, follow, interleave

STATUS_EVERY = 2.0
FILE_POLL_CAP = 2.0


class JobWatch:
    """Caches task states so all followers of a job share one ``list_tasks`` call per
    ``STATUS_EVERY``; asks for the job itself only once every known task has ended. Idle cost:
    one file read per task per ``FILE_POLL_CAP`` plus one status call per ``STATUS_EVERY``."""

    def __init__(self, backend: Backend, job: JobRef) -> None:
        self.backend, self.job = backend, job
        self._at = 0.0
        self._states: dict[str, TaskState] = {}
        self.job_info: JobInfo | None = None

    def refresh(self) -> None:
        if time.monotonic() - self._at < STATUS_EVERY:
            return
        self._states = {t.id: t.state for t in self.backend.list_tasks(self.job)}
        if not self._states or all(state.is_terminal() for state in self._states.values()):
            self.job_info = self.backend.get_job(self.job)
        self._at = time.monotonic()

    def task_done(self, task_id: str) -> bool:
        self.refresh()
        return self._states.get(task_id, TaskState.PENDING).is_terminal()

    def started(self) -> list[str]:
        self.refresh()
        return [tid for tid, state in self._states.items() if state != TaskState.PENDING]

    def job_done(self) -> bool:
        self.refresh()
        return bool(self.job_info and self.job_info.finished)


def _reader(backend: Backend, job: JobRef, task_id: str, name: str) -> Callable[[int], object]:
    return lambda offset: backend.read_file(job, task_id, name, offset=offset)


def follow_task(backend: Backend, job: JobRef, task_id: str, name: str = "stdout") -> Iterator[str]:
    watch = JobWatch(backend, job)
    yield from follow(_reader(backend, job, task_id, name), lambda: watch.task_done(task_id),  # type: ignore[arg-type]
                      backoff=Backoff(maximum=FILE_POLL_CAP))


def follow_all(backend: Backend, job: JobRef, name: str = "stdout") -> Iterator[str]:
    """Prefixed lines of every task of the job as they come, until the job ends."""
    watch = JobWatch(backend, job)
    seen: set[str] = set()

    def more() -> dict[str, Follower]:
        fresh = {}
        for task_id in watch.started():
            if task_id not in seen:
                seen.add(task_id)
                fresh[task_id] = Follower(_reader(backend, job, task_id, name),  # type: ignore[arg-type]
                                          lambda t=task_id: watch.task_done(t))
        return fresh

    yield from interleave({}, more=more, is_done=watch.job_done, backoff=Backoff(minimum=0.2, maximum=FILE_POLL_CAP))


def read_whole(backend: Backend, job: JobRef, task_id: str, name: str) -> bytes | None:
    """A task file's bytes as they are now (None while it does not exist)."""
    out = bytearray()
    while True:
        chunk = backend.read_file(job, task_id, name, offset=len(out))
        if chunk is None:
            return None if not out else bytes(out)
        out += chunk.data
        if not chunk.data or len(out) >= chunk.size:
            return bytes(out)
