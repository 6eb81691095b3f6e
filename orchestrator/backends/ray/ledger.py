"""The Ray pool's cost ledger on disk: node time and task holds, kept apart from the journal.

One SQLite file (WAL) per pool, written by the pool manager (``cost_keeper``) and read by the
CLI (``RayBackend.usage``) and ``bench``. It is not the journal: a job deleted from the pool
leaves the journal but not the ledger, and the ledger of a local cluster lies under
``$ORCH_HOME/ledger/<pool>`` (``ledger_dir``), which pool delete does not remove, so a deleted
pool's spend stays readable. A pool on a cluster at ``ray.address`` keeps it beside its journal on
the head node; the CLI keeps a copy (``copy.sqlite``) each time it reads it.

Writes are batched by the manager and committed with ``synchronous=NORMAL``: a commit survives
the manager's process dying; what an OS crash might take back, the manager re-derives from its
journal when it starts (attempts it journaled but the ledger lacks).

Tables: ``nodes`` (a node's life: key, pool node index, CPUs, GPUs, USD per hour or NULL, joined,
left or NULL, last seen alive) and ``holds`` (an attempt's share of one node: job, task, attempt,
node key, CPUs, GPUs, started, ended or NULL). Rows are described in ``usage``.
"""
from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.backends.ray.usage import HoldRow, NodeRow
from orchestrator.records.home import orch_home, private_dir
from orchestrator.spec.ids import check_id

FILE = "ledger.sqlite"
COPY = "copy.sqlite"
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 3 * HEARTBEAT_SECONDS
"""A writer whose last heartbeat is older than this is gone: open rows end at their last sighting."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (key TEXT PRIMARY KEY, idx INTEGER, cpus REAL, gpus REAL, price REAL,
    joined_at REAL, left_at REAL, seen_at REAL);
CREATE TABLE IF NOT EXISTS holds (job_id TEXT, task_id TEXT, attempt INTEGER, node_key TEXT, cpus REAL, gpus REAL,
    started_at REAL, ended_at REAL, PRIMARY KEY (job_id, task_id, attempt, node_key));
"""
Op = tuple[str, Sequence[Any]]

OPEN_NODE = "INSERT OR IGNORE INTO nodes VALUES (?, ?, ?, ?, ?, ?, NULL, ?)"
CLOSE_NODE = "UPDATE nodes SET left_at = ?, seen_at = MAX(seen_at, ?) WHERE key = ? AND left_at IS NULL"
HEARTBEAT = "UPDATE nodes SET seen_at = ? WHERE left_at IS NULL"
OPEN_HOLD = "INSERT OR IGNORE INTO holds VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
ADD_HOLD = "INSERT OR IGNORE INTO holds VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
CLOSE_HOLD = ("UPDATE holds SET ended_at = ? WHERE job_id = ? AND task_id = ? AND attempt = ? AND node_key = ? "
              "AND ended_at IS NULL")


def ledger_dir(pool_id: str) -> Path:
    """Where this machine keeps pool ``pool_id``'s ledger (a local cluster's) or its copy."""
    return orch_home() / "ledger" / check_id(pool_id, "pool id")


class LedgerStore:
    """One ledger file; thread-safe. ``write`` applies a batch of operations in one transaction."""

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        self.path = path
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def write(self, ops: Iterable[Op]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in ops:
                    self._db.execute(sql, tuple(params))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def nodes(self) -> list[NodeRow]:
        with self._lock:
            rows = self._db.execute("SELECT key, idx, cpus, gpus, price, joined_at, left_at, seen_at FROM nodes "
                                    "ORDER BY joined_at").fetchall()
        return [NodeRow(*row) for row in rows]

    def holds(self, since: float | None = None) -> list[HoldRow]:
        """Holds that had not ended by ``since`` (all without it)."""
        query = "SELECT * FROM holds" + ("" if since is None else " WHERE ended_at IS NULL OR ended_at > ?")
        with self._lock:
            rows = self._db.execute(query, () if since is None else (since,)).fetchall()
        return [HoldRow(*row) for row in rows]

    def replace_all(self, nodes: Iterable[NodeRow], holds: Iterable[HoldRow]) -> None:
        """Make this file a copy of another ledger's rows."""
        ops: list[Op] = [("DELETE FROM nodes", ()), ("DELETE FROM holds", ())]
        ops += [("INSERT INTO nodes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", astuple_node(n)) for n in nodes]
        ops += [(ADD_HOLD, astuple_hold(h)) for h in holds]
        self.write(ops)

    def close_open(self, at: float) -> int:
        """End every open row at ``at`` (the pool's processes are gone), or, for a node not seen
        alive for longer than ``STALE_SECONDS`` before that, soon after its last sighting (a pool
        that died with its machine is not charged for the time it was down). Returns the nodes closed."""
        with self._lock:
            count = self._db.execute("SELECT COUNT(*) FROM nodes WHERE left_at IS NULL").fetchone()[0]
        self.write([
            ("UPDATE holds SET ended_at = MAX(started_at, MIN(?, COALESCE((SELECT seen_at FROM nodes "
             "WHERE nodes.key = holds.node_key), ?) + ?)) WHERE ended_at IS NULL", (at, at, STALE_SECONDS)),
            ("UPDATE nodes SET left_at = MAX(joined_at, MIN(?, seen_at + ?)) WHERE left_at IS NULL",
             (at, STALE_SECONDS))])
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def astuple_node(node: NodeRow) -> tuple[Any, ...]:
    return (node.key, node.index, node.cpus, node.gpus, node.price, node.joined_at, node.left_at, node.seen_at)


def astuple_hold(hold: HoldRow) -> tuple[Any, ...]:
    return (hold.job_id, hold.task_id, hold.attempt, hold.node_key, hold.cpus, hold.gpus, hold.started_at,
            hold.ended_at)


def writer_alive(nodes: Iterable[NodeRow], now: float | None = None) -> bool:
    """Whether the ledger's writer (the pool manager) was heard from lately (see ``STALE_SECONDS``)."""
    seen = [node.seen_at for node in nodes if node.left_at is None]
    return bool(seen) and max(seen) >= (now if now is not None else time.time()) - STALE_SECONDS
