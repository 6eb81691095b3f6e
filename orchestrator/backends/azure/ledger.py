"""The Azure cost ledger: a pool's node time, priced and shared out to tasks, from observations.

Pure: given every ``Observation`` of a pool (the stored ones and one taken now), each node's
billed time is rebuilt and split among the tasks that held it:

- **Billed time** runs from the node's ``allocationTime`` until it left the pool, less the time a
  Spot node spent preempted (Batch does not bill preempted nodes). A node that is gone ended when
  the pool's allocation last settled after the node was last seen (the resize that removed it);
  a node of a deleted pool, when the deletion was seen done. Preemption runs from the node's move
  to ``preempted`` until it was seen booting again.
- **Attempts** (a task on a node from its start to its end; a multi-instance task has one on
  each of its nodes) hold ``slots / slots_per_node`` of the node. An attempt seen running that Batch no longer shows (retried, requeued, its job deleted)
  ended when the next attempt of the task started, its node was preempted or left, whichever came
  first. Node time no attempt held is the pool's own: idle spans, with no job.
- **Prices**: the pool's ``price_per_node_hour`` for every node, else orch's VM table (dedicated
  or Spot); a size the table has no price for costs 0 (``Prices`` says it is unknown).

Every span's cost is ``(end - start) / 3600 * share * price_per_hour``; for each node the shares
add up to its billed time exactly (attempts that overlap by more than the node are scaled down).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from orchestrator.backends.azure.ledger_model import (
    AttemptSeen,
    Book,
    NodeSeen,
    Observation,
    Prices,
)
from orchestrator.model import UsageSpan


@dataclass(frozen=True)
class NodeBill:
    id: str
    dedicated: bool
    billed: tuple[tuple[float, float], ...]  # (start, end) stretches it was billed


def usage(pool_id: str, book: Book, now: float, *, since: float | None = None) -> list[UsageSpan]:
    """The pool's spans (see the module docstring), clipped to start at ``since``."""
    ordered = book.ordered()
    if not ordered:
        return []
    prices = next((o.prices for o in reversed(ordered) if o.prices is not None), Prices(None, None))
    slots = next((o.slots_per_node for o in reversed(ordered) if o.slots_per_node), 1)
    bills = node_bills(ordered, now)
    attempts = settled_attempts(ordered, bills, now)
    spans: list[UsageSpan] = []
    for bill in bills.values():
        price = (prices.dedicated if bill.dedicated or prices.negotiated else prices.spot) or 0.0
        held = [a for a in attempts if a.node == bill.id]
        spans += _node_spans(pool_id, bill, held, slots, price)
    return [_clip(span, since) for span in spans if since is None or span.end > since]


def node_bills(ordered: list[Observation], now: float) -> dict[str, NodeBill]:
    sightings: dict[str, list[tuple[float, NodeSeen]]] = defaultdict(list)
    for observation in ordered:
        for node in observation.nodes:
            sightings[node.id].append((observation.at, node))
    bills = {}
    for node_id, seen in sightings.items():
        allocated = min(node.allocated for _, node in seen)
        end = _node_end(node_id, seen[-1][0], ordered, now)
        billed = _subtract([(allocated, end)], _preempted(seen, end))
        bills[node_id] = NodeBill(node_id, seen[-1][1].dedicated, tuple(billed))
    return bills


def _node_end(node_id: str, last_seen: float, ordered: list[Observation], now: float) -> float:
    later = [o for o in ordered if o.at > last_seen and (o.lists_nodes or not o.pool_exists)]
    if not later:
        return now  # listed in the latest look at the pool: still in it
    first = later[0]
    if not first.pool_exists:
        return first.at
    if first.allocation_since is not None and last_seen < first.allocation_since <= first.at:
        return first.allocation_since
    return last_seen


def _preempted(seen: list[tuple[float, NodeSeen]], end: float) -> list[tuple[float, float]]:
    stretches: dict[float, float] = {}
    for index, (_, node) in enumerate(seen):
        if node.state != "preempted" or node.since in stretches:
            continue
        after = next((later for _, later in seen[index + 1:] if later.state != "preempted"), None)
        if after is None:
            stretches[node.since] = end
        else:
            resumed = after.boot if after.boot is not None and after.boot > node.since else after.since
            stretches[node.since] = max(node.since, resumed)
    return sorted(stretches.items())


