"""Durations written by people: ``90``, ``"45s"``, ``"10m"``, ``"1h30m"``, ``"1.5h"``, ``"2d"``.

``parse_duration`` turns any of these into seconds (a positive float); ``format_duration``
writes seconds back in the same short form. Units: ``d`` (days), ``h``, ``m``, ``s``; each at
most once, largest first; spaces between parts are allowed (``"1h 30m"``). A bare number (or a
numeric string) means seconds. At most 100 years (beyond, it is no limit: leave the key out).
"""
from __future__ import annotations

import math
import re

UNIT_SECONDS: dict[str, int] = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_SECONDS = 100 * 365 * 86400  # longer is no limit at all; leaving the key out says that
_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhms])")
_EXAMPLES = '90 (seconds), "45s", "10m", "1h30m", "1.5h" or "2d"'


def parse_duration(value: object) -> float:
    """Seconds in ``value`` (number or duration string); ValueError says the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"a duration is a number of seconds or a string like {_EXAMPLES}; got {value!r}")
    if isinstance(value, (int, float)):
        return _positive(float(value), value)
    if not isinstance(value, str):
        raise ValueError(f"a duration is a number of seconds or a string like {_EXAMPLES}; got {value!r}")
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = _parse_units(text, value)
    return _positive(seconds, value)


def _parse_units(text: str, original: str) -> float:
    total = 0.0
    position = 0
    seen: list[str] = []
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise ValueError(f"cannot read duration {original!r}; write it like {_EXAMPLES}")
        unit = match.group(2)
        if seen and list(UNIT_SECONDS).index(unit) <= list(UNIT_SECONDS).index(seen[-1]):
            raise ValueError(f"duration {original!r}: write each unit once, largest first (like \"1h30m\")")
        seen.append(unit)
        total += float(match.group(1)) * UNIT_SECONDS[unit]
        position = match.end()
    if not seen:
        raise ValueError(f"cannot read duration {original!r}; write it like {_EXAMPLES}")
    return total


def _positive(seconds: float, original: object) -> float:
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration {original!r} must be positive and finite (like {_EXAMPLES})")
    if seconds > MAX_SECONDS:
        raise ValueError(f"duration {original!r} is more than 100 years; leave the key out for no limit")
    return seconds


def format_duration(seconds: float) -> str:
    """Short form of ``seconds``: ``5400 -> "1h30m"``, ``0.5 -> "0.5s"``, ``0 -> "0s"``."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format duration {seconds!r}: it must be finite and not negative")
    whole = int(seconds)
    fraction = seconds - whole
    parts: list[str] = []
    for unit, size in UNIT_SECONDS.items():
        amount, whole = divmod(whole, size)
        if amount and unit != "s":
            parts.append(f"{amount}{unit}")
        elif unit == "s" and (amount or fraction):
            parts.append(f"{round(amount + fraction, 3):g}s")
    return "".join(parts) or "0s"
