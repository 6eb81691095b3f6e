"""Time formats the Batch REST API uses: ISO-8601 timestamps and durations, RFC 1123 dates."""
from __future__ import annotations

import email.utils
import re
from datetime import datetime, timedelta, timezone

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


def parse_timestamp(text: str) -> datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset); raises ValueError when malformed."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def format_http_date(moment: datetime) -> str:
    """RFC 1123 date for headers such as ``Last-Modified`` and ``ocp-date``."""
    return email.utils.format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def parse_http_date(text: str) -> datetime | None:
    """Parse an RFC 1123 date header; None when it is not one."""
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta:
    """Parse an ISO-8601 duration such as ``PT1H30M`` or ``P1DT2.5S``; ValueError when malformed."""
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        raise ValueError(f"not an ISO-8601 duration: {text!r}")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(
        weeks=parts.get("weeks", 0.0),
        days=parts.get("days", 0.0),
        hours=parts.get("hours", 0.0),
        minutes=parts.get("minutes", 0.0),
        seconds=parts.get("seconds", 0.0),
    )


def format_duration(span: timedelta) -> str:
    """Format a non-negative duration as ``PnDTnHnMn.nS``."""
    total = span.total_seconds()
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    text = "P" + (f"{int(days)}D" if days else "") + "T"
    if hours:
        text += f"{int(hours)}H"
    if minutes:
        text += f"{int(minutes)}M"
    text += f"{seconds:g}S"
    return text
