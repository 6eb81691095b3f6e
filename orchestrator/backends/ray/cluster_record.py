"""What the Ray backend keeps in a pool's record (its ``engine`` part) to reach the pool again.

``address`` and ``token_file`` reach the cluster; for a local cluster orch started itself
(``started_cluster``), ``nodes`` holds each node's process marks (what orch may stop),
``exposed`` whether it listens beyond 127.0.0.1, and ``stopped_at`` when it stopped itself after
its idle timeout (``autostop``; cleared when it is started again).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from orchestrator.backends.ray.local_cluster import NodeMarks
from orchestrator.backends.ray.process_marks import ProcessMark
from orchestrator.records import pool_records
from orchestrator.records.pool_records import PoolRecord


@dataclass
class ClusterRecord:
    pool_id: str
    address: str | None = None
    token_file: str | None = None
    started_cluster: bool = False
    temp_dir: str | None = None
    nodes: list[list[list[object]]] = field(default_factory=list)
    exposed: bool = False
    stopped_at: float | None = None

    @property
    def loopback(self) -> bool:
        """Its nodes listen on 127.0.0.1 only (a local cluster orch started, not exposed)."""
        return self.started_cluster and not self.exposed

    def node_marks(self) -> list[NodeMarks]:
        """Each node's marks (an unreadable entry proves nothing and is dropped)."""
        return [tuple(mark for mark in map(ProcessMark.load, node) if mark is not None) for node in self.nodes]

    def set_node_marks(self, nodes: list[NodeMarks]) -> None:
        self.nodes = [[mark.dump() for mark in node] for node in nodes]

    @classmethod
    def of(cls, record: PoolRecord) -> ClusterRecord:
        known = {f.name for f in fields(cls)} - {"pool_id"}
        values: dict[str, Any] = {key: value for key, value in record.engine.items() if key in known}
        return cls(pool_id=record.id, **values)

    def save(self) -> None:
        """Journal it in the pool record (before anything relies on it)."""
        engine = asdict(self)
        engine.pop("pool_id")
        pool_records.save_engine(self.pool_id, engine)

    def clear(self) -> None:
        """Nothing of this pool runs any more."""
        pool_records.save_engine(self.pool_id, {})
