"""Job ``inputs:``: spec validation, Batch task bodies, and tasks on the local Batch service with
Azurite reading local files, folders and blob prefixes uploaded once under their content hash."""
from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from orchestrator import pools
from orchestrator.backends.azure import naming, task_model
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.backends.azure.blob_store import BlobStore
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.inputs import FILES_PREFIX
from orchestrator.backends.azure.retries import RetryPolicy
from orchestrator.model import JobInput, JobRef, TaskLaunch, TaskState
from orchestrator.spec.inputs import InputSpec
from orchestrator.spec.job import DistributedSpec, JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from tests.batch_service import BatchService, start_batch_service
from tests.support.azurite import Azurite, start_azurite


@pytest.mark.parametrize("bad", [{"to": "x"}, {"path": "a", "blob": "c/p", "to": "x"}, {"path": "a", "to": "/abs"},
                                 {"path": "a", "to": "x/../../up"}, {"blob": "nocontainerprefix", "to": "x"}])
def test_an_input_needs_one_source_and_a_relative_target(bad: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        InputSpec.model_validate(bad)


def test_inputs_are_part_of_the_job_spec() -> None:
    job = JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [{"command": "true"}],
                                  "inputs": [{"path": "data", "to": "data"}, {"blob": "sets/mnist/", "to": "mnist"}]})
    blob = JobInput(to=job.inputs[1].to, blob=job.inputs[1].blob)
    assert (blob.blob_container, blob.blob_prefix) == ("sets", "mnist/")
    assert JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [{"command": "true"}]}).inputs == []


def test_multi_instance_tasks_get_inputs_on_every_node_linked_into_the_task_dir() -> None:
    from azure.batch import models as m

    ctx = task_model.TaskContext(pool_id="p", job_id="j", vm_size="D2s_v5", cpus_per_node=2, gpus_per_node=0,
                                 slots_per_node=2, pool_env={}, workdir_url=None, outputs_url=None,
                                 output_condition="taskcompletion",
                                 input_files=(m.ResourceFile(http_url="http://b/x?sig", file_path="data/a.csv"),))
    single = task_model.task_options(TaskLaunch(id="t", command="true"), ctx, "x/").as_dict()
    assert single["resourceFiles"] == [{"httpUrl": "http://b/x?sig", "filePath": "data/a.csv"}]
    multi = task_model.task_options(TaskLaunch(id="t", command="true", distributed=DistributedSpec(
        launcher="mpi", nodes=2, processes_per_node=1)), ctx, "x/").as_dict()
    settings = multi["multiInstanceSettings"]
    assert settings["commonResourceFiles"] == single["resourceFiles"] and "resourceFiles" not in multi
    assert 'ln -sfn "$AZ_BATCH_TASK_SHARED_DIR"/data data' in settings["coordinationCommandLine"]


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    with start_batch_service(tmp_path_factory.mktemp("batch")) as batch, \
            start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
        yield batch, azurite


@pytest.mark.slow
def test_tasks_read_local_and_blob_inputs_uploaded_once(services: tuple[BatchService, Azurite], tmp_path: Path) -> None:
    batch, azurite = services
    credentials = Credentials.model_validate({"batch": {"account": batch.account, "url": batch.url, "key": batch.key},
                                              "storage": {"connection_string": azurite.connection_string}})
    backend = AzureBackend(tmp_path, credentials=credentials, policy=RetryPolicy(base=0.01, cap=0.2))
    pools.create_pool(PoolSpec.model_validate({"id": "inpool", "backend": "azure", "nodes": 1,
                                               "azure": {"vm_size": "D2s_v5", "job_lifetime": "2h"}}), backend=backend)
    (tmp_path / "config.json").write_text('{"lr": 0.1}\n')
    (tmp_path / "data" / "deep").mkdir(parents=True)
    (tmp_path / "data" / "a.csv").write_text("1,2\n")
    (tmp_path / "data" / "deep" / "b.csv").write_text("3,4\n")
    (tmp_path / "data" / "credentials.yaml").write_text("secret: never\n")
    store = BlobStore(credentials.storage)  # type: ignore[arg-type]
    store.ensure_container("datasets")
    store.put("datasets", "mnist/train.txt", b"digits\n")
    store.put("datasets", "other/skip.txt", b"not me\n")
    command = ("cat cfg/config.json data/a.csv data/deep/b.csv mnist/mnist/train.txt; "
               "test ! -e data/credentials.yaml && test ! -e mnist/other")
    spec = {"id": "reads", "pool": "inpool", "workdir": None, "tasks": [{"id": "read", "command": command}],
            "inputs": [{"path": "config.json", "to": "cfg/config.json"}, {"path": "data", "to": "data"},
                       {"blob": "datasets/mnist/", "to": "mnist"}]}
    submit_job(JobSpec.model_validate(spec), config_dir=tmp_path, backend=backend)
    container = naming.pool_container("inpool")
    uploaded = {entry.name for entry in store.list(container, FILES_PREFIX)}
    assert len(uploaded) == 3
    again = JobSpec.model_validate({**spec, "id": "reads-again"})
    sent: list[str] = []
    original_put = BlobStore.put

    def counting_put(self: BlobStore, container_name: str, name: str, *args: object, **kwargs: object) -> bool:
        sent.append(name)
        return original_put(self, container_name, name, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BlobStore, "put", counting_put)
        submit_job(again, config_dir=tmp_path, backend=backend)
    assert not [name for name in sent if name.startswith(FILES_PREFIX)]  # unchanged files are not sent again
    for job_id in ("reads", "reads-again"):
        deadline = time.monotonic() + 60
        while not ((info := backend.get_job(JobRef("inpool", job_id))) and info.finished):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        (task,) = backend.list_tasks(JobRef("inpool", job_id))
        assert task.state == TaskState.SUCCEEDED, backend.read_file(JobRef("inpool", job_id), "read", "stderr")
        output = backend.read_file(JobRef("inpool", job_id), "read", "stdout")
        assert output is not None and output.data == b'{"lr": 0.1}\n1,2\n3,4\ndigits\n'
    body = backend.accounts.for_pool("inpool").batch.client.get_task("reads", "read").as_dict()
    limit = datetime.now(timezone.utc) + timedelta(hours=4)  # job_lifetime 2h + the output margin
    for resource in body["resourceFiles"]:
        query = parse_qs(urlsplit(resource.get("httpUrl") or resource["storageContainerUrl"]).query)
        expiry = datetime.fromisoformat(query["se"][0].replace("Z", "+00:00"))
        assert expiry < limit and "w" not in query["sp"][0]


