"""Pool verbs the CLI calls: create, list, show, resize, delete, price, data store, tear down.

Shared bookkeeping lives here once, for every backend: the local pool record is written before
the backend acts (``creating``, ``deleting``) and after (``ready``, the new spec, removal), and a
deleted pool's jobs leave the job index. Backends do the engine work.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from orchestrator.backend import (
    Backend,
    DataStore,
    DataStoreHost,
    PriceList,
    ProgressFn,
    StorageTeardown,
    capability,
    load_backend,
    supports,
)
from orchestrator.cost import budgets
from orchestrator.errors import ConflictError, NotFoundError, OrchError
from orchestrator.model import JobRef, PoolInfo, PriceQuote
from orchestrator.records import job_index, pool_records
from orchestrator.records.pool_records import PoolRecord
from orchestrator.spec.loader import load_pool
from orchestrator.spec.pool import PoolSpec


def pool_backend(pool_id: str, *, config_dir: Path | None = None,
                 backend: Backend | None = None) -> tuple[Backend, PoolSpec]:
    """The backend holding ``pool_id`` and the spec it has now (``NotFoundError`` if unknown).

    ``backend`` (here and in the verbs below) is an instance to use instead of the registry's,
    for callers that build their own (tests, programs embedding orch)."""
    record = pool_records.require(pool_id)
    return backend or load_backend(record.backend, config_dir=config_dir), record.pool_spec()


def known_spec(pool_id: str, given: Iterable[PoolSpec] = (), pool_file: Path | None = None) -> PoolSpec | None:
    """The spec of pool ``pool_id`` if known without a backend: one of ``given``, the pool file if
    it loads and has that id, or this machine's record of the pool; else None."""
    for spec in given:
        if spec.id == pool_id:
            return spec
    if pool_file is not None and pool_file.is_file():
        try:
            from_file: PoolSpec | None = load_pool(pool_file)
        except OrchError:
            from_file = None
        if from_file is not None and from_file.id == pool_id:
            return from_file
    record = pool_records.load(pool_id)
    return record.pool_spec() if record is not None else None


def create_pool(spec: PoolSpec, *, config_dir: Path | None = None, progress: ProgressFn | None = None,
                backend: Backend | None = None) -> PoolInfo:
    """Create the pool (idempotent: an existing pool with this spec is just shown).

    The record is written first (``creating``), so a create interrupted after the backend started
    something can be resumed or deleted; a first create that fails with nothing recorded by the
    backend leaves no record."""
    record = pool_records.load(spec.id)
    if record is not None and record.backend != spec.backend:
        raise ConflictError(f"pool {spec.id!r} exists on backend {record.backend}", hint="use another pool id")
    if record is not None and record.state == "ready" and record.pool_spec() != spec:
        raise ConflictError(f"pool {spec.id!r} exists with other settings",
                            hint="use `orch pool resize` for the node count, or delete and create it again")
    backend = backend or load_backend(spec.backend, config_dir=config_dir)
    budgets.check_pool(spec, backend)
    if record is None:
        pool_records.save(PoolRecord(id=spec.id, backend=spec.backend, spec=spec.model_dump(mode="json"),
                                     created_at=time.time()))
    try:
        info = backend.ensure_pool(spec, progress=progress)
    except BaseException:
        failed = pool_records.load(spec.id)
        if record is None and failed is not None and not failed.engine:
            pool_records.remove(spec.id)  # the backend left nothing behind to clean up
        raise
    _update(spec.id, state="ready", spec=spec)
    return info


def list_pools(*, config_dir: Path | None = None) -> list[PoolInfo]:
    """Every pool orch knows on this machine, as its backend sees it now."""
    out = []
    for record in pool_records.all_records():
        info = load_backend(record.backend, config_dir=config_dir).get_pool(record.id)
        if info is not None:
            out.append(info)
    return out


def show_pool(pool_id: str, *, config_dir: Path | None = None) -> PoolInfo:
    backend, _ = pool_backend(pool_id, config_dir=config_dir)
    info = backend.get_pool(pool_id)
    if info is None:
        raise NotFoundError(f"pool {pool_id!r} does not exist", hint="see `orch pool list`")
    return info


