"""The Ray cost ledger's rows as priced spans (``model.UsageSpan``). Pure: no Ray, no files.

A node row is one pool node's life: from when its raylet started (a local cluster) or the pool
reserved it (a cluster at ``ray.address``) to when it left (stopped, lost, resized away or the
pool deleted). A hold row is the share of one node one task attempt held while it ran (a gang
holds each of its nodes). A task's share of a node is its CPUs or GPUs over the node's, whichever
is larger; where held shares add up to more than the whole node (it cannot happen with the
manager's placement, but rows are facts of the past), they are scaled down to fill it exactly.
What no attempt held is the pool's idle time.

Rows still open (no end) run to ``now`` while their writer lives (``alive``), else to the last
time the writer saw the node (``seen_at``): a pool that went down with its machine is not
charged for the time it was down. Prices are each node's price when it joined; a node without one
counts at 0 USD per hour (the ledger never invents a price).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from orchestrator.model import UsageSpan

EPSILON = 1e-9
Who = tuple[str, str, int]  # (job, task, attempt)


@dataclass(frozen=True)
class NodeRow:
    key: str
    index: int
    cpus: float
    gpus: float
    price: float | None
    joined_at: float
    left_at: float | None
    seen_at: float

    def end(self, now: float, alive: bool) -> float:
        if self.left_at is not None:
            return self.left_at
        return max(self.joined_at, now if alive else self.seen_at)

    def share_of(self, cpus: float, gpus: float) -> float:
        """The fraction of this node ``cpus`` and ``gpus`` are (see ``share``)."""
        return share(cpus, gpus, node_cpus=self.cpus, node_gpus=self.gpus)


def share(cpus: float, gpus: float, *, node_cpus: float, node_gpus: float) -> float:
    """The fraction of a node of ``node_cpus`` and ``node_gpus`` that ``cpus`` and ``gpus`` are:
    the larger of the two, at most the whole node."""
    parts = [cpus / node_cpus if node_cpus > 0 else 0.0, gpus / node_gpus if node_gpus > 0 else 0.0]
    return min(1.0, max(parts))


@dataclass(frozen=True)
class HoldRow:
    job_id: str
    task_id: str
    attempt: int
    node_key: str
    cpus: float
    gpus: float
    started_at: float
    ended_at: float | None


def spans(pool_id: str, nodes: Iterable[NodeRow], holds: Iterable[HoldRow], *, now: float,
          alive: bool) -> Iterator[UsageSpan]:
    """Every node's time as spans: each attempt's share while it ran, and the idle rest."""
    by_node: dict[str, list[HoldRow]] = {}
    for hold in holds:
        by_node.setdefault(hold.node_key, []).append(hold)
    for node in nodes:
        yield from node_spans(pool_id, node, by_node.get(node.key, []), now=now, alive=alive)


def node_spans(pool_id: str, node: NodeRow, holds: list[HoldRow], *, now: float,
               alive: bool) -> Iterator[UsageSpan]:
    """One node's spans (see the module docstring): a sweep over the moments attempts start or end."""
    start, end = node.joined_at, node.end(now, alive)
    if end <= start:
        return
    price = node.price or 0.0
    events: dict[float, list[tuple[int, Who, float]]] = {start: [], end: []}
    for hold in holds:
        a = max(start, hold.started_at)
        b = min(end, hold.ended_at if hold.ended_at is not None else end)
        if b > a:
            who, share = (hold.job_id, hold.task_id, hold.attempt), node.share_of(hold.cpus, hold.gpus)
            events.setdefault(a, []).append((1, who, share))
            events.setdefault(b, []).append((-1, who, share))
    active: dict[Who, float] = {}
    runs: dict[Who | None, tuple[float, float]] = {}  # who -> (run start, share)
    for moment in sorted(events):
        for sign, who, share in events[moment]:
            if sign > 0:
                active[who] = active.get(who, 0.0) + share
            elif (left := active.get(who, 0.0) - share) > EPSILON:
                active[who] = left
            else:
                active.pop(who, None)
        shares = _shares(active) if moment < end else {}
        for who in [w for w, (_, share) in runs.items() if abs(shares.get(w, -1.0) - share) > EPSILON]:
            run_start, share = runs.pop(who)
            yield _span(pool_id, node, price, run_start, moment, share, who)
        for who, share in shares.items():
            runs.setdefault(who, (moment, share))


def _shares(active: dict[Who, float]) -> dict[Who | None, float]:
    """Each holder's share, scaled down to the whole node if they add up to more; idle the rest."""
    total = sum(active.values())
    scale = 1.0 / total if total > 1.0 else 1.0
    shares: dict[Who | None, float] = {who: share * scale for who, share in active.items()}
    idle = 1.0 - total * scale
    if idle > EPSILON:
        shares[None] = idle
    return shares


def _span(pool_id: str, node: NodeRow, price: float, start: float, end: float, share: float,
          who: Who | None) -> UsageSpan:
    job_id, task_id = (who[0], who[1]) if who is not None else (None, None)
    return UsageSpan(pool_id=pool_id, node_id=node.key, start=start, end=end, price_per_hour=price, share=share,
                     job_id=job_id, task_id=task_id)
