"""What each node of a pool cost in time: its life from allocation to removal, the stretches it
spent preempted, and the pool statistics Batch rolls up from them.

Batch bills a node from its allocation until it leaves the pool (``leavingpool`` included), and
a Spot node not while it is preempted. The service keeps every node's life, after the node and
even the pool are gone: tests and benchmarks read them (``GET /_admin/nodelives?poolId=`` or
``BatchService.node_lives``) as the truth a cost ledger must agree with.

Pool statistics (``GET /pools/{id}?$expand=stats``, 2025-06-01: ``stats.usageStats.
dedicatedCoreTime``, the wall-clock time of the pool's dedicated nodes' cores) are rolled up
periodically, as Batch does ("the typical delay is about 30 minutes":
``settings.stats_rollup_s``): between roll-ups a read shows the last one. Spot nodes are not in
them. ``resourceStats`` (CPU, memory, disk and network use) is not modelled and not sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .entities import NodeRecord, PoolRecord
from .specs import vm_vcpus
from .state import BatchState
from .timekeeping import format_timestamp, utc_now


@dataclass
class NodeLife:
    """One node's billed life (epoch seconds): allocated, removed (None while in the pool), and
    preempted stretches ``[start, end or None]``."""

    pool_id: str
    node_id: str
    dedicated: bool
    vcpus: int
    allocated: float
    removed: float | None = None
    preempted: list[list[float | None]] = field(default_factory=list)

    def billed_seconds(self, until: float) -> float:
        end = min(until, self.removed if self.removed is not None else until)
        total = max(0.0, end - self.allocated)
        for start, stop in self.preempted:
            assert start is not None
            total -= max(0.0, min(end, stop if stop is not None else end) - start)
        return max(0.0, total)

    def as_json(self) -> dict[str, Any]:
        return {"poolId": self.pool_id, "nodeId": self.node_id, "isDedicated": self.dedicated, "vcpus": self.vcpus,
                "allocated": self.allocated, "removed": self.removed, "preempted": [list(p) for p in self.preempted]}


def lives_of(state: BatchState, pool_id: str) -> list[NodeLife]:
    """The pool's node lives (a deleted pool's too); lock held."""
    return state.node_lives.setdefault(pool_id.lower(), [])


def _life(state: BatchState, node: NodeRecord) -> NodeLife | None:
    return next((life for life in reversed(lives_of(state, node.pool_id)) if life.node_id == node.id), None)


def allocated(state: BatchState, pool: PoolRecord, node: NodeRecord) -> None:
    """A node joined the pool; lock held."""
    lives_of(state, pool.id).append(NodeLife(pool.id, node.id, node.is_dedicated,
                                             vm_vcpus(str(pool.spec.get("vmSize") or "")) or 1,
                                             node.allocation_time.timestamp()))


def removed(state: BatchState, node: NodeRecord) -> None:
    """A node left the pool; lock held."""
    life = _life(state, node)
    if life is not None and life.removed is None:
        now = utc_now().timestamp()
        life.removed = now
        if life.preempted and life.preempted[-1][1] is None:
            life.preempted[-1][1] = now


def preempted(state: BatchState, node: NodeRecord) -> None:
    life = _life(state, node)
    if life is not None:
        life.preempted.append([utc_now().timestamp(), None])


def reallocated(state: BatchState, node: NodeRecord) -> None:
    """A preempted node got capacity again (billing resumes); lock held."""
    life = _life(state, node)
    if life is not None and life.preempted and life.preempted[-1][1] is None:
        life.preempted[-1][1] = utc_now().timestamp()


def roll_up(state: BatchState, pool: PoolRecord) -> None:
    """Refresh the pool's statistics when a roll-up is due; lock held."""
    now = utc_now()
    last = pool.stats_updated or pool.revision.creation_time
    if (now - last).total_seconds() < state.settings.stats_rollup_s:
        return
    pool.stats_updated = now
    pool.stats_core_seconds = sum(life.vcpus * life.billed_seconds(now.timestamp())
                                  for life in lives_of(state, pool.id) if life.dedicated)


def stats_json(pool: PoolRecord, base_url: str) -> dict[str, Any]:
    """``stats`` of ``$expand=stats``: as of the last roll-up."""
    start = format_timestamp(pool.revision.creation_time)
    updated = format_timestamp(pool.stats_updated or pool.revision.creation_time)
    usage = {"startTime": start, "lastUpdateTime": updated,
             "dedicatedCoreTime": _duration(timedelta(seconds=pool.stats_core_seconds))}
    return {"url": f"{pool.url(base_url)}/stats", "startTime": start, "lastUpdateTime": updated,
            "usageStats": usage}


def _duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"PT{int(hours)}H{int(minutes)}M{secs:.3f}S"


def epoch(moment: datetime) -> float:
    return moment.astimezone(timezone.utc).timestamp()
