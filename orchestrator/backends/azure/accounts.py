"""Which Azure accounts a call uses: the credentials in effect when a pool is created, and for
an existing pool the credentials file recorded with it (so commands run from another folder
reach the same account). Environment credentials are read again each time."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.backends.azure import credentials as credential_files
from orchestrator.backends.azure.batch_client import BatchApi
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.retries import RetryPolicy
from orchestrator.errors import AuthError
from orchestrator.records import pool_records

ENVIRONMENT = "environment"


@dataclass
class Account:
    credentials: Credentials
    batch: BatchApi
    store: BlobStore | None

    def require_store(self, why: str) -> BlobStore:
        if self.store is None:
            raise AuthError(f"{why} needs a storage account, and the credentials have none",
                            hint="add `storage:` to credentials.yaml (or set ORCH_STORAGE_* variables)")
        return self.store


class Accounts:
    """Resolves and caches ``Account``s by where their credentials come from."""

    def __init__(self, config_dir: Path | None, credentials: Credentials | None, policy: RetryPolicy | None) -> None:
        self.config_dir = config_dir
        self.given = credentials
        self.policy = policy
        self._cache: dict[str, Account] = {}

    def default(self) -> Account:
        """The account for new pools: given credentials, else the first source that has some."""
        if self.given is not None:
            return self._account(self.given)
        return self._account(credential_files.load(self.config_dir))

    def source_of(self, account: Account) -> str | None:
        """What to record with a pool so later commands find its credentials (a file path)."""
        source = account.credentials.source
        return source if source not in (ENVIRONMENT, "") and Path(source).is_file() else None

    def for_pool(self, pool_id: str) -> Account:
        record = pool_records.load(pool_id)
        path = record.engine.get("credentials_file") if record is not None else None
        if self.given is None and path and Path(path).is_file():
            return self._account(credential_files.load_file(Path(path)))
        return self.default()

    def _account(self, credentials: Credentials) -> Account:
        key = f"{credentials.source}|{credentials.batch.url}|{credentials.batch.account}"
        if key not in self._cache:
            store = BlobStore(credentials.storage) if credentials.storage is not None else None
            self._cache[key] = Account(credentials, BatchApi(credentials.batch, self.policy), store)
        return self._cache[key]
