"""What every command needs: where the spec files are, and which backend holds a pool or job."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from orchestrator.records import job_index, pool_records
from orchestrator.backend import Backend, load_backend
from orchestrator.errors import NotFoundError, SpecError
from orchestrator.model import JobInfo
from orchestrator.spec import JobSpec, PoolSpec, load_job, load_pool


@dataclass
class Settings:
    config_dir: Path
    pool_file: Path | None = None

    def pool_path(self, explicit: Path | None = None) -> Path:
        return explicit or self.pool_file or self.config_dir / "pool.yaml"

    def load_pool_spec(self, explicit: Path | None = None) -> PoolSpec:
        path = self.pool_path(explicit)
        if not path.exists():
            raise SpecError(f"pool file not found: {path}",
                            hint="pass a file, set --config-dir / ORCH_CONFIG_DIR, or run `orch init`")
        return load_pool(path)

    def load_job_spec(self, path: Path) -> JobSpec:
        return load_job(path)


def settings() -> Settings:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


def backend_for_pool(pool_id: str) -> tuple[Backend, PoolSpec]:
    """The backend holding ``pool_id`` and the spec it was created with."""
    record = pool_records.require(pool_id)
    return load_backend(record.backend, config_dir=settings().config_dir), PoolSpec.model_validate(record.spec)


def backend_for_job(job_id: str) -> Backend:
    entry = job_index.lookup(job_id)
    if entry is not None:
        return load_backend(entry.backend, config_dir=settings().config_dir)
    backends = {r.backend for r in pool_records.all_records()}
    for name in sorted(backends):
        backend = load_backend(name, config_dir=settings().config_dir)
        if backend.get_job(job_id) is not None:
            return backend
    raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")


def existing_job(job_id: str) -> tuple[Backend, JobInfo]:
    """The backend holding ``job_id`` and the job; ``NotFoundError`` if there is none."""
    backend = backend_for_job(job_id)
    info = backend.get_job(job_id)
    if info is None:
        raise NotFoundError(f"job {job_id!r} does not exist", hint="see `orch jobs list`")
    return backend, info


def latest_job_id() -> str:
    """The most recently submitted job from this machine."""
    for entry in job_index.entries():
        if pool_records.load(entry.pool_id) is not None:
            return entry.id
    raise NotFoundError("no jobs yet", hint="submit one with `orch jobs add FILE`")


def all_backends() -> list[Backend]:
    return [load_backend(name, config_dir=settings().config_dir) for name in sorted({r.backend for r in pool_records.all_records()})]
