"""Ids of pools, jobs and tasks: 1-64 letters, digits, ``-`` or ``_``, starting with a letter or digit.

One rule for spec files, the command line and the records under ``$ORCH_HOME`` (whose file
names are built from ids, so an id is checked before any path is made from it).
"""
from __future__ import annotations

import re

from orchestrator.errors import SpecError

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ID_RULE = "use 1-64 letters, digits, '-' or '_', starting with a letter or digit"


def is_valid_id(value: object) -> bool:
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, what: str = "id") -> str:
    """``value`` if it is a valid id; else a ``SpecError`` (exit 2) naming ``what`` it was for."""
    if not is_valid_id(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise SpecError(f"{shown!r} is not a valid {what}: {ID_RULE}", hint="see `orch pool list` / `orch jobs list`")
    return value
