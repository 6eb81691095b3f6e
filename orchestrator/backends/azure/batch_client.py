"""The Batch account as orch uses it: an azure-batch ``BatchClient`` behind bounded retries.

The SDK's own retries are off (``retry_total=0``) so every call retries in one place
(``retries.with_retries``: Retry-After honoured, dropped connections retried). Known traps of
azure-batch 15.1.0 are handled here: ``begin_terminate_job`` needs a non-empty options object,
``pool_exists`` raises on 404 instead of returning False (``get_pool_or_none`` is used
instead), and ``create_tasks`` sends chunks in reverse order (orch sends its own collections).
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, TypeVar

from orchestrator.backends.azure.credentials import BatchAccount
from orchestrator.backends.azure.retries import RetryPolicy, code_of, with_retries
from orchestrator.errors import NotFoundError

T = TypeVar("T")
POLL_SECONDS = 1.0


class BatchApi:
    """One Batch account. ``call`` runs an SDK call with retries and orch errors."""

    def __init__(self, account: BatchAccount, policy: RetryPolicy | None = None, *, credential: Any = None) -> None:
        """``credential`` replaces the account's own (the sweep manager's job token)."""
        self.account = account
        self.policy = policy or RetryPolicy()
        self.credential = credential
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The SDK client, created (and the SDK imported) on first use."""
        if self._client is None:
            from azure.batch import BatchClient

            self._client = BatchClient(self.account.url, self.credential or _credential(self.account), retry_total=0,
                                       connection_timeout=30, read_timeout=120)
        return self._client

    def call(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return with_retries(action, lambda: fn(*args, **kwargs), self.policy)

    def listed(self, action: str, fn: Callable[..., Iterator[T]], *args: Any, **kwargs: Any) -> list[T]:
        """Every item of a paged list (the whole listing is retried on a transient failure)."""
        return with_retries(action, lambda: list(fn(*args, **kwargs)), self.policy)

    def get_or_none(self, action: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(...)``, or None when Batch answers 404."""
        try:
            return self.call(action, fn, *args, **kwargs)
        except NotFoundError:
            return None

    def download(self, action: str, fn: Callable[..., Iterator[bytes]], *args: Any, **kwargs: Any) -> bytes:
        """A (ranged) file download as bytes."""
        return with_retries(action, lambda: b"".join(fn(*args, **kwargs)), self.policy)

    def terminate_job(self, job_id: str, reason: str) -> None:
        """Terminate a job (running tasks are killed); an already finished job is left as it is."""
        from azure.batch.models._models import (
            BatchJobTerminateOptions,  # not exported in 15.1.0
        )

        options = BatchJobTerminateOptions(termination_reason=reason)
        try:
            self.call(f"terminating job {job_id!r}",
                      lambda: self.client.begin_terminate_job(job_id, options, polling_interval=POLL_SECONDS).result())
        except Exception as exc:
            if code_of(exc) not in ("JobCompleted", "JobBeingTerminated"):
                raise


def text(value: Any) -> str:
    """An SDK enum (or plain string) as its wire value: ``BatchNodeState.IDLE`` → ``idle``."""
    return str(getattr(value, "value", value) or "")


def _credential(account: BatchAccount) -> Any:
    if account.key is not None:
        from azure.core.credentials import AzureNamedKeyCredential

        return AzureNamedKeyCredential(account.account, account.key.get_secret_value())
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
