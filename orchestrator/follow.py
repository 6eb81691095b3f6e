"""Follow a job's task output through a backend, using the pure ``tail`` core.

For one task, its file is followed; for many, lines of every task are interleaved with a
``[task-id]`` prefix, picking up tasks as they start, until the job ends. Files as they are now
are streamed in the backend's chunks (``file_chunks``), as bytes or as incrementally decoded text.
"""
from __future__ import annotations

import codecs
import math
import time
from typing import Callable, Iterable, Iterator

from orchestrator.backend import Backend, FileBatches, JobWatching, capability, supports
from orchestrator.model import FileChunk, JobInfo, JobRef, TaskState
from orchestrator.tail import Backoff, Follower, follow, interleave

STATUS_EVERY = 2.0
FILE_POLL_CAP = 2.0


class JobWatch:
    """Caches task states so all followers of a job share one ``list_tasks`` call per
    ``STATUS_EVERY``; asks for the job itself only once every known task has ended. Idle cost:
    one file read per task per ``FILE_POLL_CAP`` (on a ``FileBatches`` backend, a few calls for
    all of them) plus one status call per ``STATUS_EVERY``. On a ``JobWatching`` backend, states
    come in its small answer, and ``sleep`` waits in the backend, returning as the job ends."""

    def __init__(self, backend: Backend, job: JobRef) -> None:
        self.backend, self.job = backend, job
        self._at = -math.inf  # when states were last read
        self._states: dict[str, TaskState] = {}
        self.job_info: JobInfo | None = None
        self._watching = capability(backend, JobWatching) if supports(backend, JobWatching) else None

    def sleep(self, seconds: float) -> None:
        """Pause ``seconds``, or less: until the job ends, where the backend can tell (task states
        are then read afresh)."""
        if self._watching is None or (self.job_info is not None and self.job_info.finished):
            time.sleep(seconds)
            return
        info = self._watching.wait_job(self.job, timeout=seconds)
        if info is None or info.finished:
            self._at = -math.inf  # it ended (or is gone): the next look reads every state afresh

    def refresh(self) -> None:
        if time.monotonic() - self._at < STATUS_EVERY:
            return
        self._states = (self._watching.task_states(self.job) if self._watching is not None
                        else {t.id: t.state for t in self.backend.list_tasks(self.job)})
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


class BatchReads:
    """The file reads of many followers of one job in a few ``FileBatches`` calls per round.

    ``prefetch`` takes each follower's task state first, then reads all their files: a state is
    never newer than the bytes read with it, so the read after a task's end still catches all.
    A follower reading elsewhere than it was prefetched (from 0, after a restart) reads alone."""

    def __init__(self, backend: Backend, job: JobRef, name: str, watch: JobWatch) -> None:
        self.backend, self.job, self.name, self.watch = backend, job, name, watch
        self.files = capability(backend, FileBatches)
        self.ahead: dict[str, tuple[int, FileChunk | None]] = {}
        self.finished: dict[str, bool] = {}

    def follower(self, task_id: str) -> Follower:
        return Follower(lambda offset: self._read(task_id, offset), lambda: self._finished(task_id))

    def prefetch(self, group: dict[str, Follower]) -> None:
        wanted = [(task_id, follower.offset) for task_id, follower in group.items() if not follower.done]
        self.finished = {task_id: self.watch.task_done(task_id) for task_id, _ in wanted}
        chunks = self.files.read_files(self.job, [(task_id, self.name, offset) for task_id, offset in wanted])
        self.ahead = {task_id: (offset, chunk) for (task_id, offset), chunk in zip(wanted, chunks)}

    def _finished(self, task_id: str) -> bool:
        snapshot = self.finished.pop(task_id, None)
        return self.watch.task_done(task_id) if snapshot is None else snapshot

    def _read(self, task_id: str, offset: int) -> FileChunk | None:
        got = self.ahead.pop(task_id, None)
        if got is not None and got[0] == offset:
            return got[1]
        return self.backend.read_file(self.job, task_id, self.name, offset=offset)


def follow_all(backend: Backend, job: JobRef, name: str = "stdout") -> Iterator[str]:
    """Prefixed lines of every task of the job as they come, until the job ends."""
    watch = JobWatch(backend, job)
    reads = BatchReads(backend, job, name, watch) if supports(backend, FileBatches) else None
    seen: set[str] = set()

    def more() -> dict[str, Follower]:
        fresh = {}
        for task_id in watch.started():
            if task_id not in seen:
                seen.add(task_id)
                fresh[task_id] = reads.follower(task_id) if reads else Follower(
                    _reader(backend, job, task_id, name), lambda t=task_id: watch.task_done(t))  # type: ignore[arg-type]
        return fresh

    yield from interleave({}, more=more, is_done=watch.job_done, sleep=watch.sleep,
                          backoff=Backoff(minimum=0.2, maximum=FILE_POLL_CAP),
                          prefetch=reads.prefetch if reads else None)


def file_chunks(backend: Backend, job: JobRef, task_id: str, name: str) -> Iterator[bytes] | None:
    """A task file's bytes up to its size now, chunk by chunk as the backend returns them
    (memory: one chunk); None while the file does not exist."""
    first = backend.read_file(job, task_id, name, offset=0)
    return None if first is None else _chunks(backend, job, task_id, name, first)


def _chunks(backend: Backend, job: JobRef, task_id: str, name: str, chunk: FileChunk) -> Iterator[bytes]:
    end, offset = chunk.size, 0
    while True:
        if chunk.data:
            yield chunk.data
        offset += len(chunk.data)
        if not chunk.data or offset >= end:
            return
        next_chunk = backend.read_file(job, task_id, name, offset=offset)
        if next_chunk is None or next_chunk.size < offset:
            return  # removed, or restarted by a retry while being read
        chunk = next_chunk


def decoded(chunks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text of ``chunks`` (undecodable bytes replaced), a character split across chunks kept whole."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for data in chunks:
        text = decoder.decode(data)
        if text:
            yield text
    rest = decoder.decode(b"", final=True)
    if rest:
        yield rest


def prefixed(prefix: str, texts: Iterable[str]) -> Iterator[str]:
    """``texts`` with ``prefix`` at the start of every line, block by block (no line is buffered,
    so a file without newlines costs no more memory than one with them); ends with a newline."""
    at_line_start = True
    for text in texts:
        if not text:
            continue
        head = prefix if at_line_start else ""
        at_line_start = text.endswith("\n")
        body = text[:-1] if at_line_start else text
        yield head + body.replace("\n", "\n" + prefix) + ("\n" if at_line_start else "")
    if not at_line_start:
        yield "\n"


def follow_bytes(backend: Backend, job: JobRef, task_id: str, name: str) -> Iterator[bytes]:
    """A task file's bytes as they are written, until the task ends and the last bytes are read
    (a file that shrank, rewritten by a retry, is read again from its start)."""
    watch, pace, offset = JobWatch(backend, job), Backoff(maximum=FILE_POLL_CAP), 0
    while True:
        finished = watch.task_done(task_id)
        chunk = backend.read_file(job, task_id, name, offset=offset)
        if chunk is not None and chunk.size < offset:
            offset, chunk = 0, backend.read_file(job, task_id, name, offset=0)
        got = chunk is not None and bool(chunk.data)
        if chunk is not None and chunk.data:
            offset += len(chunk.data)
            yield chunk.data
            if offset < chunk.size:
                continue
        if finished:
            return
        time.sleep(pace.next(got))
