"""The pools orch knows on this machine: one JSON record per pool under ``$ORCH_HOME/pools``.

A record says which backend holds the pool, the spec it was made with, where it is in its
lifecycle, and ``engine``: what its backend needs to reach it again (for a local Ray cluster its
address, token file and the processes orch started; for Azure the credentials file). The core's
pool verbs (``orchestrator.pools``) create and remove records and set ``state`` and ``spec``;
a backend writes only its ``engine`` part, through ``save_engine``. Writes are atomic (temp
file + rename). Every id is checked (``SpecError``) before a path is built from it.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.errors import NotFoundError
from orchestrator.records.home import orch_home, pool_state_dir, private_dir
from orchestrator.spec.ids import check_id
from orchestrator.spec.pool import PoolSpec

__all__ = ["PoolRecord", "all_records", "load", "pool_state_dir", "remove", "require", "retire", "retired_records",
           "save", "save_engine"]
_LEGACY_ENGINE_KEYS = ("address", "token_file", "started_cluster", "temp_dir", "process_groups")


@dataclass
class PoolRecord:
    id: str
    backend: str
    spec: dict[str, Any]
    created_at: float
    state: str = "creating"  # creating | ready | deleting
    engine: dict[str, Any] = field(default_factory=dict)

    def pool_spec(self) -> PoolSpec:
        """The spec the pool was created (or last resized) with."""
        return PoolSpec.model_validate(self.spec)


def pools_dir() -> Any:
    return orch_home() / "pools"


def save(record: PoolRecord) -> None:
    check_id(record.id, "pool id")
    directory = pools_dir()
    private_dir(directory)
    tmp = directory / f".{record.id}.json.tmp"
    tmp.write_text(json.dumps(asdict(record), indent=2, sort_keys=True))
    tmp.replace(directory / f"{record.id}.json")


def save_engine(pool_id: str, engine: dict[str, Any]) -> None:
    """Replace the backend's part of an existing record (``NotFoundError`` if there is none)."""
    record = require(pool_id)
    record.engine = dict(engine)
    save(record)


def load(pool_id: str) -> PoolRecord | None:
    path = pools_dir() / f"{check_id(pool_id, 'pool id')}.json"
    try:
        return _from_json(json.loads(path.read_text()))
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
            records.append(_from_json(json.loads(path.read_text())))
        except (ValueError, TypeError, KeyError):
            continue
    return records


def remove(pool_id: str) -> None:
    (pools_dir() / f"{check_id(pool_id, 'pool id')}.json").unlink(missing_ok=True)


def retire(pool_id: str) -> None:
    """Remove a deleted pool's record, keeping a copy under ``pools/retired`` (what its cost ledger
    was kept under, and which backend reads it back: ``orch cost`` reports deleted pools too)."""
    record = load(pool_id)
    if record is None:
        return
    directory = private_dir(pools_dir() / "retired")
    tmp = directory / f".{record.id}.json.tmp"
    tmp.write_text(json.dumps({**asdict(record), "deleted_at": time.time()}, indent=2, sort_keys=True))
    tmp.replace(directory / f"{record.id}.json")
    remove(pool_id)


def retired_records() -> list[PoolRecord]:
    """Records of pools deleted from this machine (the latest of each id), oldest id first."""
    directory = pools_dir() / "retired"
    records = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            records.append(_from_json(json.loads(path.read_text())))
        except (ValueError, TypeError, KeyError):
            continue
    return records


def _from_json(data: dict[str, Any]) -> PoolRecord:
    """A record from its JSON; records of orch 0.1's first layout (engine facts at the top level,
    ``extra`` for Azure's, every pool with a ``ray:`` block) are read into this one."""
    engine = dict(data.get("engine") or data.get("extra") or {})
    engine.update({key: data[key] for key in _LEGACY_ENGINE_KEYS if key in data})
    spec = dict(data["spec"])
    if spec.get("backend", "ray") != "ray":
        spec.pop("ray", None)
    return PoolRecord(id=data["id"], backend=data["backend"], spec=spec, created_at=data["created_at"],
                      state=data.get("state", "creating"), engine=engine)
