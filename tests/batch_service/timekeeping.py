"""Time formats of the Batch REST API (ISO-8601 timestamps and durations, RFC 1123 dates) and the
timekeeping every entity carries: a revision (ETag, creation and last-modified times) bumped on
each change, and a state with its transition times.
"""
from __future__ import annotations

import email.utils
import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

# The value Batch reports for "no limit" (TimeSpan.MaxValue).
UNLIMITED_DURATION = "P10675199DT2H48M5.4775807S"

_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def format_timestamp(moment: datetime) -> str:
    """``2025-01-02T03:04:05.123456Z``: the form Batch JSON bodies carry."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def format_http_date(moment: datetime) -> str:
    """RFC 1123 date for headers such as ``Last-Modified``."""
    return email.utils.format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def parse_http_date(text: str) -> datetime | None:
    """An RFC 1123 date header as UTC; None when it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration such as ``PT1H30M`` or ``P1DT2.5S``; ValueError when malformed."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(weeks=parts.get("weeks", 0.0), days=parts.get("days", 0.0), hours=parts.get("hours", 0.0),
                     minutes=parts.get("minutes", 0.0), seconds=parts.get("seconds", 0.0))


_serials = itertools.count(1)
_serials_lock = threading.Lock()


def new_etag() -> str:
    """A fresh opaque ETag in Batch's ``0x8D...`` style, unique within this process."""
    with _serials_lock:
        serial = next(_serials)
    return f"0x8D{int(utc_now().timestamp() * 1000):X}{serial:06X}"


@dataclass
class Revision:
    """Creation time, last-modified time and ETag of one entity."""

    creation_time: datetime = field(default_factory=utc_now)
    last_modified: datetime = field(default_factory=utc_now)
    etag: str = field(default_factory=new_etag)

    def touch(self) -> None:
        """Record a modification: new ETag and last-modified time."""
        self.last_modified, self.etag = utc_now(), new_etag()

    def json_fields(self) -> dict[str, str]:
        """``eTag``, ``lastModified`` and ``creationTime`` of the entity's JSON."""
        return {"eTag": self.etag, "lastModified": format_timestamp(self.last_modified),
                "creationTime": format_timestamp(self.creation_time)}

    def headers(self) -> dict[str, str]:
        """``ETag`` and ``Last-Modified`` response headers."""
        return {"ETag": self.etag, "Last-Modified": format_http_date(self.last_modified)}


@dataclass
class Lifecycle:
    """A state, when it was entered, and the state before it."""

    state: str
    transition_time: datetime = field(default_factory=utc_now)
    previous_state: str | None = None
    previous_transition_time: datetime | None = None

    def move(self, new_state: str) -> bool:
        """Enter ``new_state``; False (and no change) when already there."""
        if new_state == self.state:
            return False
        self.previous_state, self.previous_transition_time = self.state, self.transition_time
        self.state, self.transition_time = new_state, utc_now()
        return True

    def json_fields(self, *, with_previous: bool = True) -> dict[str, Any]:
        """``state``/``stateTransitionTime`` and, once there is one, ``previousState``/its time."""
        fields: dict[str, Any] = {"state": self.state, "stateTransitionTime": format_timestamp(self.transition_time)}
        if with_previous and self.previous_state is not None and self.previous_transition_time is not None:
            fields["previousState"] = self.previous_state
            fields["previousStateTransitionTime"] = format_timestamp(self.previous_transition_time)
        return fields