@pytest.mark.slow
def test_ray_tasks_find_local_inputs_and_blob_inputs_are_refused(pool_home: dict[str, str], tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("from-dir\n")
    (tmp_path / "labels.csv").write_text("from-file\n")
    job = tmp_path / "job.yaml"
    job.write_text("id: with-inputs\npool: testpool\nworkdir: null\n"
                   "inputs:\n  - {path: data, to: in/data}\n  - {path: labels.csv, to: labels.csv}\n"
                   "tasks:\n  - command: cat in/data/a.txt labels.csv\n")
    env = {**os.environ, "ORCH_HOME": pool_home["ORCH_HOME"]}
    run = subprocess.run([sys.executable, "-m", "orchestrator", "--config-dir", str(tmp_path), "jobs", "add",
                          str(job), "--tail"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "from-dir" in run.stdout and "from-file" in run.stdout
    blob = tmp_path / "blob.yaml"
    blob.write_text("id: blob-inputs\npool: testpool\nworkdir: null\ninputs:\n  - {blob: data/x, to: x}\n"
                    "tasks:\n  - command: 'true'\n")
    refused = subprocess.run([sys.executable, "-m", "orchestrator", "--config-dir", str(tmp_path), "jobs", "add",
                              str(blob)], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "the ray backend cannot read blob inputs" in refused.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text("id: missing-inputs\npool: testpool\nworkdir: null\ninputs:\n  - {path: nope, to: x}\n"
                       "tasks:\n  - command: 'true'\n")
    gone = subprocess.run([sys.executable, "-m", "orchestrator", "--config-dir", str(tmp_path), "jobs", "add",
                           str(missing)], env=env, capture_output=True, text=True, timeout=120)
    assert gone.returncode == 2 and "does not exist" in gone.stderr


@pytest.mark.slow
def test_shipyards_blast_file_factory_gives_each_task_its_blob(services: tuple[BatchService, Azurite],
                                                                tmp_path: Path) -> None:
    """Batch Shipyard's BLAST-CPU task factory block, unchanged: one task per chunk in blob storage."""
    batch, azurite = services
    credentials = Credentials.model_validate({"batch": {"account": batch.account, "url": batch.url, "key": batch.key},
                                              "storage": {"connection_string": azurite.connection_string}})
    backend = AzureBackend(tmp_path, credentials=credentials, policy=RetryPolicy(base=0.01, cap=0.2))
    pools.create_pool(PoolSpec.model_validate({"id": "blastpool", "backend": "azure", "nodes": 1,
                                               "azure": {"vm_size": "D2s_v5"}}), backend=backend)
    store = BlobStore(credentials.storage)  # type: ignore[arg-type]
    store.ensure_container("blast")
    for index in range(3):
        store.put("blast", f"output/fasta-chunks/query-{index}.fa", f">q{index}\nMKV\n".encode())
    store.put("blast", "output/fasta-chunks/readme.txt", b"not a chunk\n")
    store.put("blast", "output/other/query-9.fa", b">elsewhere\n")
    spec = JobSpec.model_validate({"id": "blast", "pool": "blastpool", "workdir": None, "tasks": [{
        "command": "head -n 1 {{file_name}} && test ! -e readme.txt",
        "task_factory": {"file": {"azure_storage": {"storage_account_settings": "mystorageaccount",
                                                    "remote_path": "blast/output/fasta-chunks",
                                                    "include": ["output/fasta-chunks/query-*.fa"]},
                                  "task_filepath": "file_name"}}}]})
    report = submit_job(spec, config_dir=tmp_path, backend=backend)
    assert (report.submitted, dict(report.failed)) == (3, {})
    ref = JobRef("blastpool", "blast")
    deadline = time.monotonic() + 60
    while not ((info := backend.get_job(ref)) and info.finished):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert dict(info.task_counts) == {"succeeded": 3}
    outputs = {task.id: backend.read_file(ref, task.id, "stdout") for task in backend.list_tasks(ref)}
    assert {task_id: chunk.data for task_id, chunk in outputs.items() if chunk} == {
        f"task-0-{index:05d}": f">q{index}\n".encode() for index in range(3)}
    body = backend.accounts.for_pool("blastpool").batch.client.get_task("blast", "task-0-00000").as_dict()
    assert body["resourceFiles"][0]["filePath"] == "query-0.fa" and "sig=" in body["resourceFiles"][0]["httpUrl"]
    assert "sig=" not in body["commandLine"]  # SAS tokens stay out of commands
