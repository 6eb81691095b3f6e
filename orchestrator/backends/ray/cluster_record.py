"""What the Ray backend keeps in a pool's record (its ``engine`` part) to reach the pool again.

``address`` and ``token_file`` reach the cluster; for a local cluster orch started itself
(``started_cluster``), ``temp_dir`` and ``process_groups`` identify the processes to stop.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from orchestrator.records import pool_records
from orchestrator.records.pool_records import PoolRecord


@dataclass
class ClusterRecord:
    pool_id: str
    address: str | None = None
    token_file: str | None = None
    started_cluster: bool = False
    temp_dir: str | None = None
    process_groups: list[int] = field(default_factory=list)

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
