"""The pool manager's cost methods (a mixin of ``PoolManager``) and the thread that keeps costs.

The bookkeeping is ``cost_keeper``'s; this is what the manager does with it. Every
``TICK_SECONDS``, or sooner when a budget will be reached before (at the rate its running tasks
spend), the thread measures budgets and stops the tasks of exhausted ones, stops the
pool once it has been idle for its ``idle_timeout``, and writes the ledger (each second, with a
heartbeat every ``HEARTBEAT_SECONDS``). Before every dispatch, tasks of exhausted budgets are
stopped, so none of them starts.

Stopping an idle pool: a local cluster is stopped by a detached stopper (``autostop``), which
ends this process too; a pool on a cluster at ``ray.address`` releases its agents (and the tasks
they hold: none, it is idle) and its placement group, and the manager stays, holding the jobs,
until ``set_nodes`` brings nodes back. With ``autodelete`` such a pool reports itself deleted
(``keep_awake``): the cluster is not orch's to remove, only what the pool held on it.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

import ray
from orchestrator.backends.ray import autostop, placement
from orchestrator.backends.ray.cost_keeper import (
    FLUSH_SECONDS,
    TICK_SECONDS,
    CostKeeper,
)
from orchestrator.backends.ray.ledger import HEARTBEAT_SECONDS
from orchestrator.backends.ray.usage import HoldRow, NodeRow

if TYPE_CHECKING:
    from orchestrator.backends.ray.job_state import JobRecord
    from orchestrator.backends.ray.journal import Journal
    from orchestrator.backends.ray.scheduling import NodeShare

log = logging.getLogger("orch.manager.costs")
RELEASE_TIMEOUT = 30.0
MIN_PAUSE = 0.02


class CostMethods:
    """See the module docstring. Public methods are Ray actor methods."""

    pool_id: str
    lock: threading.RLock
    jobs: dict[str, JobRecord]
    nodes: list[NodeShare]
    journal: Journal
    costs: CostKeeper

    if TYPE_CHECKING:  # the manager's own
        def busy(self) -> int: ...
        def _persist(self) -> None: ...

    # -- actor methods -------------------------------------------------------------------------
    def keep_awake(self) -> str:
        """Before a submission: ``running`` (the idle clock starts over), ``stopping``, ``stopped``
        or ``deleted`` (then the caller starts the pool again first)."""
        with self.lock:
            return self.costs.keep_awake()

    def idle_state(self) -> dict[str, Any]:
        """``stops_at`` (when an idle pool stops itself; None while busy), ``stopped_at``, ``stopping``, ``deleted``."""
        with self.lock:
            keeper = self.costs
            return {"stops_at": keeper.stops_at(self.busy()), "stopped_at": keeper.stopped_at,
                    "stopping": keeper.stopping, "deleted": keeper.deleted,
                    "idle_timeout": keeper.settings.idle_timeout}

    def set_budgets(self, job_id: str, budget: float | None, sweeps: dict[str, float]) -> bool:
        """Keep (journaled) the job's ``limits.budget`` and its sweeps' (sweep task id -> USD)."""
        with self.lock:
            self.costs.set_budgets(job_id, budget, sweeps)
            return True

    def ledger_rows(self) -> tuple[list[NodeRow], list[HoldRow], float]:
        """The whole ledger and the time it was read (for a CLI on another machine)."""
        return self.costs.rows()

    def flush_ledger(self) -> bool:
        """Write what the ledger noted now (before the pool is deleted)."""
        self.costs.flush(heartbeat=True)
        return True

    # -- the thread -----------------------------------------------------------------------------
    def _start_costs(self) -> None:
        threading.Thread(target=self._cost_loop, name="costs", daemon=True).start()

    def _cost_loop(self) -> None:
        flushed = beat = 0.0
        due: float | None = None
        while True:
            time.sleep(max(MIN_PAUSE, min(TICK_SECONDS, (due or float("inf")) - time.time())))
            now = time.time()
            try:
                due = self._cost_tick(now)
                heartbeat = now - beat >= HEARTBEAT_SECONDS
                if heartbeat or now - flushed >= FLUSH_SECONDS:
                    self.costs.flush(heartbeat=heartbeat)
                    flushed, beat = now, now if heartbeat else beat
            except Exception as exc:  # the thread must outlive any one failed tick
                log.warning("cost tick failed: %s", exc)

    def _cost_tick(self, now: float) -> float | None:
        """Measure budgets (returns when the next one is due) and check idleness."""
        keeper = self.costs
        due = None
        if keeper.budgets or keeper.settings.max_spend is not None:
            with self.lock:
                due = keeper.measure(now)
                if keeper.exhausted and self._stop_exhausted():
                    self._persist()
                    self._dispatch()
                    self._persist()
        if keeper.settings.idle_timeout is None or keeper.stopping or keeper.stopped_at is not None:
            return due
        with self.lock:
            busy = self.busy()
            if busy:
                keeper.last_activity = now
            idle_due = not busy and now >= (keeper.stops_at(busy) or float("inf"))
            if idle_due:
                keeper.stopping = True
        if idle_due:
            self._stop_idle_pool()
        return due

    # -- budgets -------------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """Stop what exhausted budgets hold, then place (``Scheduler._dispatch``)."""
        if self.costs.exhausted:
            self._stop_exhausted(ready_only=True)
        super()._dispatch()  # type: ignore[misc]

    def _stop_exhausted(self, *, ready_only: bool = False) -> bool:
        """Stop the tasks of exhausted budgets (caller holds the lock); ``ready_only``: those about
        to be placed. True if any was stopped."""
        due = self.costs.due_stops(self.jobs, ready_only=ready_only)
        for job_id, task_ids, reason in due:
            running = self.jobs[job_id].stop(task_ids, reason)
            for node in self.nodes:
                mine = [task_id for task_id in running if (job_id, task_id) in node.assigned]
                if mine and not node.down:
                    node.handle.cancel.remote(job_id, mine)
        return bool(due)

    # -- autostop ------------------------------------------------------------------------------
    def _stop_idle_pool(self) -> None:
        settings = self.costs.settings
        log.info("pool %s idle for %ss: %s", self.pool_id, settings.idle_timeout,
                 "deleting it" if settings.autodelete else "stopping it")
        try:
            if settings.local_cluster and settings.address and settings.orch_home:
                self.costs.flush(heartbeat=True)
                autostop.spawn(self.pool_id, settings.address, settings.orch_home, delete=settings.autodelete)
            else:
                self._release_nodes(settings.autodelete)
        except Exception:
            log.exception("stopping idle pool %s failed; will try again", self.pool_id)
            with self.lock:
                self.costs.stopping = False
                self.costs.last_activity = time.time()

    def _release_nodes(self, delete: bool) -> None:
        """Give back the pool's agents and placement group (a cluster at ``ray.address``)."""
        with self.lock:
            handles = [node.handle for node in self.nodes if node.handle is not None and not node.down]
        for handle in handles:
            try:
                ray.get(handle.shutdown.remote(), timeout=RELEASE_TIMEOUT)
            except Exception:  # an agent already gone has nothing to give back
                pass
            try:
                ray.kill(handle, no_restart=True)
            except Exception:
                pass
        placement.release(self.pool_id)
        with self.lock:
            self.journal.set_value("nodes", ([], []))
            self.nodes = []
            self.costs.deleted = delete
            self.costs.mark_stopped(time.time())
            self._persist()
