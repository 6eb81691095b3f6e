"""Following a job's every task on a backend that reads many files in one call (``FileBatches``)
and watches jobs (``JobWatching``): every byte arrives, a task's state is never newer than the
bytes read with it, the end of the job is seen as it happens, and calls do not grow per task."""
from __future__ import annotations

from orchestrator.backend import Capability
from orchestrator.follow import follow_all
from orchestrator.model import FileChunk, JobInfo, JobRef, TaskInfo, TaskState

REF = JobRef("p", "j")


class BatchBackend:
    """Tasks that write a line as they start and another as they end. Time passes only while the
    follower waits in ``wait_job`` (a clock the follower reads), and the world moves on with it."""

    name = "fake"
    capabilities = frozenset({Capability.FILE_BATCHES, Capability.JOB_WATCHING})

    def __init__(self, count: int, *, chunk: int = 1000) -> None:
        self.count, self.chunk, self.clock = count, chunk, 0.0
        self.written = dict.fromkeys(range(count), 0)  # lines written so far, per task
        self.state = dict.fromkeys(range(count), TaskState.PENDING)
        self.calls = {"read_file": 0, "read_files": 0, "task_states": 0, "wait_job": 0, "list_tasks": 0}

    def step(self) -> None:
        """Up to 500 pending tasks start and write a line; running ones write their last line,
        then end (a state says ended only once the last line is written)."""
        starting = [i for i, state in self.state.items() if state == TaskState.PENDING][:500]
        for index, state in list(self.state.items()):
            if state == TaskState.RUNNING:
                self.written[index], self.state[index] = 2, TaskState.SUCCEEDED
        for index in starting:
            self.state[index], self.written[index] = TaskState.RUNNING, 1

    def content(self, index: int) -> bytes:
        return b"".join(f"t{index} line {n}\n".encode() for n in range(self.written[index]))

    def chunk_at(self, task_id: str, offset: int) -> FileChunk:
        data = self.content(int(task_id[1:]))
        return FileChunk(data[offset:offset + self.chunk], len(data))

    def read_file(self, job: JobRef, task_id: str, name: str, *, offset: int = 0) -> FileChunk | None:
        self.calls["read_file"] += 1
        return self.chunk_at(task_id, offset)

    def read_files(self, job: JobRef, reads: list[tuple[str, str, int]]) -> list[FileChunk | None]:
        self.calls["read_files"] += 1
        return [self.chunk_at(task_id, offset) for task_id, _, offset in reads]

    def task_states(self, job: JobRef) -> dict[str, TaskState]:
        self.calls["task_states"] += 1
        return {f"t{index}": state for index, state in self.state.items()}

    def list_tasks(self, job: JobRef) -> list[TaskInfo]:
        self.calls["list_tasks"] += 1
        return [TaskInfo(id=f"t{i}", job_id="j", state=s) for i, s in self.state.items()]

    def get_job(self, job: JobRef) -> JobInfo:
        done = all(state.is_terminal() for state in self.state.values())
        return JobInfo(id="j", pool_id="p", state="completed" if done else "active", created_at=0.0, task_counts={})

    def wait_job(self, job: JobRef, *, timeout: float) -> JobInfo:
        self.calls["wait_job"] += 1
        self.clock += timeout
        self.step()
        return self.get_job(job)


def follow_on(backend: BatchBackend, monkeypatch) -> list[str]:
    monkeypatch.setattr("orchestrator.follow.time.monotonic", lambda: backend.clock)
    monkeypatch.setattr("orchestrator.follow.time.sleep", lambda seconds: (_ for _ in ()).throw(AssertionError))
    return list(follow_all(backend, REF))  # type: ignore[arg-type]


def test_every_line_of_every_task_arrives_once_with_few_calls(monkeypatch) -> None:
    backend = BatchBackend(2500, chunk=15)  # a line is 15-19 bytes: most files take several reads
    lines = follow_on(backend, monkeypatch)
    assert sorted(lines) == sorted(f"[t{i}] t{i} line {n}" for i in range(2500) for n in range(2))
    assert backend.calls["read_file"] == 0 and backend.calls["list_tasks"] == 0
    assert backend.calls["read_files"] < 100  # not one per task: groups of up to 1,000 followers


def test_the_end_is_seen_through_the_backend_and_states_are_then_read_afresh(monkeypatch) -> None:
    monkeypatch.setattr("orchestrator.follow.STATUS_EVERY", 10**6)  # states are never read again on a timer
    backend = BatchBackend(30)
    lines = follow_on(backend, monkeypatch)
    assert sorted(lines) == sorted(f"[t{i}] t{i} line {n}" for i in range(30) for n in range(2))
    assert backend.calls["task_states"] == 2  # at the start, and once wait_job said the job ended


class MovingBackend(BatchBackend):
    """The world also moves on right after every batched read: a task may write its last line
    and end between the read and the follower's next look at its state."""

    def read_files(self, job: JobRef, reads: list[tuple[str, str, int]]) -> list[FileChunk | None]:
        chunks = super().read_files(job, reads)
        self.step()
        return chunks


def test_a_line_written_just_before_the_end_is_never_lost(monkeypatch) -> None:
    monkeypatch.setattr("orchestrator.follow.STATUS_EVERY", 0.0)  # states as fresh as can be
    backend = MovingBackend(40)
    lines = follow_on(backend, monkeypatch)
    assert sorted(lines) == sorted(f"[t{i}] t{i} line {n}" for i in range(40) for n in range(2))
