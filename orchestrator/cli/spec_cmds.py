"""``orch validate``, ``orch schema``, ``orch init`` and ``orch completion``: no backend involved."""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.errors import OrchError, SpecError

if TYPE_CHECKING:
    from orchestrator.cli.context import Settings
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.pool import PoolSpec

TEMPLATE_FILES = {"pool.yaml": "pool.yaml", "jobs/hello.yaml": "hello.yaml"}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check pool and job FILES (told apart by their keys) without touching any backend.

    Job files also get every check submission runs that needs no backend: sweep placeholders and
    factories, inputs, the workdir's size, and whether the tasks fit their pool when the pool is
    known (a pool file given alongside, the config's pool file, or a pool created here).
    """
    from orchestrator.cli.context import settings, warn
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.loader import load_any
    from orchestrator.spec.pool import PoolFields, PoolSpec

    loaded: list[tuple[Path, PoolSpec | JobSpec]] = []
    problems = 0
    for path in files:
        try:
            spec = load_any(path, warn=warn)
            for warning in spec.block.warnings() if isinstance(spec, PoolFields) else []:
                warn(f"{path}: {warning}")
            loaded.append((path, spec))
        except OrchError as exc:
            problems += 1
            click.echo(f"error: {exc}", err=True)
    pools = [spec for _, spec in loaded if isinstance(spec, PoolSpec)]
    for path, spec in loaded:
        try:
            note = _check_job(path, spec, pools, settings()) if isinstance(spec, JobSpec) else ""
            click.echo(f"ok: {path} ({type(spec).__name__.removesuffix('Spec').lower()} {spec.id!r}{note})")
        except OrchError as exc:
            problems += 1
            click.echo(f"error: {exc}", err=True)
    if problems:
        raise SpecError(f"{problems} of {len(files)} file(s) invalid")


def _check_job(path: Path, job: JobSpec, pools: list[PoolSpec], config: Settings) -> str:
    """Submission's backend-free checks of ``job`` (warnings printed); what the ok line adds."""
    from orchestrator.cli.context import warn
    from orchestrator.jobs import check_offline
    from orchestrator.pools import known_spec
    from orchestrator.spec.loader import place_error

    pool = known_spec(job.pool, pools, config.pool_path())
    try:
        for warning in check_offline(job, base_dir=config.config_dir, pool=pool):
            warn(f"{path}: {warning}")
    except SpecError as exc:
        raise place_error(exc, path) from None
    return f", fits pool {pool.id!r}" if pool else f"; pool {job.pool!r} not known here, so not checked against it"


@click.command()
@click.option("--kind", type=click.Choice(["pool", "job"]), default="job", show_default=True)
def schema(kind: str) -> None:
    """Print the JSON Schema of pool or job files (for editors' YAML language servers)."""
    from orchestrator.spec.job import JobSpec
    from orchestrator.spec.pool import PoolSpec

    model = PoolSpec if kind == "pool" else JobSpec
    click.echo(json.dumps(model.model_json_schema(), indent=2))


@click.command()
@click.argument("directory", required=False, default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init(directory: Path, force: bool) -> None:
    """Write starter pool.yaml and jobs/hello.yaml into DIRECTORY (never overwrites without --force)."""
    source = resources.files("orchestrator") / "templates"
    targets = {directory / rel: source / name for rel, name in TEMPLATE_FILES.items()}
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        raise SpecError(f"refusing to overwrite {', '.join(existing)}", hint="pass --force to overwrite")
    for target, template in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(template.read_text(encoding="utf-8"), encoding="utf-8")
        click.echo(f"wrote {target}")
    click.echo("next: orch pool create && orch jobs add jobs/hello.yaml --tail")


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script for SHELL, e.g. ``eval "$(orch completion bash)"``."""
    from click.shell_completion import get_completion_class

    from orchestrator.cli.root import cli

    cls = get_completion_class(shell)
    assert cls is not None
    os.environ.setdefault("ORCH_COMPLETE", f"{shell}_source")
    click.echo(cls(cli, {}, "orch", "_ORCH_COMPLETE").source())
