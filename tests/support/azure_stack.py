"""The Azure test stack in one place: the local Batch service (HTTPS) and Azurite, the
environment the SDKs need to trust them, and the credentials file orch reads."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.batch_service import (
    BatchService,
    ServiceSettings,
    self_signed_cert,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite


@contextmanager
def azure_services(factory: pytest.TempPathFactory, settings: ServiceSettings | None = None, *,
                   identity_endpoint: bool = False, env: Mapping[str, str] | None = None,
                   ) -> Iterator[tuple[BatchService, Azurite]]:
    """Start both services for a test module. ``identity_endpoint``: this machine's managed
    identity endpoint is the service's (as on a Batch node); ``env`` is set for the module."""
    tls = self_signed_cert(factory.mktemp("tls"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(tls.cert))  # the service's task processes inherit it
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        with start_batch_service(factory.mktemp("batch"), tls=tls, settings=settings) as batch, \
                start_azurite(factory.mktemp("azurite")) as azurite:
            if identity_endpoint:
                patch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", batch.url)
            yield batch, azurite


def write_credentials(folder: Path, batch: BatchService, azurite: Azurite, *, resource_manager: bool = False) -> Path:
    """``folder/credentials.yaml`` for these services; ``resource_manager`` adds the account's
    Resource Manager id and endpoint (pools with a managed identity are created there)."""
    manager = f", resource_id: '{batch.resource_id}', management_url: '{batch.url}'" if resource_manager else ""
    path = folder / "credentials.yaml"
    path.write_text(f"batch: {{account: {batch.account}, url: '{batch.url}', key: '{batch.key}'{manager}}}\n"
                    f"storage: {{connection_string: '{azurite.connection_string}'}}\n")
    return path


def config_folder(factory: pytest.TempPathFactory, services: tuple[BatchService, Azurite], files: Mapping[str, str],
                  *, resource_manager: bool = False) -> Path:
    """A config folder for these services: ``files`` (relative path -> text, folders made as
    needed) and the credentials file (see ``write_credentials``)."""
    folder = factory.mktemp("config")
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    write_credentials(folder, *services, resource_manager=resource_manager)
    return folder
