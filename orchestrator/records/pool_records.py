"""The pools orch knows on this machine: one JSON record per pool under ``$ORCH_HOME/pools``.

A record says which backend holds the pool and how to reach it (for a local Ray cluster: its
address, token file and the processes orch started). Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import NotFoundError


def orch_home() -> Path:
    """``$ORCH_HOME`` or ``~/.orch``."""
    return Path(os.environ.get("ORCH_HOME") or Path.home() / ".orch")


@dataclass
class PoolRecord:
    id: str
    backend: str
    spec: dict[str, Any]
    created_at: float
    state: str = "creating"  # creating | ready | deleting
    address: str | None = None
    token_file: str | None = None
    started_cluster: bool = False
    temp_dir: str | None = None
    process_groups: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    node_roots: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def pools_dir() -> Path:
    return orch_home() / "pools"


def pool_state_dir(pool_id: str) -> Path:
    """Private folder of one pool: token, local cluster temp dir, node roots."""
    return orch_home() / "state" / pool_id


def save(record: PoolRecord) -> None:
    directory = pools_dir()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{record.id}.json.tmp"
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    tmp.replace(directory / f"{record.id}.json")


def load(pool_id: str) -> PoolRecord | None:
    path = pools_dir() / f"{pool_id}.json"
    try:
        return PoolRecord(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None


def require(pool_id: str) -> PoolRecord:
    record = load(pool_id)
    if record is None:
        known = ", ".join(r.id for r in all_records()) or "none"
        raise NotFoundError(f"pool {pool_id!r} does not exist (known pools: {known})",
                            hint="create it with `orch pool create`")
    return record


def all_records() -> list[PoolRecord]:
    directory = pools_dir()
    if not directory.is_dir():
        return []
    records = []
    for path in sorted(directory.glob("*.json")):
        try:
            records.append(PoolRecord(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return records


def remove(pool_id: str) -> None:
    (pools_dir() / f"{pool_id}.json").unlink(missing_ok=True)
