"""Azurite through azure-storage-blob, and the local Batch service moving task files in and out of it."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)

from tests.batch_service import (
    AutoStorage,
    BatchService,
    ServiceSettings,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite
from tests.support.batch_sdk import (
    client_for,
    completed,
    new_job,
    pool_options,
    task_file,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


@pytest.fixture(scope="module")
def blobs(azurite: Azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def expiry() -> datetime:
    return datetime.now(timezone.utc) + timedelta(hours=1)


def container_url(azurite: Azurite, container: str, permission: ContainerSasPermissions) -> str:
    sas = generate_container_sas(azurite.account, container, account_key=azurite.key, permission=permission,
                                 expiry=expiry())
    return f"{azurite.blob_url}/{container}?{sas}"


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[BatchService]:
    account_sas = generate_account_sas(azurite.account, azurite.key, ResourceTypes(container=True, object=True),
                                       AccountSasPermissions(read=True, list=True), expiry())
    settings = ServiceSettings(auto_storage=AutoStorage(azurite.blob_url, account_sas))
    with start_batch_service(tmp_path_factory.mktemp("batch"), settings=settings) as running:
        yield running


@pytest.fixture(scope="module")
def client(batch: BatchService) -> BatchClient:
    client = client_for(batch)
    client.create_pool(pool_options("io", 1))
    new_job(client, "io", "io")
    return client


def upload_to(url: str, pattern: str, path: str | None, condition: m.OutputFileUploadCondition) -> m.OutputFile:
    destination = m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(container_url=url, path=path))
    return m.OutputFile(file_pattern=pattern, destination=destination,
                        upload_options=m.OutputFileUploadConfiguration(upload_condition=condition))


def test_blobs_round_trip_through_the_storage_sdk(blobs: BlobServiceClient) -> None:
    container = blobs.create_container("roundtrip")
    container.upload_blob("dir/hello.txt", b"hello azurite")
    assert container.download_blob("dir/hello.txt").readall() == b"hello azurite"
    assert [blob.name for blob in container.list_blobs()] == ["dir/hello.txt"]


def test_task_files_come_from_and_go_to_azurite(azurite: Azurite, blobs: BlobServiceClient,
                                                client: BatchClient) -> None:
    inputs = blobs.create_container("inputs")
    for name, data in (("data/a.txt", b"A\n"), ("data/b.txt", b"B\n"), ("other.txt", b"O\n")):
        inputs.upload_blob(name, data)
    blobs.create_container("outputs")
    read_inputs = container_url(azurite, "inputs", ContainerSasPermissions(read=True, list=True))
    write_outputs = container_url(azurite, "outputs", ContainerSasPermissions(write=True, create=True))
    base, sas = read_inputs.split("?")
    script = ("cat in/data/a.txt in/data/b.txt other.txt auto/other.txt > result.txt; "
              "mkdir -p logs/deep; echo ran > logs/deep/run.log; echo done")
    client.create_task("io", m.BatchTaskCreateOptions(
        id="io-task",
        command_line=f"/bin/sh -c '{script}'",
        resource_files=[
            m.ResourceFile(storage_container_url=read_inputs, blob_prefix="data/", file_path="in"),
            m.ResourceFile(http_url=f"{base}/other.txt?{sas}", file_path="other.txt"),
            m.ResourceFile(auto_storage_container_name="inputs", blob_prefix="other", file_path="auto"),
        ],
        output_files=[
            upload_to(write_outputs, "result.txt", "results/final.txt", m.OutputFileUploadCondition.TASK_SUCCESS),
            upload_to(write_outputs, "result.txt", "failed/result.txt", m.OutputFileUploadCondition.TASK_FAILURE),
            upload_to(write_outputs, "logs/**/*.log", "logs", m.OutputFileUploadCondition.TASK_COMPLETION),
            upload_to(write_outputs, "../std*.txt", "std", m.OutputFileUploadCondition.TASK_COMPLETION),
        ],
    ))
    task = completed(client, "io", "io-task")
    assert task.execution_info.result == m.BatchTaskExecutionResult.SUCCESS, task.execution_info.failure_info
    outputs = blobs.get_container_client("outputs")
    assert sorted(blob.name for blob in outputs.list_blobs()) == [
        "logs/deep/run.log", "results/final.txt", "std/stderr.txt", "std/stdout.txt"]
    assert outputs.download_blob("results/final.txt").readall() == b"A\nB\nO\nO\n"
    assert outputs.download_blob("std/stdout.txt").readall() == b"done\n"


def test_a_refused_upload_fails_the_task(azurite: Azurite, blobs: BlobServiceClient, client: BatchClient) -> None:
    blobs.create_container("readonly")
    read_only = container_url(azurite, "readonly", ContainerSasPermissions(read=True))
    client.create_task("io", m.BatchTaskCreateOptions(
        id="refused", command_line="/bin/sh -c 'echo x > out.txt'",
        output_files=[upload_to(read_only, "out.txt", None, m.OutputFileUploadCondition.TASK_COMPLETION)],
    ))
    info = completed(client, "io", "refused").execution_info
    assert info.exit_code == 0 and info.result == m.BatchTaskExecutionResult.FAILURE
    assert info.failure_info.category == m.BatchErrorSourceCategory.USER_ERROR
    assert info.failure_info.code == "FileUploadMiscError"
    assert b"403" in task_file(client, "io", "refused", "fileuploaderr.txt")
