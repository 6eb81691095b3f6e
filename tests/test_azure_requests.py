"""Request kinds the other Azure tests never send, end to end through orch against the strict local
Batch service (HTTPS, job tokens allowed) and Azurite: container pools with registry logins and task
container settings, gallery images, Spot nodes, blob inputs, task wall-clock limits, sweeps capped on
default and featured accounts, and an adaptive sweep whose controller runs in the pool's container."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from orchestrator import pools
from orchestrator.backends.azure.backend import AzureBackend
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.retries import RetryPolicy
from orchestrator.errors import UnsupportedError
from orchestrator.model import JobInfo, JobRef, TaskState
from orchestrator.spec.job import JobSpec
from orchestrator.spec.pool import PoolSpec
from orchestrator.submit import submit_job
from tests.batch_service import (
    BatchService,
    ServiceSettings,
    self_signed_cert,
    start_batch_service,
)
from tests.support.azurite import Azurite, start_azurite

pytestmark = pytest.mark.slow
GALLERY = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal/images/trainer/versions/2.0.0"
REGISTRY_PASSWORD = "registry-secret-123"
CONTAINER = {"images": ["r.example.io/train:1"], "run_options": "--ipc=host",
             "registries": [{"server": "r.example.io", "credentials": "trainreg"}]}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("orch-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ORCH_HOME", str(path))
        yield path


@pytest.fixture(autouse=True)
def orch_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BatchService, Azurite]]:
    tls = self_signed_cert(tmp_path_factory.mktemp("tls"))
    token_account = ServiceSettings(account_features=frozenset({"authenticationTokenSettings"}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REQUESTS_CA_BUNDLE", str(tls.cert))
        with start_batch_service(tmp_path_factory.mktemp("batch"), tls=tls, settings=token_account) as batch, \
                start_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
            yield batch, azurite


@pytest.fixture(scope="module")
def backend(home: Path, services: tuple[BatchService, Azurite]) -> AzureBackend:
    batch, azurite = services
    credentials = Credentials.model_validate({
        "batch": {"account": batch.account, "url": batch.url, "key": batch.key},
        "storage": {"connection_string": azurite.connection_string},
        "registries": {"trainreg": {"username": "trainer", "password": REGISTRY_PASSWORD}}})
    return AzureBackend(credentials=credentials, policy=RetryPolicy(base=0.01, cap=0.2))


@pytest.fixture(scope="module")
def sdk(services: tuple[BatchService, Azurite]) -> BatchClient:
    batch, _ = services
    return BatchClient(batch.url, AzureNamedKeyCredential(batch.account, batch.key))


def pool_spec(pool_id: str, nodes: object = 2, **azure: object) -> PoolSpec:
    return PoolSpec.model_validate({"id": pool_id, "backend": "azure", "nodes": nodes, "max_tasks_per_node": 2,
                                    "env": {"ORCH_PYTHON": sys.executable}, "azure": {"vm_size": "D2s_v5", **azure}})


def submit(backend: AzureBackend, job: dict[str, object]):  # type: ignore[no-untyped-def]
    return submit_job(JobSpec.model_validate({"workdir": None, **job}), config_dir=Path.cwd(), backend=backend)


def finished(backend: AzureBackend, pool_id: str, job_id: str, timeout: float = 120) -> JobInfo:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = backend.get_job(JobRef(pool_id, job_id))
        if info is not None and info.finished:
            return info
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def boxed(backend: AzureBackend) -> str:
    """A container pool on a gallery image, with a registry login, one dedicated and one Spot node."""
    pools.create_pool(pool_spec("boxed", {"dedicated": 1, "spot": 1}, container=CONTAINER,
                                custom_image={"id": GALLERY, "node_agent_sku_id": "batch.node.ubuntu 24.04"},
                                task_authentication_tokens=True),  # this module's account still allows them
                      backend=backend)
    return "boxed"


def test_container_gallery_spot_pool_runs_tasks_in_its_container(backend: AzureBackend, sdk: BatchClient,
                                                                 boxed: str) -> None:
    pool = sdk.get_pool(boxed)
    vm = pool.virtual_machine_configuration
    assert vm.image_reference.virtual_machine_image_id == GALLERY
    registry = vm.container_configuration.container_registries[0]
    assert (registry.registry_server, registry.username) == ("r.example.io", "trainer")
    assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 1)
    assert sorted(node.is_dedicated for node in sdk.list_nodes(boxed)) == [False, True]
    submit(backend, {"id": "boxedjob", "pool": boxed, "tasks": [
        {"id": f"t{i}", "command": "echo in the container", "max_wall_time": "1m"} for i in range(2)]})
    job = finished(backend, boxed, "boxedjob")
    assert dict(job.task_counts) == {"succeeded": 2}
    task = sdk.get_task("boxedjob", "t0")
    settings = task.container_settings
    assert (settings.image_name, settings.container_run_options) == ("r.example.io/train:1", "--ipc=host")
    assert (settings.registry.registry_server, settings.registry.username) == ("r.example.io", "trainer")
    assert task.execution_info.container_info.state == "exited"
    assert task.constraints.max_wall_clock_time == timedelta(minutes=1)


def test_task_wall_clock_limit_ends_the_task(backend: AzureBackend, sdk: BatchClient, boxed: str) -> None:
    submit(backend, {"id": "slow", "pool": boxed, "tasks": [{"id": "sleeper", "command": "sleep 30",
                                                            "max_wall_time": "1s"}]})
    job = finished(backend, boxed, "slow")
    (task,) = backend.list_tasks(JobRef(boxed, "slow"))
    assert job.task_counts == {"failed": 1} and task.state == TaskState.FAILED
    assert task.error is not None and "maximum wall clock time" in task.error
    assert sdk.get_task("slow", "sleeper").constraints.max_wall_clock_time == timedelta(seconds=1)


def test_blob_inputs_reach_tasks_through_container_urls(backend: AzureBackend, sdk: BatchClient,
                                                        services: tuple[BatchService, Azurite], boxed: str) -> None:
    _, azurite = services
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    blobs.create_container("datasets")
    for name, text in (("sets/a.txt", "alpha\n"), ("sets/b.txt", "beta\n"), ("other/c.txt", "no\n")):
        blobs.get_blob_client("datasets", name).upload_blob(text.encode())
    submit(backend, {"id": "readsets", "pool": boxed, "inputs": [{"blob": "datasets/sets", "to": "data"}],
                     "tasks": [{"id": "cat", "command": "cat data/sets/a.txt data/sets/b.txt; ls data"}]})
    finished(backend, boxed, "readsets")
    assert backend.read_file(JobRef(boxed, "readsets"), "cat", "stdout").data == b"alpha\nbeta\nsets\n"
    (resource,) = [r for r in sdk.get_task("readsets", "cat").resource_files if r.storage_container_url]
    assert resource.storage_container_url.split("?")[0].endswith("/datasets")
    assert (resource.blob_prefix, resource.file_path, resource.http_url) == ("sets", "data", None)


CAPPED = {"id": "capped", "tasks": [{"id": "trial", "command": "sleep 0.3; echo {{x}}", "search_space": {
    "x": {"choice": [1, 2, 3, 4]}}, "limits": {"max_concurrent_trials": 2}}]}


def test_max_concurrent_trials_uses_max_parallel_tasks_only_where_the_account_has_it(
        backend: AzureBackend, sdk: BatchClient, services: tuple[BatchService, Azurite], boxed: str) -> None:
    batch, _ = services
    submit(backend, {**CAPPED, "pool": boxed})  # a default account: the job carries no maxParallelTasks
    assert sdk.get_job("capped").max_parallel_tasks == -1
    assert dict(finished(backend, boxed, "capped").task_counts) == {"succeeded": 4}
    pools.create_pool(pool_spec("featured", 1, max_parallel_tasks=True), backend=backend)
    with pytest.raises(UnsupportedError) as refused:  # the pool file claims a feature the account lacks
        submit(backend, {**CAPPED, "id": "claimed", "pool": "featured"})
    assert "does not have the maxParallelTasks feature" in str(refused.value) and refused.value.exit_code == 2
    assert "remove max_parallel_tasks" in (refused.value.hint or "")
    batch.settings.account_features = batch.settings.account_features | {"maxParallelTasks"}
    try:
        submit(backend, {**CAPPED, "id": "featuredjob", "pool": "featured"})
    finally:
        batch.settings.account_features = batch.settings.account_features - {"maxParallelTasks"}
    assert sdk.get_job("featuredjob").max_parallel_tasks == 2
    assert dict(finished(backend, "featured", "featuredjob").task_counts) == {"succeeded": 4}
    pools.delete_pool("featured", backend=backend)


STEPS = ('for step in 1 2 3 4 5 6; do echo "{\\"step\\": $step, \\"acc\\": {{quality}}}" >> "$ORCH_METRICS_FILE"; '
         'sleep 0.4; done')


def test_adaptive_sweep_runs_its_controller_in_the_pool_container(backend: AzureBackend, sdk: BatchClient,
                                                                  services: tuple[BatchService, Azurite],
                                                                  boxed: str) -> None:
    batch, _ = services
    sweep = {"id": "boxedsweep", "pool": boxed, "tasks": [{
        "id": "trial", "command": STEPS, "search_space": {"quality": {"choice": [0.9, 0.1]}},
        "objective": {"metric": "acc", "goal": "maximize"}, "limits": {"max_concurrent_trials": 2},
        "early_termination": {"policy": "bandit", "slack_amount": 0.2, "delay_evaluation": 2}}]}
    allowed = batch.settings.account_features
    batch.settings.account_features = allowed - {"authenticationTokenSettings"}  # a default account today
    try:
        with pytest.raises(UnsupportedError) as no_token:
            submit(backend, sweep)
    finally:
        batch.settings.account_features = allowed
    assert "authenticationTokenSettings" in str(no_token.value) and "retired" in (no_token.value.hint or "")
    submit(backend, sweep)
    manager = sdk.get_job("boxedsweep").job_manager_task
    assert manager.container_settings.image_name == "r.example.io/train:1"
    job = finished(backend, boxed, "boxedsweep", timeout=180)
    states = {task.id: task.state for task in backend.list_tasks(JobRef(boxed, "boxedsweep"))}
    assert states == {"trial-00000": TaskState.SUCCEEDED, "trial-00001": TaskState.STOPPED}
    assert job.state == "completed"
