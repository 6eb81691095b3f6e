"""The Azure backend's cost ledger (``CostLedger.usage``) and the observations orch keeps for it.

Where the figures come from: Batch's own records, read whenever orch looks at a pool
(``ledger_observe``), and what earlier looks recorded (``ledger_store``): nodes Batch no longer
lists, attempts it replaced, jobs deleted since. Records are taken at each orch contact
(``pool show``/``status``, ``jobs add``, ``jobs delete``, ``pool delete``, ``orch cost``) and by
the job managers orch runs on the pool's nodes (``job_manager``), which record while jobs with
budgets or sweeps run, with no CLI. What neither saw is bounded by Batch's records: a node that
left between two looks is taken to have left when the pool's allocation last settled.
"""
from __future__ import annotations

import socket
import time
from dataclasses import replace
from typing import Any

from orchestrator.backends.azure import ledger
from orchestrator.backends.azure.accounts import Account
from orchestrator.backends.azure.batch_client import text
from orchestrator.backends.azure.ledger_model import Observation
from orchestrator.backends.azure.ledger_observe import (
    for_storage,
    job_attempts,
    node_seen,
    observe_pool,
    pool_attempts,
    prices_of,
)
from orchestrator.backends.azure.ledger_store import (
    BlobShelf,
    LedgerStore,
    LocalShelf,
    Shelf,
)
from orchestrator.model import UsageSpan
from orchestrator.spec.pool import PoolSpec


def writer_name() -> str:
    return f"orch@{socket.gethostname()}"


def store_for(account: Account, pool_id: str, container: str) -> LedgerStore:
    """This machine's folder and, when the account has storage, the pool's container."""
    local = LocalShelf(pool_id)
    shelves: list[Shelf] = [local]
    if account.store is not None:
        shelves.append(BlobShelf(account.store, container))
    return LedgerStore(shelves, writer=writer_name(), local=local)


def usage(account: Account, pool_id: str, container: str, spec: PoolSpec | None,
          since: float | None) -> list[UsageSpan]:
    """Every priced span of the pool's node time (see ``ledger``), after recording what Batch shows now."""
    store = store_for(account, pool_id, container)
    book = store.book()
    live = observe_pool(account.batch, pool_id, writer=writer_name(), spec=spec,
                        attempts=pool_attempts(account.batch, pool_id))
    store.record(for_storage(live))
    book.add(live)
    return ledger.usage(pool_id, book, live.at, since=since)


def note_pool(account: Account, pool_id: str, container: str, spec: PoolSpec | None, pool: Any,
              nodes: list[Any]) -> None:
    """Record the pool as orch just read it (nodes only: attempts are read when needed)."""
    observation = Observation(
        at=time.time(), writer=writer_name(), vm_size=pool.vm_size, slots_per_node=pool.task_slots_per_node or 1,
        allocation=text(pool.allocation_state),
        allocation_since=pool.allocation_state_transition_time.timestamp()
        if pool.allocation_state_transition_time else None,
        prices=prices_of(spec, pool.vm_size), nodes=tuple(node_seen(node) for node in nodes))
    store_for(account, pool_id, container).record(observation)


def note_job_ending(account: Account, pool_id: str, container: str, spec: PoolSpec | None, job_id: str) -> None:
    """Before a job is deleted: keep its attempts (running ones end now) and the pool's nodes."""
    now = time.time()
    attempts = [attempt if attempt.end is not None else replace(attempt, end=now)
                for attempt in job_attempts(account.batch, job_id)]
    observation = observe_pool(account.batch, pool_id, writer=writer_name(), spec=spec, attempts=attempts)
    store_for(account, pool_id, container).record(observation)


def note_pool_deleted(account: Account, pool_id: str, container: str) -> None:
    """After a pool is gone: its nodes ended now."""
    store_for(account, pool_id, container).record(Observation(at=time.time(), writer=writer_name(),
                                                              pool_exists=False, lists_nodes=False))
