"""What every command needs: where the spec files are (``--config-dir``, ``--pool``), and loading
them with their warnings printed to stderr."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from orchestrator.errors import SpecError
from orchestrator.spec.job import JobSpec
from orchestrator.spec.loader import load_job, load_pool
from orchestrator.spec.pool import PoolSpec


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
        return load_pool(path, warn=warn)

    def load_job_spec(self, path: Path) -> JobSpec:
        return load_job(path, warn=warn)


def warn(text: str) -> None:
    """Print a warning to stderr."""
    click.echo(f"warning: {text}", err=True)


def settings() -> Settings:
    return click.get_current_context().find_root().obj  # type: ignore[no-any-return]


def config_dir() -> Path:
    """The ``--config-dir`` in effect (backends look for credentials there first)."""
    return settings().config_dir
