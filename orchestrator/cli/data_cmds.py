"""``orch data ls | upload | download``: files in the blob container of an Azure pool."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from orchestrator.cli.context import settings
from orchestrator.cli.render import OUTPUT_OPTION, emit_json, emit_table
from orchestrator.errors import SpecError


@click.group()
def data() -> None:
    """List, upload and download files in the pool's blob container (Azure pools)."""


def _store() -> tuple[Any, str]:
    from orchestrator.backend import load_backend

    spec = settings().load_pool_spec()
    if spec.backend != "azure":
        raise SpecError(f"pool {spec.id!r} uses backend {spec.backend}; `orch data` works with Azure pools",
                        hint="on Ray pools, tasks read files from the workdir snapshot or shared disks")
    backend = load_backend("azure", config_dir=settings().config_dir)
    return backend.data_store(spec)  # type: ignore[attr-defined]


@data.command("ls")
@click.argument("prefix", default="")
@OUTPUT_OPTION
def ls(prefix: str, output: str) -> None:
    """List blobs under PREFIX (default: everything) with their sizes."""
    store, container = _store()
    entries = store.list(container, prefix)
    if output == "json":
        emit_json({"container": container, "blobs": entries})
        return
    emit_table(f"{container}/{prefix}", ["BLOB", "BYTES"], [(e.name, e.size) for e in entries])


@data.command("upload")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "prefix", default=None, help="Blob prefix (default: data/<name of SOURCE>).")
@OUTPUT_OPTION
def upload(source: Path, prefix: str | None, output: str) -> None:
    """Upload a file or folder; files whose content is already there are not sent again."""
    from orchestrator.backends.azure.data_transfer import upload as send

    store, container = _store()
    target = prefix if prefix is not None else f"data/{source.resolve().name}" if source.is_dir() else "data"
    report = send(store, container, source, target)
    if output == "json":
        emit_json({"container": container, "sent": report.sent, "unchanged": report.unchanged})
        return
    click.echo(f"{len(report.sent)} file(s) uploaded, {len(report.unchanged)} unchanged, to {container}/{target}")


@data.command("download")
@click.argument("prefix")
@click.argument("destination", default=".", type=click.Path(file_okay=False, path_type=Path))
def download(prefix: str, destination: Path) -> None:
    """Download every blob under PREFIX into DESTINATION (paths below PREFIX's folder are kept)."""
    from orchestrator.backends.azure.data_transfer import download as fetch

    store, container = _store()
    written = fetch(store, container, prefix, destination)
    click.echo(f"{len(written)} file(s) downloaded into {destination}")
