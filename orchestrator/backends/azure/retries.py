"""Bounded retries with exponential backoff that honours ``Retry-After``, and the mapping of
Azure SDK exceptions onto orch's error tree (one ``map_errors`` context manager, httpx-style).

Retried: HTTP 408, 429, 500, 502, 503 and 504, connections that could not be made, and
connections dropped before an answer. Retrying a create is safe because every caller treats
"already exists" as success (ids are deterministic). Messages never carry SAS tokens. A 403 that
names a property the account lacks ("Property maxParallelTasks is not enabled for current
account") is a missing account feature, not a refused key: it says which and what to do.
"""
from __future__ import annotations

import random
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from orchestrator.errors import (
    AuthError,
    BackendError,
    BackendUnavailableError,
    ConflictError,
    NotFoundError,
    OrchError,
    SpecError,
    UnsupportedError,
)
from orchestrator.errors import redact as redact_secrets

T = TypeVar("T")
_MISSING_FEATURE = re.compile(r"Property (\w+) is not enabled for current account")
FEATURE_HINTS = {
    "maxParallelTasks": "remove max_parallel_tasks from the pool file's azure: block (orch then holds trials back "
                        "itself), or ask Azure support to enable maxParallelTasks for the Batch account",
    "authenticationTokenSettings": "the pool says azure.task_authentication_tokens: true, but Batch retired task "
                                   "authentication tokens on 30 September 2024 and this account does not allow "
                                   "them: give the pool a managed identity (azure.identity) instead and remove "
                                   "task_authentication_tokens (see the README's Azure section)",
}
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """``attempts`` tries in all; waits ``base * 2**n`` (jittered, at most ``cap``), or what
    ``Retry-After`` asks when that is longer (up to ``retry_after_cap``)."""

    attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    retry_after_cap: float = 120.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.cap, self.base * (2 ** attempt)) * random.uniform(0.5, 1.0)
        return max(backoff, min(retry_after, self.retry_after_cap)) if retry_after is not None else backoff


def status_of(error: BaseException) -> int | None:
    return getattr(error, "status_code", None) if isinstance(error, HttpResponseError) else None


def error_code(error: HttpResponseError) -> str:
    """Batch's error code (``PoolNotFound``, ``TaskExists`` …), or '' when the body has none."""
    detail = getattr(error, "error", None)
    if detail is not None and getattr(detail, "code", None):
        return str(detail.code)
    response = error.response
    if response is None:
        return ""
    try:
        response.read()
        body = response.json()
    except Exception:  # the body is not JSON (or was streamed away): no code to report
        return ""
    return str(body.get("code") or (body.get("error") or {}).get("code") or "") if isinstance(body, dict) else ""


def retry_after(error: BaseException) -> float | None:
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return True
    return status_of(error) in RETRIED_STATUSES


def with_retries(action: str, call: Callable[[], T], policy: RetryPolicy) -> T:
    """``call()`` retried on transient failures; the last failure becomes an ``OrchError``."""
    for attempt in range(policy.attempts):
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or attempt + 1 >= policy.attempts:
                raise to_orch_error(action, exc, attempts=attempt + 1) from None
            policy.sleep(policy.delay(attempt, retry_after(exc)))
    raise BackendError(f"{action}: no attempt was made (attempts={policy.attempts})")


def redact(text: str) -> str:
    """``text`` without secrets (``orchestrator.errors.redact``)."""
    return redact_secrets(text) or ""


def _message(error: BaseException) -> str:
    first = str(getattr(error, "message", "") or error).strip().splitlines()
    return redact(first[0] if first else type(error).__name__)


@contextmanager
def map_errors(action: str) -> Iterator[None]:
    """Turn Azure SDK exceptions raised inside into orch errors that say what was being done."""
    try:
        yield
    except Exception as exc:
        raise to_orch_error(action, exc) from None


def to_orch_error(action: str, exc: BaseException, *, attempts: int = 1) -> BaseException:
    """The orch error for ``exc`` (its Batch error code in ``.code``); non-SDK errors pass through."""
    if isinstance(exc, OrchError) or not isinstance(exc, (ClientAuthenticationError, HttpResponseError,
                                                          ServiceRequestError, ServiceResponseError)):
        return exc
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    error: OrchError
    if isinstance(exc, ClientAuthenticationError) and status_of(exc) is None:
        error = AuthError(f"{action}: authentication failed ({_message(exc)})",
                          hint="check the account name and key (or Entra ID login) in credentials.yaml")
    elif isinstance(exc, HttpResponseError) and status_of(exc) is not None:
        error = _from_status(action, exc, tries)
    elif isinstance(exc, ServiceRequestError):
        error = BackendUnavailableError(f"{action}: cannot reach the endpoint{tries} ({_message(exc)})",
                                        hint="check the account URL in credentials.yaml and your network")
    else:
        error = BackendError(f"{action}: the connection failed{tries} ({_message(exc)})")
    error.code = error_code(exc) if isinstance(exc, HttpResponseError) else ""  # type: ignore[attr-defined]
    return error


def code_of(error: BaseException) -> str:
    """The Batch error code an orch error was made from ('' when none)."""
    return str(getattr(error, "code", "") or "")


def missing_feature(error: HttpResponseError) -> str | None:
    """The account feature a 403 names ("Property X is not enabled for current account"), if any."""
    match = _MISSING_FEATURE.search(str(error))
    if match is None and error.response is not None:
        try:
            match = _MISSING_FEATURE.search(error.response.text())
        except Exception:  # the body was streamed away: no detail to read
            match = None
    return match.group(1) if match else None


def _from_status(action: str, exc: HttpResponseError, tries: str) -> OrchError:
    status, code = status_of(exc), error_code(exc)
    text = f"{action}: {code or 'HTTP ' + str(status)}{tries} ({_message(exc)})"
    feature = missing_feature(exc) if status == 403 else None
    if feature is not None:
        return UnsupportedError(f"{action}: the Batch account does not have the {feature} feature",
                                hint=FEATURE_HINTS.get(feature, f"ask Azure support to enable {feature}"))
    if status in (401, 403):
        return AuthError(text, hint="the key or token was refused; check credentials.yaml")
    if status == 404:
        return NotFoundError(text)
    if status in (409, 412):
        return ConflictError(text)
    if status in (400, 413, 416):
        return SpecError(text)
    return BackendError(text, hint="Azure kept failing; retry later or check the service health")
