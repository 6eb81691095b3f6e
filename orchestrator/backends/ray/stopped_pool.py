"""A local pool that stopped itself: its jobs read from the journal it left, its ledger from disk,
and the wait for a stop under way before the pool is started again.

While a local cluster is stopped (``autostop``) no manager answers, but its journal and node
folders are on this machine: jobs, tasks and task files stay readable, as they were when it
stopped. For a pool on a cluster at ``ray.address`` the manager stays and answers (``cost_methods``).
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.backends.ray import recovery, task_files
from orchestrator.backends.ray.autostop import pending_marker
from orchestrator.backends.ray.cluster_record import ClusterRecord
from orchestrator.backends.ray.job_state import JobRecord
from orchestrator.backends.ray.journal import Journal
from orchestrator.backends.ray.ledger import (
    COPY,
    FILE,
    LedgerStore,
    ledger_dir,
    writer_alive,
)
from orchestrator.backends.ray.usage import spans
from orchestrator.cost.spend import clip
from orchestrator.errors import BackendError
from orchestrator.model import FileChunk, UsageSpan
from orchestrator.records import pool_records

STOP_WAIT_SECONDS = 120.0
MARKER_GRACE = 5.0
READ_LIMIT = 4 * 1024 * 1024


def stopping(pool_id: str) -> bool:
    """A stop is under way (its stopper has not finished)."""
    return pending_marker(pool_records.pool_state_dir(pool_id)).exists()


def wait_stopped(pool_id: str, timeout: float = STOP_WAIT_SECONDS) -> ClusterRecord | None:
    """Wait for a stop under way to end: until the record says stopped (or is gone: autodelete),
    or no stopper has shown up for ``MARKER_GRACE`` seconds (the stop failed or never began:
    ``pool_ops.create`` then finds the cluster up or down, and acts on what it finds). Returns the
    record as it is then; ``BackendError`` on timeout."""
    started = time.monotonic()
    while True:
        record = pool_records.load(pool_id)
        if record is None or ClusterRecord.of(record).stopped_at is not None:
            return ClusterRecord.of(record) if record is not None else None
        waited = time.monotonic() - started
        if not stopping(pool_id) and waited > MARKER_GRACE:
            return ClusterRecord.of(record)
        if waited > timeout:
            raise BackendError(f"pool {pool_id!r} did not finish stopping in {timeout:g}s",
                               hint=f"see {pool_records.pool_state_dir(pool_id) / 'autostop.log'}")
        time.sleep(0.2)


def jobs(pool_id: str) -> dict[str, JobRecord]:
    """The stopped pool's jobs as its journal has them."""
    root = pool_records.pool_state_dir(pool_id) / "manager"
    if not (root / "journal.sqlite").exists():
        return {}
    journal = Journal(root)
    try:
        return recovery.restore_jobs(journal, pool_id)
    finally:
        journal.close()


def read_file(pool_id: str, job: JobRecord, task_id: str, name: str, offset: int) -> FileChunk | None:
    """A task file from its node's folder on this machine."""
    record = job.tasks.get(task_id)
    if record is None or record.node is None:
        return None
    root = pool_records.pool_state_dir(pool_id) / "nodes" / str(record.node)
    return task_files.read_at(task_files.resolve(root, job.id, task_id, name), offset, READ_LIMIT)


def ledger_spans(path: Path, pool_id: str, since: float | None) -> Iterator[UsageSpan]:
    """The spans of the ledger file at ``path`` (open rows end now while its writer lives)."""
    if not path.exists():
        return iter(())
    store = LedgerStore(path)
    try:
        nodes, holds = store.nodes(), store.holds(since)
    finally:
        store.close()
    now = time.time()
    return clip(spans(pool_id, nodes, holds, now=now, alive=writer_alive(nodes, now)), since)


def ledger_path(pool_id: str, cluster: ClusterRecord | None) -> Path:
    """Which file holds the pool's ledger on this machine: its own (a local cluster's, also after
    the pool was deleted) or the copy of a remote one's."""
    own = ledger_dir(pool_id) / FILE
    if cluster is None:
        return own if own.exists() else ledger_dir(pool_id) / COPY
    return own if cluster.started_cluster else ledger_dir(pool_id) / COPY


def note(at: float, *, deleted: bool = False) -> str:
    """What ``pool show`` says of a pool that stopped itself."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))
    if deleted:
        return (f"deleted itself at {when} after its idle_timeout (autodelete): its agents and placement group "
                "are released; `orch pool create` makes it again")
    return (f"stopped itself at {when} after its idle_timeout; `orch jobs add` or `orch pool create` starts it "
            "again, jobs and history kept")
