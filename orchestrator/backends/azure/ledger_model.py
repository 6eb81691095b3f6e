"""What the Azure cost ledger keeps: observations of a pool as Batch reported it at one moment.

An ``Observation`` holds everything needed to price the pool's node time later, when Batch no
longer lists what it saw: every node then in the pool (its allocation time, whether it is a Spot
node, its state and since when, its last boot), the pool's allocation state and since when, the
node prices in force, and task attempts (job, task, node, start, end, task slots held). Times
are epoch seconds. Observations are written by whoever looks at the pool (``ledger_store``) and
only ever added to: reading merges them all (``ledger``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class NodeSeen:
    id: str
    dedicated: bool
    allocated: float
    state: str
    since: float
    boot: float | None = None


@dataclass(frozen=True)
class AttemptSeen:
    """One run of a task on a node: ``end`` None while it runs; ``slots`` of the node's task slots."""

    job: str
    task: str
    node: str
    start: float
    end: float | None
    slots: int = 1

    @property
    def key(self) -> tuple[str, str, float, str]:
        return self.job, self.task, round(self.start, 3), self.node


@dataclass(frozen=True)
class Prices:
    """USD per node hour; None: unknown (priced at 0, and said so)."""

    dedicated: float | None
    spot: float | None
    negotiated: bool = False  # the pool's price_per_node_hour: Spot nodes cost the same


@dataclass(frozen=True)
class Observation:
    at: float
    writer: str
    pool_exists: bool = True
    vm_size: str | None = None
    slots_per_node: int = 1
    allocation: str = "steady"
    allocation_since: float | None = None
    prices: Prices | None = None
    nodes: tuple[NodeSeen, ...] = ()
    attempts: tuple[AttemptSeen, ...] = ()
    lists_nodes: bool = True  # False: nodes were not read (a pool that is gone lists none)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Observation:
        prices = raw.get("prices")
        return cls(**{**raw, "prices": Prices(**prices) if prices else None,
                      "nodes": tuple(NodeSeen(**node) for node in raw.get("nodes") or ()),
                      "attempts": tuple(AttemptSeen(**attempt) for attempt in raw.get("attempts") or ())})

    @property
    def key(self) -> tuple[float, str]:
        return round(self.at, 3), self.writer

    def signature(self) -> str:
        """What changes between observations worth keeping: nodes and their states, the pool's
        allocation, prices and attempts (not the moment or the writer)."""
        body = {**asdict(self), "at": None, "writer": None}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Book:
    """Observations of one pool, keyed so the same one read twice counts once."""

    observations: dict[tuple[float, str], Observation] = field(default_factory=dict)

    def add(self, observation: Observation) -> None:
        self.observations[observation.key] = observation

    def ordered(self) -> list[Observation]:
        return sorted(self.observations.values(), key=lambda o: (o.at, o.writer))

    def thinned(self) -> list[Observation]:
        """The observations without ones that repeat the one before (the last is always kept)."""
        kept: list[Observation] = []
        ordered = self.ordered()
        for index, observation in enumerate(ordered):
            last = index == len(ordered) - 1
            if last or not kept or kept[-1].signature() != observation.signature():
                kept.append(observation)
        return kept


def dumps(observations: list[Observation]) -> bytes:
    return json.dumps([o.as_json() for o in observations], sort_keys=True).encode()


def loads(data: bytes) -> list[Observation]:
    raw = json.loads(data)
    return [Observation.from_json(item) for item in (raw if isinstance(raw, list) else [raw])]
