"""The storage account orch keeps inputs, outputs and log copies in (azure-storage-blob).

Uploads are content-addressed where they can be: a blob carries its SHA-256 in metadata and an
upload whose content is already there is skipped. SAS URLs are scoped: read-only for one blob or
a container's listing (inputs), read/create/write for one blob (a task's checkpoint),
create/write for a container (outputs), each expiring at a given time. With a SAS credential orch cannot mint SAS URLs and passes the given token on instead.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

from orchestrator.backends.azure.credentials import StorageAccount
from orchestrator.backends.azure.retries import map_errors
from orchestrator.errors import AuthError, NotFoundError
from orchestrator.model import FileChunk, StoredFile

HASH_KEY = "orchsha256"
READ_LIMIT = 4 * 1024 * 1024


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    """One storage account; every method raises only orch errors."""

    def __init__(self, account: StorageAccount) -> None:
        self.account = account
        self._service: Any = None
        self._delegation: tuple[datetime, Any] | None = None

    @property
    def service(self) -> Any:
        if self._service is None:
            from azure.storage.blob import BlobServiceClient

            secret = self.account
            if secret.connection_string is not None:
                self._service = BlobServiceClient.from_connection_string(
                    secret.connection_string.get_secret_value(), retry_total=5)
            else:
                self._service = BlobServiceClient(str(secret.blob_url), credential=self._credential(), retry_total=5)
        return self._service

    def _credential(self) -> Any:
        if self.account.key is not None:
            return {"account_name": self.account.account, "account_key": self.account.key.get_secret_value()}
        if self.account.sas is not None:
            return self.account.sas.get_secret_value().lstrip("?")
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    @property
    def url(self) -> str:
        return str(self.service.url).rstrip("/")

    # -- containers and blobs -----------------------------------------------------------------
    def ensure_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        with map_errors(f"creating blob container {container!r}"):
            try:
                self.service.create_container(container)
            except ResourceExistsError:
                pass

    def delete_container(self, container: str) -> bool:
        """Delete a container; False when it did not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        with map_errors(f"deleting blob container {container!r}"):
            try:
                self.service.delete_container(container)
            except ResourceNotFoundError:
                return False
        return True

    def containers(self, prefix: str) -> list[str]:
        with map_errors("listing blob containers"):
            return [c.name for c in self.service.list_containers(name_starts_with=prefix)]

    def put(self, container: str, name: str, data: bytes, *, skip_same: bool = True) -> bool:
        """Upload ``data`` as ``name``; False (nothing sent) when the blob already has this content."""
        digest = sha256_of(data)
        blob = self.service.get_blob_client(container, name)
        with map_errors(f"uploading {container}/{name}"):
            if skip_same and self._stored_hash(blob) == digest:
                return False
            blob.upload_blob(data, overwrite=True, metadata={HASH_KEY: digest})
        return True

    def _stored_hash(self, blob: Any) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return blob.get_blob_properties().metadata.get(HASH_KEY)
        except ResourceNotFoundError:
            return None

    def list(self, container: str, prefix: str = "") -> list[StoredFile]:
        from azure.core.exceptions import ResourceNotFoundError

        with map_errors(f"listing {container}/{prefix}"):
            try:
                client = self.service.get_container_client(container)
                return [StoredFile(b.name, int(b.size)) for b in client.list_blobs(name_starts_with=prefix or None)]
            except ResourceNotFoundError:
                return []

    def get(self, container: str, name: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        with map_errors(f"downloading {container}/{name}"):
            try:
                return bytes(self.service.get_blob_client(container, name).download_blob().readall())
            except ResourceNotFoundError:
                raise NotFoundError(f"blob {container}/{name} does not exist", hint="see `orch data ls`") from None

    def read_at(self, container: str, name: str, offset: int) -> FileChunk | None:
        """Bytes of a blob from ``offset`` and its size; None when it does not exist."""
        from azure.core.exceptions import ResourceNotFoundError

        blob = self.service.get_blob_client(container, name)
        with map_errors(f"reading {container}/{name}"):
            try:
                size = int(blob.get_blob_properties().size)
                if offset >= size:
                    return FileChunk(b"", size)
                data = blob.download_blob(offset=offset, length=min(READ_LIMIT, size - offset)).readall()
            except ResourceNotFoundError:
                return None
        return FileChunk(bytes(data), size)

    # -- SAS URLs -----------------------------------------------------------------------------
    def names(self, container: str, prefix: str = "") -> Iterator[str]:
        """Blob names under ``prefix``, in name order, streamed page by page (none if the
        container does not exist)."""
        from azure.core.exceptions import ResourceNotFoundError

        with map_errors(f"listing {container}/{prefix}"):
            try:
                for blob in self.service.get_container_client(container).list_blobs(name_starts_with=prefix or None):
                    yield str(blob.name)
            except ResourceNotFoundError:
                return

    def blob_url(self, container: str, name: str) -> str:
        """The blob's URL, without credentials."""
        return f"{self.url}/{container}/{quote(name)}"

    def blob_read_url(self, container: str, name: str, expiry: datetime) -> str:
        """A URL that can read one blob until ``expiry``."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        sas = self._sas(lambda **auth: generate_blob_sas(self.service.account_name, container, name,
                                                         permission=BlobSasPermissions(read=True), expiry=expiry,
                                                         start=_start(), **auth), expiry)
        return f"{self.url}/{container}/{quote(name)}?{sas}"

    def blob_write_url(self, container: str, name: str, expiry: datetime) -> str:
        """A URL that can read, create and write one blob (and its metadata) until ``expiry``."""
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        permission = BlobSasPermissions(read=True, create=True, write=True)
        sas = self._sas(lambda **auth: generate_blob_sas(self.service.account_name, container, name,
                                                         permission=permission, expiry=expiry, start=_start(),
                                                         **auth), expiry)
        return f"{self.url}/{container}/{quote(name)}?{sas}"

    def delete_blob(self, container: str, name: str) -> None:
        """Delete one blob (nothing when it is gone already)."""
        from azure.core.exceptions import ResourceNotFoundError

        with map_errors(f"deleting {container}/{name}"):
            try:
                self.service.get_container_client(container).delete_blob(name)
            except ResourceNotFoundError:
                pass

    def delete_prefix(self, container: str, prefix: str) -> int:
        """Delete every blob under ``prefix``; how many there were."""
        from azure.core.exceptions import ResourceNotFoundError

        names = list(self.names(container, prefix))
        with map_errors(f"deleting {container}/{prefix}"):
            client = self.service.get_container_client(container)
            for name in names:
                try:
                    client.delete_blob(name)
                except ResourceNotFoundError:
                    continue
        return len(names)

    def container_url(self, container: str, expiry: datetime, *, write: bool, listing: bool = False) -> str:
        """A container URL that can read and list (``write`` False) or create and write blobs
        (and list them too with ``listing``)."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        permission = (ContainerSasPermissions(create=True, write=True, add=True, list=listing) if write
                      else ContainerSasPermissions(read=True, list=True))
        sas = self._sas(lambda **auth: generate_container_sas(self.service.account_name, container,
                                                              permission=permission, expiry=expiry, start=_start(),
                                                              **auth), expiry)
        return f"{self.url}/{container}?{sas}"

    def container_manager_url(self, container: str, expiry: datetime) -> str:
        """A container URL a job's manager keeps the cost ledger and budget state through: read,
        create, write, list and delete blobs."""
        from azure.storage.blob import ContainerSasPermissions, generate_container_sas

        permission = ContainerSasPermissions(read=True, create=True, write=True, add=True, list=True, delete=True)
        sas = self._sas(lambda **auth: generate_container_sas(self.service.account_name, container,
                                                              permission=permission, expiry=expiry, start=_start(),
                                                              **auth), expiry)
        return f"{self.url}/{container}?{sas}"

    def _sas(self, make: Any, expiry: datetime) -> str:
        if self.account.sas is not None:
            return self.account.sas.get_secret_value().lstrip("?")
        credential = getattr(self.service, "credential", None)
        key = getattr(credential, "account_key", None)
        if key:
            return str(make(account_key=key))
        with map_errors("getting a user delegation key"):
            if self._delegation is None or self._delegation[0] < expiry:
                self._delegation = (expiry, self.service.get_user_delegation_key(_start(), expiry))
        if self._delegation is None:
            raise AuthError("cannot sign storage URLs: no account key and no delegation key")
        return str(make(user_delegation_key=self._delegation[1]))


def _start() -> datetime:
    """SAS start a few minutes back, so clock skew between machines does not refuse it."""
    return datetime.now(timezone.utc) - timedelta(minutes=5)


def walk_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Files under ``root`` (or ``root`` itself) and their names relative to it, sorted."""
    if root.is_file():
        yield root, root.name
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield path, path.relative_to(root).as_posix()
