"""Spend: a cost ledger's priced spans summed per pool, per job and per task, idle time apart.

Pure arithmetic over ``model.UsageSpan`` (what ``backend.CostLedger.usage`` yields). A span's
cost is its length in hours x the share of the node it covers x the node's price per hour.
``since`` clips spans that began earlier to the part after it. Node hours are share-weighted
(half a node for an hour is half a node hour), so a pool's node hours are its nodes' uptime.

Burn rate: a ledger ends the spans of a node still up at the time it was asked, so the spans
that reach the moment of the question (``asked``) are the ones accruing now; their price x share
summed is what the pool costs per hour right now. A stopped pool burns nothing.

Hours counted at no price (a ledger had no price for the node: a Ray cluster without
``price_per_node_hour``) are kept apart in ``unpriced_hours``, so reports can say so rather
than show a reassuring zero.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from orchestrator.model import UsageSpan

IDLE = "(idle)"


@dataclass
class Tally:
    """USD and share-weighted node hours; ``unpriced_hours`` were counted at 0 USD for want of a price."""

    usd: float = 0.0
    node_hours: float = 0.0
    unpriced_hours: float = 0.0

    def add(self, span: UsageSpan) -> None:
        hours = max(0.0, span.end - span.start) / 3600.0 * span.share
        self.usd += span.cost
        self.node_hours += hours
        if span.price_per_hour <= 0:
            self.unpriced_hours += hours


@dataclass
class PoolSpend:
    """What one pool cost: in all, idle (node time no task held), per job and per task."""

    pool_id: str
    total: Tally = field(default_factory=Tally)
    idle: Tally = field(default_factory=Tally)
    jobs: dict[str, Tally] = field(default_factory=dict)
    tasks: dict[tuple[str, str], Tally] = field(default_factory=dict)
    burn_per_hour: float = 0.0
    first: float | None = None  # the earliest moment the spans cover
    last: float | None = None  # the latest

    def job(self, job_id: str) -> Tally:
        return self.jobs.get(job_id, Tally())

    def task(self, job_id: str, task_id: str) -> Tally:
        return self.tasks.get((job_id, task_id), Tally())


def clip(spans: Iterable[UsageSpan], since: float | None = None, until: float | None = None) -> Iterator[UsageSpan]:
    """``spans`` cut to ``[since, until]``; spans wholly outside are dropped."""
    for span in spans:
        start = span.start if since is None else max(span.start, since)
        end = span.end if until is None else min(span.end, until)
        if end <= start:
            continue
        yield span if (start, end) == (span.start, span.end) else replace(span, start=start, end=end)


def summarize(pool_id: str, spans: Iterable[UsageSpan], *, since: float | None = None,
              asked: float | None = None) -> PoolSpend:
    """Sum ``spans`` (see the module docstring). ``asked``: when the ledger was read (for the burn rate)."""
    out = PoolSpend(pool_id=pool_id)
    for span in clip(spans, since):
        out.total.add(span)
        if span.job_id is None:
            out.idle.add(span)
        else:
            out.jobs.setdefault(span.job_id, Tally()).add(span)
            if span.task_id is not None:
                out.tasks.setdefault((span.job_id, span.task_id), Tally()).add(span)
        if asked is not None and span.start <= asked <= span.end:
            out.burn_per_hour += span.price_per_hour * span.share
        out.first = span.start if out.first is None else min(out.first, span.start)
        out.last = span.end if out.last is None else max(out.last, span.end)
    return out


def spent_until(spans: Iterable[UsageSpan], until: float, *, job_id: str | None = None) -> float:
    """USD of ``spans`` (of ``job_id`` only, if given) up to the moment ``until``."""
    return sum(span.cost for span in clip(spans, until=until) if job_id is None or span.job_id == job_id)