def _subtract(spans: list[tuple[float, float]], holes: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out = []
    for start, end in spans:
        cursor = start
        for hole_start, hole_end in holes:
            if hole_end <= cursor or hole_start >= end:
                continue
            if hole_start > cursor:
                out.append((cursor, hole_start))
            cursor = max(cursor, hole_end)
        if cursor < end:
            out.append((cursor, end))
    return out


def settled_attempts(ordered: list[Observation], bills: dict[str, NodeBill], now: float) -> list[AttemptSeen]:
    """Every attempt once, with an end (see the module docstring)."""
    merged: dict[tuple[str, str, float, str], AttemptSeen] = {}
    for observation in ordered:
        for attempt in observation.attempts:
            known = merged.get(attempt.key)
            if known is None or (known.end is None and attempt.end is not None):
                merged[attempt.key] = attempt
    latest = ordered[-1]
    running_now = {a.key for a in latest.attempts if a.end is None}
    starts: dict[tuple[str, str], list[float]] = defaultdict(list)
    for attempt in merged.values():
        starts[(attempt.job, attempt.task)].append(attempt.start)
    settled = []
    for attempt in merged.values():
        bill = bills.get(attempt.node)
        stops = [end for _, end in bill.billed if end > attempt.start] if bill else []  # preempted, or left
        end = attempt.end
        if end is None:
            later = [s for s in starts[(attempt.job, attempt.task)] if s > attempt.start]
            end = now if attempt.key in running_now else min([*later, *stops[:1], now])
        settled.append(AttemptSeen(attempt.job, attempt.task, attempt.node, attempt.start, max(attempt.start, end),
                                   attempt.slots))
    return settled


def _node_spans(pool_id: str, bill: NodeBill, held: list[AttemptSeen], slots: int, price: float) -> list[UsageSpan]:
    spans: list[UsageSpan] = []
    for start, end in bill.billed:
        inside = [a for a in held if a.start < end and a.end > start]
        edges = sorted({start, end, *(max(start, a.start) for a in inside), *(min(end, a.end) for a in inside)})
        for low, high in zip(edges, edges[1:]):
            holders = [a for a in inside if a.start <= low and a.end >= high]
            shares = [min(1.0, a.slots / max(1, slots)) for a in holders]
            scale = 1.0 / sum(shares) if sum(shares) > 1.0 else 1.0
            for attempt, share in zip(holders, shares):
                spans.append(UsageSpan(pool_id, bill.id, low, high, price, share * scale, attempt.job, attempt.task,
                                       spot=not bill.dedicated))
            idle = 1.0 - sum(shares) * scale
            if idle > 1e-9:
                spans.append(UsageSpan(pool_id, bill.id, low, high, price, idle, spot=not bill.dedicated))
    return _merged(spans)


def _merged(spans: list[UsageSpan]) -> list[UsageSpan]:
    """Contiguous spans of the same holder and share as one."""
    out: list[UsageSpan] = []
    open_by: dict[tuple[object, ...], int] = {}
    for span in sorted(spans, key=lambda s: (s.start, s.job_id or "", s.task_id or "")):
        key = (span.job_id, span.task_id, round(span.share, 9))
        index = open_by.get(key)
        if index is not None and abs(out[index].end - span.start) < 1e-9:
            previous = out[index]
            out[index] = UsageSpan(previous.pool_id, previous.node_id, previous.start, span.end,
                                   previous.price_per_hour, previous.share, previous.job_id, previous.task_id,
                                   previous.spot)
            continue
        open_by[key] = len(out)
        out.append(span)
    return out


def _clip(span: UsageSpan, since: float | None) -> UsageSpan:
    if since is None or span.start >= since:
        return span
    return UsageSpan(span.pool_id, span.node_id, since, span.end, span.price_per_hour, span.share, span.job_id,
                     span.task_id, span.spot)
