"""One exception tree for orch, and the exit code each kind maps to.

Every error a user can cause or meet is an ``OrchError``. The CLI maps it to its
``exit_code`` in one place and prints ``str(error)``: what went wrong, where (file:line,
key path) and what to do. Backends and the pure core raise only these.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

REDACTED = "REDACTED"
_SECRET_RULES = (
    re.compile(r"(\bsig=)[^&\s'\"]+", re.IGNORECASE),                     # SAS signatures
    re.compile(r"(\bAccountKey=)[^;\s'\"]+", re.IGNORECASE),              # storage connection strings
    re.compile(r"(\bSharedAccessSignature=)[^;\s'\"]+", re.IGNORECASE),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),      # OAuth tokens
    re.compile(r"(\bSharedKey\s+[^:\s]+:)[A-Za-z0-9+/=]{8,}", re.IGNORECASE),  # Batch shared-key signatures
)


def redact(text: str | None) -> str | None:
    """``text`` with every secret the rules above find replaced by ``REDACTED`` (None stays None).
    The CLI applies it to every error it prints, the dashboard to every text it shows, backends to
    messages they pass on: a last line behind keeping secrets out of messages in the first place."""
    if text is None:
        return None
    for rule in _SECRET_RULES:
        text = rule.sub(rf"\g<1>{REDACTED}", text)
    return text


@dataclass(frozen=True)
class Where:
    """A place in a spec file: path, 1-based line and column, and a key path."""

    file: str | None = None
    line: int | None = None
    column: int | None = None
    key_path: str | None = None

    def __str__(self) -> str:
        place = self.file or "<input>"
        if self.line is not None:
            place += f":{self.line}"
            if self.column is not None:
                place += f":{self.column}"
        if self.key_path:
            place += f": {self.key_path}"
        return place


class OrchError(Exception):
    """Base of every error orch reports. ``hint`` says what to do about it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, where: Where | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.where = where

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class SpecError(OrchError):
    """A spec file or command-line value is invalid. Nothing was created."""

    exit_code = 2


class SpecErrors(SpecError):
    """Several spec problems found in one pass; all are reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))

    def __str__(self) -> str:
        count = len(self.errors)
        head = f"{count} problem{'s' if count != 1 else ''} found:" if count > 1 else ""
        body = "\n".join(str(e) for e in self.errors)
        return f"{head}\n{body}" if head else body


class UnsupportedError(SpecError):
    """The pool's backend lacks what the request needs (a capability, a launcher). Nothing was created."""


class NotFoundError(OrchError):
    """A named pool, job, task or file does not exist."""

    exit_code = 3


class BackendUnavailableError(OrchError):
    """The backend (Ray cluster, Azure endpoint) cannot be reached."""

    exit_code = 4


class ConflictError(OrchError):
    """The request conflicts with current state (e.g. deleting a busy pool)."""

    exit_code = 5


class CapacityError(OrchError):
    """The pool cannot satisfy what was asked (nodes, CPUs, GPUs)."""

    exit_code = 6


class WaitTimeoutError(OrchError):
    """A wait (pool allocation, placement, job end) ran out of time."""

    exit_code = 7


class AuthError(OrchError):
    """Credentials are missing or were refused."""

    exit_code = 8


class BackendError(OrchError):
    """The backend failed in a way retries did not cure."""

    exit_code = 9


class JobFailedError(OrchError):
    """A followed job ended with at least one task not succeeded."""

    exit_code = 1


class InterruptedByUser(OrchError):
    """Ctrl-C. State is consistent; the message says how to resume."""

    exit_code = 130


class DeclinedError(OrchError):
    """The user answered no at a confirmation prompt (or stdin closed there). Nothing was changed."""

    exit_code = 10


EXIT_CODES: dict[int, str] = {
    0: "success (for a followed job: every task succeeded)",
    1: "a followed job finished with failed or cancelled tasks",
    2: "invalid spec file or command-line usage; nothing was created",
    3: "pool, job, task or file not found",
    4: "backend unreachable (Ray address, Azure endpoint)",
    5: "conflict with current state (e.g. pool busy, id in use with other settings)",
    6: "the pool lacks the capacity the request needs",
    7: "a wait timed out",
    8: "authentication failed or credentials missing",
    9: "the backend failed after bounded retries",
    10: "a confirmation was declined (or stdin closed at the prompt); nothing was changed",
    130: "interrupted (Ctrl-C); state is consistent, re-run to resume",
}
