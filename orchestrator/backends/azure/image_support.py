"""When Azure Batch stops supporting a node agent SKU or a marketplace image, and the warnings
``orch validate`` prints about it.

The dates live in ``data/image_support.json`` (its ``about`` block names the Azure Batch notices
they come from and when they were checked). A retired agent or image gets a warning saying pool
creation will fail; one that retires within ``soon_days`` (365) a warning with the date; each
names what to use instead. Names compare case-insensitively. Pure: no Azure SDK.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class SupportEnd:
    """The end of Batch support for one agent SKU or image (``ends`` None: none announced)."""

    name: str
    ends: date | None
    source: str
    instead: str | None


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    text = resources.files("orchestrator.backends.azure").joinpath("data/image_support.json").read_text("utf-8")
    return json.loads(text)


def _entry(name: str, row: dict[str, Any]) -> SupportEnd:
    ends = date.fromisoformat(row["ends"]) if row["ends"] else None
    return SupportEnd(name=name, ends=ends, source=row["source"], instead=row["instead"])


def node_agent(sku: str) -> SupportEnd | None:
    """What the table knows about a node agent SKU (e.g. ``batch.node.ubuntu 22.04``)."""
    row = next((r for r in _table()["node_agents"] if r["sku"].lower() == sku.strip().lower()), None)
    return _entry(row["sku"], row) if row else None


def marketplace_image(publisher: str, offer: str, sku: str) -> SupportEnd | None:
    """What the table knows about a marketplace image."""
    wanted = (publisher.lower(), offer.lower(), sku.lower())
    row = next((r for r in _table()["images"]
                if (r["publisher"].lower(), r["offer"].lower(), r["sku"].lower()) == wanted), None)
    return _entry(f"{row['publisher']}/{row['offer']}/{row['sku']}", row) if row else None


def warning(key: str, end: SupportEnd | None, today: date) -> str | None:
    """A warning about ``end`` for the pool file key ``key``, or None when it is far off or unknown."""
    if end is None or end.ends is None:
        return None
    days = (end.ends - today).days
    instead = f"; use {end.instead} instead" if end.instead else ""
    if days <= 0:
        return (f"{key}: Batch support for {end.name} ended on {end.ends.isoformat()} ({end.source}): creating or "
                f"growing the pool will fail{instead}")
    if days <= int(_table()["about"]["soon_days"]):
        return (f"{key}: Batch support for {end.name} ends on {end.ends.isoformat()}, in {days} days "
                f"({end.source}): after that pools may be scaled to zero{instead}")
    return None
