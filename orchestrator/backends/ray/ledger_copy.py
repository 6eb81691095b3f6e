"""What the CLI does to a pool's cost ledger: copy a user cluster's ledger here, close a deleted one.

A pool on a user's cluster (``ray.address``) keeps its ledger in its manager, on the cluster; orch copies it under ``$ORCH_HOME`` each
time it is read and before the pool is deleted, so a pool's spend stays readable after the pool
(and the cluster) is gone. A local cluster's ledger is on this machine already: nothing to copy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import ray
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.connection import ray_errors
from orchestrator.backends.ray.ledger import COPY, LedgerStore, ledger_dir
from orchestrator.errors import BackendError

CALL_TIMEOUT = 60.0


def copy(cluster: ClusterRecord, manager: Any | None) -> None:
    """Replace this machine's copy with the ledger ``manager`` holds (nothing for a local
    cluster or without a manager). Raises ``BackendError`` when the manager cannot answer."""
    if manager is None or cluster.started_cluster:
        return
    with ray_errors(f"reading the cost ledger of pool {cluster.pool_id!r}"):
        nodes, holds, _ = ray.get(manager.ledger_rows.remote(), timeout=CALL_TIMEOUT)
    store = LedgerStore(ledger_dir(cluster.pool_id) / COPY)
    try:
        store.replace_all(nodes, holds)
    finally:
        store.close()


def settle(cluster: ClusterRecord, manager: Any | None) -> None:
    """Before a delete: the manager writes what it noted, and a remote ledger is copied here.
    Never raises for a broken pool: it is deleted all the same, its ledger keeps what was written."""
    if manager is None:
        return
    try:
        with ray_errors(f"writing the cost ledger of pool {cluster.pool_id!r}"):
            ray.get(manager.flush_ledger.remote(), timeout=CALL_TIMEOUT)
        copy(cluster, manager)
    except BackendError:
        pass


def close_nodes(path: Path, at: float) -> None:
    """After a teardown: the ledger at ``path`` (if any) notes its open nodes as ended ``at``
    (they ended with their processes, just now)."""
    if not path.exists():
        return
    store = LedgerStore(path)
    try:
        store.close_open(at)
    finally:
        store.close()
