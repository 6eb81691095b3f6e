"""Where the Azure cost ledger keeps its observations, so what Batch no longer lists is not lost.

Two places, one format (``ledger_model.dumps``: a JSON list of observations per file), both only
ever added to, read together:

- the pool's blob container, under ``ledger/``: every writer can reach it, the pool's job
  managers on its nodes included (through a SAS URL), so what runs server-side records there
  while the CLI is gone; it stays after the pool is deleted (``orch down --storage`` removes it);
- ``$ORCH_HOME/ledgers/azure/<pool>/`` on the machine that ran orch: what this machine saw, for
  pools without a storage account, and after the pool and its record are gone.

A file is named ``<epoch ms>-<writer>-<content hash>.json`` (the same content is never stored
twice). A writer adds one only when what it sees differs from what it wrote last
(``Observation.signature``). When a reader finds more than ``COMPACT_AT`` files it writes one
holding them all, thinned (``Book.thinned``), and deletes those it read: files added meanwhile
stay, and observations read twice count once.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Protocol

from orchestrator.backends.azure.ledger_model import Book, Observation, dumps, loads
from orchestrator.records.home import orch_home, private_dir
from orchestrator.spec.ids import check_id

PREFIX = "ledger/"
COMPACT_AT = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def file_name(observations: list[Observation], writer: str) -> str:
    data = dumps(observations)
    newest = max(o.at for o in observations)
    return f"{int(newest * 1000):013d}-{_UNSAFE.sub('_', writer)[:40]}-{hashlib.sha256(data).hexdigest()[:12]}.json"


class Shelf(Protocol):
    """Named files: a blob prefix, or a local folder."""

    def names(self) -> list[str]: ...

    def read(self, name: str) -> bytes: ...

    def write(self, name: str, data: bytes) -> None: ...

    def delete(self, name: str) -> None: ...


class LocalShelf:
    def __init__(self, pool_id: str) -> None:
        self.folder = orch_home() / "ledgers" / "azure" / check_id(pool_id, "pool id")

    def names(self) -> list[str]:
        return sorted(path.name for path in self.folder.glob("*.json")) if self.folder.is_dir() else []

    def read(self, name: str) -> bytes:
        return (self.folder / name).read_bytes()

    def write(self, name: str, data: bytes) -> None:
        private_dir(self.folder)
        staging = self.folder / f".{name}.tmp"
        staging.write_bytes(data)
        staging.replace(self.folder / name)

    def delete(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    @property
    def last_written(self) -> Path:
        return self.folder / "last-signature"


class BlobShelf:
    """``ledger/`` in a blob container: ``store`` is a ``BlobStore`` or an object with the same
    ``names``/``get``/``put``/``delete_blob`` methods (the job manager's SAS container client)."""

    def __init__(self, store: Any, container: str) -> None:
        self.store, self.container = store, container

    def names(self) -> list[str]:
        return [name.removeprefix(PREFIX) for name in self.store.names(self.container, PREFIX)]

    def read(self, name: str) -> bytes:
        return bytes(self.store.get(self.container, PREFIX + name))

    def write(self, name: str, data: bytes) -> None:
        self.store.put(self.container, PREFIX + name, data, skip_same=False)

    def delete(self, name: str) -> None:
        self.store.delete_blob(self.container, PREFIX + name)


class LedgerStore:
    """Reads and writes a pool's observations on its shelves (see the module docstring)."""

    def __init__(self, shelves: list[Shelf], *, writer: str, local: LocalShelf | None = None) -> None:
        self.shelves, self.writer, self.local = shelves, writer, local
        self._seen: dict[str, list[Observation]] = {}  # files are immutable: read each once

    def book(self) -> Book:
        book = Book()
        for shelf in self.shelves:
            names = shelf.names()
            for name in names:
                if name not in self._seen:
                    self._seen[name] = loads(shelf.read(name))
                for observation in self._seen[name]:
                    book.add(observation)
            if len(names) > COMPACT_AT:
                self._compact(shelf, names)
        return book

    def record(self, observation: Observation) -> bool:
        """Keep ``observation`` unless it says what this writer last wrote; True when kept."""
        signature = observation.signature()
        if self.local is not None and _read_text(self.local.last_written) == f"{self.writer}:{signature}":
            return False
        name = file_name([observation], self.writer)
        data = dumps([observation])
        for shelf in self.shelves:
            shelf.write(name, data)
        self._seen[name] = [observation]
        if self.local is not None:
            private_dir(self.local.folder)
            self.local.last_written.write_text(f"{self.writer}:{signature}")
        return True

    def _compact(self, shelf: Shelf, names: list[str]) -> None:
        book = Book()
        for name in names:
            for observation in self._seen[name]:
                book.add(observation)
        kept = book.thinned()
        merged = file_name(kept, f"{self.writer}-compacted")
        shelf.write(merged, dumps(kept))
        self._seen[merged] = kept
        for name in names:
            if name != merged:
                shelf.delete(name)
                self._seen.pop(name, None)


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None
