"""ETag and timestamps that every Batch entity carries and bumps on each change."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime

from .times import format_http_date, format_timestamp, utc_now

_counter = itertools.count(1)
_counter_lock = threading.Lock()


def new_etag() -> str:
    """A fresh opaque ETag in Batch's ``0x8D...`` style, unique within this process."""
    with _counter_lock:
        serial = next(_counter)
    return f"0x8D{int(utc_now().timestamp() * 1000):X}{serial:06X}"


@dataclass
class Revision:
    """Creation time, last-modified time and ETag of one entity."""

    creation_time: datetime = field(default_factory=utc_now)
    last_modified: datetime = field(default_factory=utc_now)
    etag: str = field(default_factory=new_etag)

    def touch(self) -> None:
        """Record a modification: new ETag and last-modified time."""
        self.last_modified = utc_now()
        self.etag = new_etag()

    def json_fields(self) -> dict[str, str]:
        """The ``eTag``/``lastModified``/``creationTime`` fields of the entity's JSON."""
        return {
            "eTag": self.etag,
            "lastModified": format_timestamp(self.last_modified),
            "creationTime": format_timestamp(self.creation_time),
        }

    def headers(self) -> dict[str, str]:
        """The ``ETag`` and ``Last-Modified`` response headers."""
        return {"ETag": self.etag, "Last-Modified": format_http_date(self.last_modified)}
