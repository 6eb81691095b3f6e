"""Render results as a table (rich) or JSON; times as local clock text. No business logic."""
from __future__ import annotations

import dataclasses
import enum
import json
import time
from collections.abc import Mapping
from typing import Any, Iterable, Sequence

import click

OUTPUT_OPTION = click.option("--output", "-o", type=click.Choice(["table", "json"]), default="table",
                             show_default=True, help="Output format.")


def to_plain(value: Any) -> Any:
    """Dataclasses, enums and mappings as JSON-ready values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(to_plain(value), indent=2, sort_keys=True))


def emit_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=True).print(table)


def clock(timestamp: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(timestamp)) if timestamp else ""


def seconds(start: float | None, end: float | None) -> str:
    if not start:
        return ""
    return f"{(end or time.time()) - start:.1f}s"


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no tasks"


def progress_printer(quiet: bool = False) -> Any:
    """A ``progress(text)`` callback that prints steps to stderr."""
    def progress(text: str) -> None:
        if not quiet:
            click.echo(f"  … {text}", err=True)
    return progress
