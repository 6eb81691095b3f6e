"""``orch data ls | upload | download``: files in the data store of the pool (e.g. a blob container)."""
from __future__ import annotations

from pathlib import Path

import click

from orchestrator.backend import DataStore
from orchestrator.cli.context import config_dir, settings
from orchestrator.cli.render import OUTPUT_OPTION, emit_json, emit_table


@click.group()
def data() -> None:
    """List, upload and download files in the pool's data store (an Azure pool's blob container)."""


def _store() -> DataStore:
    from orchestrator.pools import data_store

    return data_store(settings().load_pool_spec(), config_dir=config_dir())


@data.command("ls")
@click.argument("prefix", default="")
@OUTPUT_OPTION
def ls(prefix: str, output: str) -> None:
    """List files under PREFIX (default: everything) with their sizes."""
    store = _store()
    entries = store.list(prefix)
    if output == "json":
        emit_json({"container": store.location, "blobs": entries})
        return
    emit_table(f"{store.location}/{prefix}", ["BLOB", "BYTES"], [(e.name, e.size) for e in entries])


@data.command("upload")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--to", "prefix", default=None, help="Prefix (default: data/<name of SOURCE>).")
@OUTPUT_OPTION
def upload(source: Path, prefix: str | None, output: str) -> None:
    """Upload a file or folder; files whose content is already there are not sent again."""
    store = _store()
    target = prefix if prefix is not None else f"data/{source.resolve().name}" if source.is_dir() else "data"
    report = store.upload(source, target)
    if output == "json":
        emit_json({"container": store.location, "sent": list(report.sent), "unchanged": list(report.unchanged)})
        return
    click.echo(f"{len(report.sent)} file(s) uploaded, {len(report.unchanged)} unchanged, to {store.location}/{target}")


@data.command("download")
@click.argument("prefix")
@click.argument("destination", default=".", type=click.Path(file_okay=False, path_type=Path))
def download(prefix: str, destination: Path) -> None:
    """Download every file under PREFIX into DESTINATION (paths below PREFIX's folder are kept)."""
    written = _store().download(prefix, destination)
    click.echo(f"{len(written)} file(s) downloaded into {destination}")
