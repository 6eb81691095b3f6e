"""What the dashboard reads, through the core's pool and job verbs, with short-lived caches.

The CLI and the page share this one data layer: pools come from ``pools.list_pools`` and
``show_pool``, jobs from ``jobs.list_jobs`` and ``jobs.locate``, tasks from the job's backend
(``list_tasks``), files from ``read_file`` at an offset, a sweep's objective from the job index,
money from ``orchestrator.cost.report`` (``pool_status`` once per pool per ``ttl``: every job's
and task's spend on a page comes from that one summary; ``sweep_cost`` for a sweep).

The core and its backends are written for one caller at a time (a process drives one Ray cluster
connection), so every call into them is made under one lock. Reads are cached for ``ttl``
seconds (longer for slow answers), so any number of open pages and log streams cost one
``list_tasks`` per job per ``ttl``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from orchestrator import jobs, pools
from orchestrator.cost import report
from orchestrator.errors import NotFoundError, OrchError, redact
from orchestrator.jobs import JobHandle
from orchestrator.model import FileChunk, JobInfo, PoolInfo, TaskInfo
from orchestrator.records import job_index, pool_records
from orchestrator.records.job_index import JobEntry
from orchestrator.spec.pool import PoolSpec
from orchestrator.sweep.results import Objective, resolve_objective
from orchestrator.ui.cost_view import PoolMoney
from orchestrator.ui.sweep_view import SweepBoard

T = TypeVar("T")
DEFAULT_TTL = 1.0
SLOW_FACTOR = 5.0


class Dashboard:
    """Cached, serialized access to pools, jobs, tasks, files and sweeps for the server."""

    def __init__(self, config_dir: Path | None = None, *, ttl: float = DEFAULT_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config_dir, self.ttl, self.clock = config_dir, ttl, clock
        self.lock = threading.RLock()
        self._cache: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._boards: dict[str, SweepBoard] = {}
        self._derived: dict[tuple[str, ...], tuple[object, Any]] = {}
        self._unreachable: dict[str, str] = {}

    # -- plumbing ------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` under the lock (every call into the core goes through here)."""
        with self.lock:
            return fn(*args, **kwargs)

    def cached(self, key: tuple[str, ...], fn: Callable[[], T]) -> T:
        """``fn()``'s value, computed at most once per ``ttl`` for ``key``; a value that took long
        to get is kept ``SLOW_FACTOR`` times as long as it took (a 20,000-task listing from a
        remote service is not asked for again every second). ``ttl`` 0 caches nothing."""
        with self.lock:
            hit = self._cache.get(key)
            if hit is not None and self.clock() < hit[0]:
                return hit[1]  # type: ignore[no-any-return]
            started = self.clock()
            value = fn()
            done = self.clock()
            if self.ttl > 0:
                self._cache[key] = (done + max(self.ttl, SLOW_FACTOR * (done - started)), value)
            return value

    def derived(self, key: tuple[str, ...], source: object, fn: Callable[[], T]) -> T:
        """``fn()``'s value, computed again only when ``source`` (a cached value) was replaced."""
        with self.lock:
            hit = self._derived.get(key)
            if hit is not None and hit[0] is source:
                return hit[1]  # type: ignore[no-any-return]
            value = fn()
            self._derived[key] = (source, value)
            return value

    def forget(self, *prefix: str) -> None:
        """Drop cached values whose key starts with ``prefix`` (after an action changed them)."""
        with self.lock:
            for key in [k for k in self._cache if k[: len(prefix)] == prefix]:
                del self._cache[key]

    # -- pools ---------------------------------------------------------------------------
    def pools(self) -> list[PoolInfo]:
        return self.cached(("pools",), lambda: pools.list_pools(config_dir=self.config_dir))

    def pool(self, pool_id: str) -> PoolInfo:
        return self.cached(("pool", pool_id), lambda: pools.show_pool(pool_id, config_dir=self.config_dir))

    def money(self, pool_id: str) -> PoolMoney:
        """The pool's spend since it was created, burn rate and budgets (``report.pool_status``,
        as ``orch status``), and its spec; a ledger that fails to answer becomes the note."""
        def read() -> PoolMoney:
            try:
                status = report.pool_status(pool_id, config_dir=self.config_dir)
            except OrchError as exc:
                status = report.PoolStatus(spend=None, note=f"its ledger could not be read: {exc.message}")
            return PoolMoney(status, _spec(pool_id))
        return self.cached(("money", pool_id), read)

    def delete_pool(self, pool_id: str, *, force: bool) -> None:
        self.call(pools.delete_pool, pool_id, force=force, config_dir=self.config_dir)
        for kind in ("pool", "pools", "jobs", "money"):
            self.forget(kind)

    # -- jobs ----------------------------------------------------------------------------
    def jobs(self) -> list[JobInfo]:
        """Jobs of every pool that answers, oldest first (see ``unreachable`` for the others)."""
        return self.cached(("jobs",), self._list_jobs)

    def unreachable(self) -> dict[str, str]:
        """Pools whose jobs could not be listed at the last refresh, with the reason."""
        self.jobs()
        return dict(self._unreachable)

    def _list_jobs(self) -> list[JobInfo]:
        found: list[JobInfo] = []
        self._unreachable = {}
        for info in self.pools():
            try:
                found += jobs.list_jobs(info.id, config_dir=self.config_dir)
            except OrchError as exc:  # one broken pool must not hide the others
                self._unreachable[info.id] = redact(exc.message) or ""
        return sorted(found, key=lambda job: job.created_at)

    def handle(self, job_id: str) -> JobHandle:
        return self.cached(("handle", job_id), lambda: jobs.locate(job_id, config_dir=self.config_dir))

    def job(self, job_id: str) -> JobInfo:
        def read() -> JobInfo:
            handle = self.handle(job_id)
            info = handle.backend.get_job(handle.ref)
            if info is None:
                raise NotFoundError(f"job {job_id!r} does not exist", hint="see the jobs list")
            return info
        return self.cached(("job", job_id), read)

    def entry(self, job_id: str) -> JobEntry | None:
        """The job index's entry (kind, a sweep's objective and planned trials), if indexed here."""
        return job_index.lookup(job_id)

    def tasks(self, job_id: str) -> list[TaskInfo]:
        """Every task of the job, in submission order (one ``list_tasks`` per ``ttl``)."""
        def read() -> list[TaskInfo]:
            handle = self.handle(job_id)
            return handle.backend.list_tasks(handle.ref)
        return self.cached(("tasks", job_id), read)

    def job_money(self, job_id: str) -> PoolMoney:
        """The money of the pool the job runs on (its job's and tasks' spend are in it)."""
        return self.money(self.handle(job_id).ref.pool_id)

    def task(self, job_id: str, task_id: str) -> TaskInfo:
        tasks = self.tasks(job_id)
        index = self.derived(("task-index", job_id), tasks, lambda: {t.id: t for t in tasks})
        if task_id not in index:
            raise NotFoundError(f"task {task_id!r} is not in job {job_id!r}", hint="see the job's task list")
        return index[task_id]

    def controller(self, job_id: str) -> dict[str, Any] | None:
        """The sweep controller's summary while one runs for the job (None otherwise)."""
        return self.cached(("controller", job_id), lambda: jobs.sweep_state(self.handle(job_id)))

    def cancel(self, job_id: str) -> None:
        self.call(jobs.cancel_job, self.handle(job_id))
        for kind in ("job", "tasks", "jobs"):
            self.forget(kind)

    # -- files and sweeps ----------------------------------------------------------------
    def read(self, job_id: str, task_id: str, name: str, offset: int) -> FileChunk | None:
        """Bytes of a task file from ``offset`` (None while it does not exist)."""
        handle = self.handle(job_id)
        return self.call(handle.backend.read_file, handle.ref, task_id, name, offset=offset)

    def task_ended(self, job_id: str, task_id: str) -> bool:
        return self.task(job_id, task_id).state.is_terminal()

    def objective(self, job_id: str, metric: str | None = None, goal: str | None = None) -> Objective:
        entry = self.entry(job_id)
        return resolve_objective(metric, goal, entry.objective if entry else None)

    def sweep(self, job_id: str, metric: str | None = None, goal: str | None = None) -> dict[str, Any]:
        """The sweep's leaderboard and chart series; metrics are read only where they grew."""
        with self.lock:
            tasks = self.tasks(job_id)
            board = self._boards.get(job_id)
            if board is None:
                board = self._boards[job_id] = SweepBoard(lambda task_id, offset: self.read(
                    job_id, task_id, "metrics", offset))
            handle, note = self.handle(job_id), self.job_money(job_id).note

            def pricing(best: TaskInfo | None) -> report.SweepCost | None:
                if note is not None:
                    return None
                try:
                    return self.cached(("sweep-cost", job_id, best.id if best else ""),
                                       lambda: report.sweep_cost(handle.backend, handle.ref, best))
                except OrchError:
                    return None  # the page says the ledger could not be read

            return self.derived(("sweep", job_id, metric or "", goal or ""), tasks,
                                lambda: board.view(tasks, self.objective(job_id, metric, goal), self.job(job_id),
                                                   pricing=pricing, note=note))


def _spec(pool_id: str) -> PoolSpec | None:
    """The pool's spec from its record on this machine (None when unknown or unreadable)."""
    try:
        record = pool_records.load(pool_id)
        return record.pool_spec() if record is not None else None
    except (OrchError, ValueError):
        return None
