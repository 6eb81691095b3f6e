"""The budget keeper: the part of a job's manager task (``sweep_manager``) that keeps its limits.

Each pass reads the job's tasks and the pool's nodes from Batch (as the pool's identity), records
them in the pool's cost ledger (``ledger/`` in its container, through the payload's SAS URL: this
is the ledger's server-side writer), prices the ledger (``ledger``) and acts on the limits
``budgets.breaches`` finds reached (see ``budgets``). The next pass comes after
``poll_seconds``, or sooner when the current burn rate reaches a limit before: stops land within
a fraction of a second of the limit, not a polling period after it. A restarted keeper reads back
the ``BudgetState`` it wrote, so nothing is stopped twice and a halted sweep stays halted.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator.backends.azure import budgets, job_ops, ledger, naming
from orchestrator.backends.azure.batch_client import BatchApi, text
from orchestrator.backends.azure.budgets import Breach, BudgetPayload, BudgetState
from orchestrator.backends.azure.ledger_observe import (
    TASK_FIELDS,
    for_storage,
    observe_pool,
    tasks_attempts,
)
from orchestrator.backends.azure.ledger_store import BlobShelf, LedgerStore
from orchestrator.errors import ConflictError, NotFoundError

log = logging.getLogger("orch.budget_keeper")
SOONEST = 0.05


class SasContainer:
    """A blob container reached through a SAS URL, with the few ``BlobStore`` methods the ledger
    and the budget state use (the container argument is ignored: the URL names it)."""

    def __init__(self, url: str) -> None:
        from azure.storage.blob import ContainerClient

        self.client = ContainerClient.from_container_url(url)

    def names(self, container: str, prefix: str = "") -> list[str]:
        return [blob.name for blob in self.client.list_blobs(name_starts_with=prefix or None)]

    def get(self, container: str, name: str) -> bytes:
        return bytes(self.client.download_blob(name).readall())

    def get_or_none(self, name: str) -> bytes | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.get("", name)
        except ResourceNotFoundError:
            return None

    def put(self, container: str, name: str, data: bytes, *, skip_same: bool = False) -> None:
        self.client.upload_blob(name, data, overwrite=True)

    def delete_blob(self, container: str, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.delete_blob(name)
        except ResourceNotFoundError:
            pass


class BudgetKeeper:
    """Keeps one job's limits (see the module docstring). ``halt(sweep, reason)`` tells the
    sweep controller, when one runs in the same manager, to add no trial to ``sweep``."""

    def __init__(self, api: BatchApi, payload: BudgetPayload, container: SasContainer | None = None) -> None:
        self.api, self.payload = api, payload
        self.container = container or SasContainer(payload.ledger_url)
        self.store = LedgerStore([BlobShelf(self.container, "")], writer=f"manager:{payload.job_id}")
        saved = self.container.get_or_none(naming.budget_state_blob(payload.job_id))
        self.state = BudgetState.from_json(saved) if saved else BudgetState()
        self.halted = {budgets.owner(task, payload.limits.sweeps) for task in self.state.stopped} - {None}
        self.halt: Callable[[str, str], None] | None = None
        self.spent: budgets.Spend | None = None

    def run(self, stop: threading.Event) -> None:
        """Passes until the job is over or ``stop`` is set; a failing pass is retried."""
        while not stop.is_set():
            try:
                wait = self.pass_once()
            except Exception as exc:  # Batch briefly unreachable: the next pass retries
                log.warning("budget pass failed: %s: %s", type(exc).__name__, exc)
                wait = self.payload.poll_seconds
            if wait is None:
                return
            stop.wait(wait)

    def pass_once(self) -> float | None:
        """One pass; seconds until the next, or None when the job needs no keeping any more."""
        job = job_ops.get(self.api, self.payload.job_id)
        if job is None or text(job.state) != "active" or self.state.job_reason:
            return None
        tasks = [t for t in self.api.listed(f"listing tasks of {job.id!r}", self.api.client.list_tasks, job.id,
                                            select=[*TASK_FIELDS, "dependsOn"])]
        attempts = tasks_attempts(self.api, job.id, tasks)
        observation = observe_pool(self.api, self.payload.pool_id, writer=self.store.writer, spec=None,
                                   attempts=attempts)
        observation = replace(observation, prices=self.payload.prices)
        self.store.record(for_storage(observation))
        book = self.store.book()
        book.add(observation)
        spans = ledger.usage(self.payload.pool_id, book, observation.at)
        self.spent = budgets.spend(spans, job.id, self.payload.limits.sweeps, observation.at)
        for breach in budgets.breaches(self.payload.limits, self.spent, self.halted):
            self._act(breach, tasks)
            if breach.sweep is None:
                return None
        for sweep in self.halted:  # trials a controller added as it was halted
            self._stop_sweep(sweep, f"budget: sweep {sweep!r} reached its budget", tasks, only_new=True)
        if _settled(job, tasks):
            return None
        wait = budgets.seconds_to_limit(self.payload.limits, self.spent, self.halted)
        return self.payload.poll_seconds if wait is None else min(self.payload.poll_seconds, max(SOONEST, wait))

    def _act(self, breach: Breach, tasks: list[Any]) -> None:
        log.info("%s", breach.reason)
        if breach.sweep is None:
            self.state.job_reason = breach.reason
            self._save()
            self.api.terminate_job(self.payload.job_id, naming.BUDGET_REASON)
            return
        self.halted.add(breach.sweep)
        if self.halt is not None:
            self.halt(breach.sweep, breach.reason)
        self._stop_sweep(breach.sweep, breach.reason, tasks)

    def _stop_sweep(self, sweep: str, reason: str, tasks: list[Any], *, only_new: bool = False) -> None:
        """Record, then terminate, the sweep's unfinished trials (``only_new``: those not stopped yet)."""
        unfinished = [t.id for t in tasks if text(t.state) != "completed" and budgets.owner(t.id, [sweep]) == sweep
                      and not (only_new and t.id in self.state.stopped)]
        if not unfinished:
            return
        self.state.stopped.update(dict.fromkeys(unfinished, reason))
        self._save()
        for task_id in unfinished:
            try:
                self.api.call(f"stopping task {task_id!r}", self.api.client.terminate_task, self.payload.job_id,
                              task_id)
            except (ConflictError, NotFoundError):
                continue  # it ended meanwhile

    def _save(self) -> None:
        self.container.put("", naming.budget_state_blob(self.payload.job_id), self.state.to_json())

    def summary(self) -> dict[str, object]:
        spent = self.spent
        return {"limits": {"job": self.payload.limits.job, "sweeps": dict(self.payload.limits.sweeps),
                           "pool": self.payload.limits.pool},
                "spent": None if spent is None else {"job": spent.job, "sweeps": spent.sweeps, "pool": spent.pool},
                "halted": sorted(self.halted), "job_stopped": self.state.job_reason}


def _settled(job: Any, tasks: list[Any]) -> bool:
    """Sealed, and every task (its manager aside) ended or blocked for good: nothing more to keep."""
    if text(job.all_tasks_complete_mode) != "terminatejob":
        return False
    work = [t for t in tasks if t.id != naming.SWEEP_MANAGER_ID]
    blocked = job_ops.blocked_by_failure(work, {t.id: job_ops.ended_state(t) for t in work})
    return all(text(t.state) == "completed" or t.id in blocked for t in work)
