"""``orch validate``, ``orch schema``, ``orch init`` and ``orch completion``: no backend involved."""
from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path

import click

from orchestrator.errors import OrchError, SpecError

TEMPLATE_FILES = {"pool.yaml": "pool.yaml", "jobs/hello.yaml": "hello.yaml"}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
def validate(files: tuple[Path, ...]) -> None:
    """Check pool and job FILES (told apart by their keys) without touching any backend."""
    from orchestrator.spec.loader import load_any
    from orchestrator.spec.pool import PoolFields

    problems: list[OrchError] = []
    for path in files:
        try:
            spec = load_any(path)
            for warning in spec.block.warnings() if isinstance(spec, PoolFields) else []:
                click.echo(f"warning: {path}: {warning}", err=True)
            click.echo(f"ok: {path} ({type(spec).__name__.removesuffix('Spec').lower()} {spec.id!r})")
        except OrchError as exc:
            problems.append(exc)
            click.echo(f"error: {exc}", err=True)
    if problems:
        raise SpecError(f"{len(problems)} of {len(files)} file(s) invalid")


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
