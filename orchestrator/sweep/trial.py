"""One expanded trial of a sweep, and the deterministic task id it runs under."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.model import JobInput
from orchestrator.spec.common import TRIAL_INDEX_DIGITS

MAX_TASK_ID_LENGTH = 64
INDEX_DIGITS = TRIAL_INDEX_DIGITS
_VALID_ID = re.compile(r"^[A-Za-z0-9_-]+$")
_TRIAL_SUFFIX = re.compile(rf"-(\d{{{INDEX_DIGITS},}})$")


@dataclass(frozen=True)
class Trial:
    """Trial number ``index`` (0-based, stable for a given spec and seed) and its parameters.

    ``params`` maps names to values; positional factories use ``"0"``, ``"1"``, ... unless the
    factory gives ``names``. ``inputs`` are files only this trial's task gets (a file factory's
    blob).
    """

    index: int
    params: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[JobInput, ...] = ()


def trial_task_id(base_id: str, index: int) -> str:
    """``<base_id>-<index>``, the index zero-padded to 5 digits (``trial-00017``).

    Always a valid Azure Batch task id (letters, digits, ``-``, ``_``; at most 64 characters).
    When the result would be longer, the base is cut and an 8-hex-digit hash of the whole base
    is added, so different long bases still give different ids. Same inputs, same id.
    """
    if index < 0:
        raise ValueError(f"trial index must be >= 0, got {index}")
    if not base_id or not _VALID_ID.match(base_id):
        raise SpecError(f"task id {base_id!r} cannot name trials: use letters, digits, '-' or '_'",
                        hint="rename the task in the job file")
    suffix = f"-{index:0{INDEX_DIGITS}d}"
    if len(base_id) + len(suffix) <= MAX_TASK_ID_LENGTH:
        return base_id + suffix
    digest = hashlib.sha1(base_id.encode()).hexdigest()[:8]
    keep = MAX_TASK_ID_LENGTH - len(suffix) - len(digest) - 1
    return f"{base_id[:keep]}-{digest}{suffix}"


def trial_index(task_id: str) -> int | None:
    """The trial index ``trial_task_id`` put at the end of ``task_id``, or None if it has none."""
    match = _TRIAL_SUFFIX.search(task_id)
    return int(match.group(1)) if match else None
