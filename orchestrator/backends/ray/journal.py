"""The pool manager's journal: every job, task, attempt and state change, on the head node's disk.

SQLite in WAL mode with ``synchronous=FULL``: a change is on disk when ``commit`` returns, so the
manager commits before it acknowledges what it was told (an agent's report, a submission) and a
restarted manager replays exactly what anyone was told. Snapshots (workdir, inputs) and task
checkpoints are files beside it, written atomically (temporary name, fsync, rename): a file cut
off mid-write is never read back.

Layout of ``root``: ``journal.sqlite``, ``blobs/<sha256>.zip``, ``checkpoints/<job>/<task>.zip``.
"""
from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.model import TaskLaunch

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at REAL, max_running INTEGER, sealed INTEGER,
    cancelled INTEGER, ended_at REAL, spec_digest TEXT, workdir TEXT, inputs BLOB);
CREATE TABLE IF NOT EXISTS tasks (job_id TEXT, task_id TEXT, seq INTEGER, launch BLOB, state TEXT, attempt INTEGER,
    node INTEGER, exit_code INTEGER, started_at REAL, ended_at REAL, error TEXT, dispatched INTEGER,
    PRIMARY KEY (job_id, task_id));
CREATE TABLE IF NOT EXISTS attempts (job_id TEXT, task_id TEXT, attempt INTEGER, node INTEGER, state TEXT,
    started_at REAL, ended_at REAL, exit_code INTEGER, error TEXT, PRIMARY KEY (job_id, task_id, attempt));
CREATE TABLE IF NOT EXISTS pool (key TEXT PRIMARY KEY, value BLOB);
"""


@dataclass
class TaskRow:
    """A task as the journal last saw it."""

    launch: TaskLaunch
    state: str
    attempt: int
    node: int | None
    exit_code: int | None
    started_at: float | None
    ended_at: float | None
    error: str | None
    dispatched: bool


@dataclass
class AttemptRow:
    attempt: int
    node: int | None
    state: str
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    error: str | None


@dataclass
class JobRow:
    id: str
    created_at: float
    max_running: int | None
    sealed: bool
    cancelled: bool
    ended_at: float | None
    spec_digest: str | None
    workdir: str | None
    inputs: list[tuple[str, str, str | None]]  # (to, digest, file name or None)


class Journal:
    """One pool's journal (see the module docstring). Thread-safe; one writer process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (root / "blobs").mkdir(exist_ok=True, mode=0o700)
        (root / "checkpoints").mkdir(exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(root / "journal.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()

    # -- writing: one transaction per call ------------------------------------------------
    def transaction(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    # -- pool facts ------------------------------------------------------------------------
    def set_value(self, key: str, value: Any) -> None:
        with self.transaction() as tx:
            tx.execute("INSERT OR REPLACE INTO pool VALUES (?, ?)", (key, pickle.dumps(value)))

    def value(self, key: str) -> Any | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM pool WHERE key = ?", (key,)).fetchone()
        return pickle.loads(row[0]) if row else None

    # -- reading everything back -----------------------------------------------------------
    def jobs(self) -> list[JobRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY created_at").fetchall()
        return [JobRow(id=r[0], created_at=r[1], max_running=r[2], sealed=bool(r[3]), cancelled=bool(r[4]),
                       ended_at=r[5], spec_digest=r[6], workdir=r[7], inputs=pickle.loads(r[8]) if r[8] else [])
                for r in rows]

    def tasks(self, job_id: str) -> Iterator[TaskRow]:
        with self._lock:
            rows = self._db.execute("SELECT launch, state, attempt, node, exit_code, started_at, ended_at, error, "
                                    "dispatched FROM tasks WHERE job_id = ? ORDER BY seq", (job_id,)).fetchall()
        for r in rows:
            yield TaskRow(launch=pickle.loads(r[0]), state=r[1], attempt=r[2], node=r[3], exit_code=r[4],
                          started_at=r[5], ended_at=r[6], error=r[7], dispatched=bool(r[8]))

    def attempts(self, job_id: str) -> dict[str, list[AttemptRow]]:
        with self._lock:
            rows = self._db.execute("SELECT task_id, attempt, node, state, started_at, ended_at, exit_code, error "
                                    "FROM attempts WHERE job_id = ? ORDER BY task_id, attempt", (job_id,)).fetchall()
        out: dict[str, list[AttemptRow]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(AttemptRow(*r[1:]))
        return out

    # -- blobs and checkpoints ---------------------------------------------------------------
    def put_blob(self, digest: str, data: bytes) -> None:
        path = self.root / "blobs" / f"{digest}.zip"
        if not path.exists():
            write_atomically(path, data)

    def blob(self, digest: str) -> bytes | None:
        try:
            return (self.root / "blobs" / f"{digest}.zip").read_bytes()
        except FileNotFoundError:
            return None

    def checkpoint_path(self, job_id: str, task_id: str) -> Path:
        return self._checkpoints(job_id) / f"{task_id}.zip"

    def _checkpoints(self, job_id: str) -> Path:
        return self.root / "checkpoints" / job_id

    def has_checkpoints(self, job_id: str) -> bool:
        """Whether any task of the job saved a checkpoint (its folder exists)."""
        return self._checkpoints(job_id).is_dir()

    def forget_job(self, job_id: str) -> None:
        """Drop a job's rows and its checkpoints (moved aside at once, so a job that takes the id
        next restores nothing of this one; removed in the background)."""
        with self.transaction() as tx:
            for table in ("jobs", "tasks", "attempts"):
                column = "id" if table == "jobs" else "job_id"
                tx.execute(f"DELETE FROM {table} WHERE {column} = ?", (job_id,))
        folder = self._checkpoints(job_id)
        aside = folder.with_name(f".deleted-{job_id}-{time.time_ns()}")
        try:
            os.rename(folder, aside)
        except FileNotFoundError:
            return
        threading.Thread(target=shutil.rmtree, args=(aside, True), name="checkpoint-removal", daemon=True).start()

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _Transaction:
    """``with journal.transaction() as tx: tx.execute(...)``: all or nothing, durable on exit."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self.db, self.lock = db, lock

    def __enter__(self) -> _Transaction:
        self.lock.acquire()
        self.db.execute("BEGIN")
        return self

    def execute(self, sql: str, params: Iterable[Any] = ()) -> None:
        self.db.execute(sql, tuple(params))

    def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> None:
        self.db.executemany(sql, (tuple(row) for row in rows))

    def __exit__(self, kind: Any, *_: Any) -> None:
        try:
            self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        finally:
            self.lock.release()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never part."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
