"""Module-scoped fixtures for tests that talk to the local Batch service through the SDK:
``service`` (a running service, plain HTTP, shared key) and ``client`` (a ``BatchClient`` for it).
tests/conftest.py loads them for every module;
a module's own fixture of the same name takes precedence."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.batch import BatchClient

from tests.batch_service import BatchService, start_batch_service
from tests.support.batch_sdk import client_for


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchService]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as running:
        yield running


@pytest.fixture(scope="module")
def client(service: BatchService) -> BatchClient:
    return client_for(service)
