"""Follow a job's task output through a backend, using the pure ``tail`` core.

For one task, its file is followed; for many, lines of every task are interleaved with a
``[task-id]`` prefix, picking up tasks as they start, until the job ends.
"""
from __future__ import annotations

import time
from typing import Callable, Iterator

from orchestrator.backend import Backend
from orchestrator.model import JobInfo, TaskState
from orchestrator.tail import Backoff, Follower, follow, interleave

STATUS_EVERY = 2.0
FILE_POLL_CAP = 2.0


class JobWatch:
    """Caches task states so all followers of a job share one ``list_tasks`` call per
    ``STATUS_EVERY``; asks for the job itself only once every known task has ended. Idle cost:
    one file read per task per ``FILE_POLL_CAP`` plus one status call per ``STATUS_EVERY``."""

    def __init__(self, backend: Backend, job_id: str) -> None:
        self.backend, self.job_id = backend, job_id
        self._at = 0.0
        self._states: dict[str, TaskState] = {}
        self.job: JobInfo | None = None

    def refresh(self) -> None:
        if time.monotonic() - self._at < STATUS_EVERY:
            return
        self._states = {t.id: t.state for t in self.backend.list_tasks(self.job_id)}
        if not self._states or all(state.is_terminal() for state in self._states.values()):
            self.job = self.backend.get_job(self.job_id)
        self._at = time.monotonic()

    def task_done(self, task_id: str) -> bool:
        self.refresh()
        return self._states.get(task_id, TaskState.PENDING).is_terminal()

    def started(self) -> list[str]:
        self.refresh()
        return [tid for tid, state in self._states.items() if state != TaskState.PENDING]

    def job_done(self) -> bool:
        self.refresh()
        return bool(self.job and self.job.finished)


def _reader(backend: Backend, job_id: str, task_id: str, name: str) -> Callable[[int], object]:
    return lambda offset: backend.read_file(job_id, task_id, name, offset=offset)


def follow_task(backend: Backend, job_id: str, task_id: str, name: str = "stdout") -> Iterator[str]:
    watch = JobWatch(backend, job_id)
    yield from follow(_reader(backend, job_id, task_id, name), lambda: watch.task_done(task_id),  # type: ignore[arg-type]
                      backoff=Backoff(maximum=FILE_POLL_CAP))


def follow_all(backend: Backend, job_id: str, name: str = "stdout") -> Iterator[str]:
    """Prefixed lines of every task of the job as they come, until the job ends."""
    watch = JobWatch(backend, job_id)
    seen: set[str] = set()

    def more() -> dict[str, Follower]:
        fresh = {}
        for task_id in watch.started():
            if task_id not in seen:
                seen.add(task_id)
                fresh[task_id] = Follower(_reader(backend, job_id, task_id, name),  # type: ignore[arg-type]
                                          lambda t=task_id: watch.task_done(t))
        return fresh

    yield from interleave({}, more=more, is_done=watch.job_done, backoff=Backoff(minimum=0.2, maximum=FILE_POLL_CAP))