def resize_pool(pool_id: str, nodes: int, *, config_dir: Path | None = None, progress: ProgressFn | None = None,
                backend: Backend | None = None) -> PoolInfo:
    """Bring the pool to ``nodes`` nodes (dedicated, unless it has only low-priority ones)."""
    backend, spec = pool_backend(pool_id, config_dir=config_dir, backend=backend)
    resized = spec.with_node_count(nodes)
    info = backend.resize_pool(resized, progress=progress)
    _update(pool_id, spec=resized)
    return info


def delete_pool(pool_id: str, *, force: bool = False, config_dir: Path | None = None,
                progress: ProgressFn | None = None, backend: Backend | None = None) -> None:
    """Delete the pool and everything orch started for it; its jobs leave the job index. Its
    record is retired, not lost: what its backend's cost ledger kept stays readable (``orch cost``)."""
    backend, _ = pool_backend(pool_id, config_dir=config_dir, backend=backend)
    backend.delete_pool(pool_id, force=force, progress=progress)
    forget_deleted(pool_id)


def forget_deleted(pool_id: str) -> None:
    """The local bookkeeping of a pool that was deleted (by ``delete_pool``, or by the pool itself
    at its idle timeout with ``autodelete``): its record retired, its jobs out of the job index."""
    pool_records.retire(pool_id)
    job_index.forget_pool(pool_id)


def quote(spec: PoolSpec, *, config_dir: Path | None = None) -> PriceQuote | None:
    """What the pool would cost per hour, or None when its backend has no price list."""
    backend = load_backend(spec.backend, config_dir=config_dir)
    return capability(backend, PriceList).quote(spec) if supports(backend, PriceList) else None


def data_store(spec: PoolSpec, *, config_dir: Path | None = None) -> DataStore:
    """The pool's data store (``UnsupportedError`` when its backend has none)."""
    return capability(load_backend(spec.backend, config_dir=config_dir), DataStoreHost).data_store(spec)


@dataclass(frozen=True)
class Removal:
    """What ``orch down`` would remove for a pool file: its jobs, the pool, and its storage."""

    spec: PoolSpec
    jobs: tuple[str, ...]
    pool_exists: bool
    storage: bool

    def items(self) -> list[str]:
        return ([f"job {job_id}" for job_id in self.jobs] + ([f"pool {self.spec.id}"] if self.pool_exists else [])
                + ([f"the stored data of pool {self.spec.id}"] if self.storage else []))


def plan_removal(spec: PoolSpec, *, storage: bool, config_dir: Path | None = None) -> Removal:
    """What removing the pool of ``spec`` involves (``storage``: if its backend keeps any)."""
    backend = load_backend(spec.backend, config_dir=config_dir)
    exists = pool_records.load(spec.id) is not None
    jobs = [info.id for info in backend.list_jobs(spec.id)] if exists else []
    jobs += [entry.id for entry in job_index.entries() if entry.pool_id == spec.id and entry.id not in jobs]
    return Removal(spec=spec, jobs=tuple(jobs), pool_exists=exists,
                   storage=storage and supports(backend, StorageTeardown))


def remove(removal: Removal, *, config_dir: Path | None = None, progress: ProgressFn | None = None) -> list[str]:
    """Carry out ``removal``; returns what was removed (jobs already gone are skipped)."""
    backend = load_backend(removal.spec.backend, config_dir=config_dir)
    removed: list[str] = []
    for job_id in removal.jobs:
        job_index.forget(job_id)
        if not removal.pool_exists:
            continue
        try:
            backend.delete_job(JobRef(removal.spec.id, job_id))
        except NotFoundError:
            continue
        removed.append(f"job {job_id}")
    if removal.pool_exists:
        delete_pool(removal.spec.id, force=True, config_dir=config_dir, progress=progress)
        removed.append(f"pool {removal.spec.id}")
    if removal.storage:
        removed += capability(backend, StorageTeardown).delete_storage(removal.spec)
    return removed


def _update(pool_id: str, *, state: str | None = None, spec: PoolSpec | None = None) -> None:
    record = pool_records.require(pool_id)
    if state is not None:
        record.state = state
    if spec is not None:
        record.spec = spec.model_dump(mode="json")
    pool_records.save(record)
