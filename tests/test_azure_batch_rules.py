"""What Azure Batch's rules (REST reference 2025-06-01, retirement notices) ask of orch's Azure backend,
checked without a service: multi-instance slots, account features, container job managers, Spot
node counts, image end of life."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from azure.batch import models as m
from click.testing import CliRunner

from orchestrator.backends.azure import (
    image_support,
    naming,
    pool_model,
    sweep_setup,
    task_model,
)
from orchestrator.backends.azure.credentials import Credentials
from orchestrator.backends.azure.spec import CPU_IMAGE, GPU_IMAGE, AzurePoolOptions
from orchestrator.cli.root import cli
from orchestrator.errors import CapacityError, SpecError
from orchestrator.plan import check_fits, make_plan
from orchestrator.spec.job import JobSpec
from orchestrator.spec.loader import load_job, load_pool
from orchestrator.spec.pool import PoolSpec

REPO = Path(__file__).resolve().parent.parent
CREDENTIALS = Credentials.model_validate({"batch": {"account": "abc", "url": "http://h", "aad": True},
                                         "registries": {"acr": {"username": "bot", "password": "pw"}}})


def azure_pool(**fields: object) -> PoolSpec:
    azure = {"vm_size": "D4s_v5", **fields.pop("azure", {})}  # type: ignore[dict-item]
    return PoolSpec.model_validate({"id": "p", "backend": "azure", "nodes": 2, "azure": azure, **fields})


def mpi_job(nodes: int = 2) -> JobSpec:
    return JobSpec.model_validate({"id": "j", "pool": "p", "tasks": [
        {"id": "train", "command": "python train.py", "distributed": {"launcher": "mpi", "nodes": nodes}}]})


def test_multi_node_tasks_are_planned_only_on_pools_with_one_slot_per_node() -> None:
    with pytest.raises(CapacityError) as refused:
        check_fits(mpi_job(), azure_pool())  # D4s_v5: 4 slots per node by default
    assert "one task slot per node" in str(refused.value) and "runs 4 tasks per node" in str(refused.value)
    assert "max_tasks_per_node: 1" in (refused.value.hint or "")
    check_fits(mpi_job(), azure_pool(max_tasks_per_node=1))
    check_fits(mpi_job(nodes=1), azure_pool())  # a one-node task is an ordinary task


@pytest.mark.parametrize("example", ["horovod_digits.yaml", "torchrun_digits.yaml"])
def test_the_gpu_template_runs_the_distributed_examples_with_one_slot_per_instance(example: str) -> None:
    pool = load_pool(REPO / "templates" / "azure_pool.yaml")
    job = load_job(REPO / "jobs" / example).model_copy(update={"pool": pool.id, "workdir": None})
    plan = make_plan(job, pool, base_dir=REPO)
    (launch,) = list(plan.launches())
    context = task_model.TaskContext(
        pool_id=pool.id, job_id=job.id, vm_size=pool.azure.vm_size, cpus_per_node=pool.cpus_per_node,  # type: ignore[attr-defined]
        gpus_per_node=pool.gpus_per_node, slots_per_node=pool.slots_per_node, pool_env=dict(pool.env),
        workdir_url=None, outputs_url=None, output_condition="taskcompletion",
        container=pool_model.task_container_settings(pool, CREDENTIALS))
    body = task_model.task_options(launch, context, "p/").as_dict()
    assert body["multiInstanceSettings"]["numberOfInstances"] == 2 and body["requiredSlots"] == 1
    created = pool_model.pool_create_options(pool, CREDENTIALS).as_dict()
    assert (created["taskSlotsPerNode"], created["enableInterNodeCommunication"]) == (1, True)
    assert body["containerSettings"]["imageName"] == "myregistry.azurecr.io/train:1.4"


def test_task_slots_stay_within_batch_limits(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("id: p\nbackend: azure\nmax_tasks_per_node: 9\nazure: {vm_size: D2s_v5}\n")
    with pytest.raises(SpecError) as refused:
        load_pool(path)
    assert "max_tasks_per_node: Batch runs at most 8 tasks per node on Standard_D2s_v5" in str(refused.value)
    assert azure_pool(max_tasks_per_node=8).slots_per_node == 8
    with pytest.raises(ValueError, match="at most 256"):
        azure_pool(max_tasks_per_node=257, azure={"vm_size": "ND96asr_v4"})


def test_max_parallel_tasks_is_an_account_feature_the_pool_file_declares() -> None:
    default = azure_pool()
    assert default.azure.max_parallel_tasks is False and not default.block.caps_in_flight  # type: ignore[attr-defined]
    featured = azure_pool(azure={"max_parallel_tasks": True})
    assert featured.block.caps_in_flight
    # the account's feature is not a property of the Batch pool: toggling it keeps "the same pool"
    assert pool_model.fingerprint(featured) == pool_model.fingerprint(default)


def test_the_sweep_manager_runs_in_the_pool_task_container() -> None:
    pool = azure_pool(azure={"container": {"images": ["r.io/t:1"], "registries": [
        {"server": "r.io", "credentials": "acr"}]}})
    settings = pool_model.task_container_settings(pool, CREDENTIALS)
    body = sweep_setup.manager_task("https://blob/p?sig", {}, container=settings).as_dict()
    assert body["id"] == naming.SWEEP_MANAGER_ID and body["requiredSlots"] == 1
    assert body["containerSettings"]["imageName"] == "r.io/t:1"
    assert body["containerSettings"]["registry"] == {"registryServer": "r.io", "username": "bot", "password": "pw"}
    assert "containerSettings" not in sweep_setup.manager_task("https://blob/p?sig", {}).as_dict()


def pool_file(tmp_path: Path, nodes: str, backend: str = "azure") -> Path:
    path = tmp_path / "pool.yaml"
    block = "azure: {vm_size: D2s_v5}\n" if backend == "azure" else ""
    path.write_text(f"id: p\nbackend: {backend}\nnodes: {nodes}\n{block}")
    return path


def test_spot_is_the_name_for_low_priority_nodes(tmp_path: Path) -> None:
    spot = load_pool(pool_file(tmp_path, "{dedicated: 1, spot: 4}"))
    assert (spot.nodes.dedicated, spot.nodes.low_priority, spot.nodes.total) == (1, 4, 5)
    body = pool_model.pool_create_options(spot.model_copy(update={"idle_timeout": None}), CREDENTIALS).as_dict()
    assert (body["targetDedicatedNodes"], body["targetLowPriorityNodes"]) == (1, 4)
    assert load_pool(pool_file(tmp_path, "{low_priority: 2}")).nodes.low_priority == 2
    assert PoolSpec.model_validate(spot.model_dump(mode="json")).nodes == spot.nodes  # records reload
    with pytest.raises(SpecError) as both:
        load_pool(pool_file(tmp_path, "{spot: 1, low_priority: 1}"))
    assert "pool.yaml:3" in str(both.value) and "not both" in str(both.value)
    with pytest.raises(SpecError) as negative:
        load_pool(pool_file(tmp_path, "{spot: -1}"))
    assert "spot" in str(negative.value)
    with pytest.raises(SpecError, match="no low-priority"):
        load_pool(pool_file(tmp_path, "{dedicated: 1, spot: 1}", backend="ray"))


def test_defaults_use_the_images_and_agents_batch_supports_longest() -> None:
    for publisher, offer, sku, _, agent in (GPU_IMAGE, CPU_IMAGE):
        assert image_support.marketplace_image(publisher, offer, sku).ends is None  # type: ignore[union-attr]
        assert image_support.node_agent(agent).ends is None  # type: ignore[union-attr]
    assert azure_pool(azure={"vm_size": "NC24ads_A100_v4"}).block.warnings() == []
    assert azure_pool().block.warnings() == []


def test_retired_and_soon_retired_images_and_agents_are_warned_about() -> None:
    jammy_hpc = AzurePoolOptions(vm_size="NC24ads_A100_v4", image={
        "publisher": "microsoft-dsvm", "offer": "ubuntu-hpc", "sku": "2204", "node_agent_sku_id": "batch.node.ubuntu 22.04"})
    soon = jammy_hpc.warnings(today=date(2026, 12, 1))
    assert soon == [
        "azure.image: Batch support for microsoft-dsvm/ubuntu-hpc/2204 ends on 2027-06-30, in 211 days "
        "(Azure/Batch#200): after that pools may be scaled to zero; use microsoft-dsvm/ubuntu-hpc/2404 instead",
        "azure.image.node_agent_sku_id: Batch support for batch.node.ubuntu 22.04 ends on 2027-06-30, in 211 days "
        "(Azure/Batch#200): after that pools may be scaled to zero; use batch.node.ubuntu 24.04 instead"]
    assert jammy_hpc.warnings(today=date(2025, 6, 1)) == []  # over a year away
    assert "ended on 2027-06-30" in jammy_hpc.warnings(today=date(2027, 7, 1))[0]
    focal = AzurePoolOptions(vm_size="D2s_v5", custom_image={
        "id": "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal/images/img",
        "node_agent_sku_id": "batch.node.ubuntu 20.04"})
    (retired,) = focal.warnings(today=date(2026, 12, 1))
    assert retired.startswith("azure.custom_image.node_agent_sku_id: Batch support for batch.node.ubuntu 20.04 "
                              "ended on 2025-04-23 (Azure/Batch#174): creating or growing the pool will fail")


def test_orch_validate_prints_image_warnings(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("id: old\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  image: {publisher: canonical, offer: "
                    "0001-com-ubuntu-server-focal, sku: 20_04-lts, node_agent_sku_id: batch.node.ubuntu 20.04}\n")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "0001-com-ubuntu-server-focal/20_04-lts ended on 2025-04-23" in result.output


def test_custom_images_come_from_a_compute_gallery(tmp_path: Path) -> None:
    path = tmp_path / "pool.yaml"
    path.write_text("id: c\nbackend: azure\nazure:\n  vm_size: D2s_v5\n  custom_image:\n    id: /subscriptions/s/"
                    "resourceGroups/g/providers/Microsoft.Compute/images/mine\n    node_agent_sku_id: x\n")
    with pytest.raises(SpecError) as managed:
        load_pool(path)
    assert "pool.yaml:6" in str(managed.value) and "no longer takes managed images" in str(managed.value)
    gallery = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/galleries/gal/images/img/versions/1.0.0"
    spec = azure_pool(azure={"custom_image": {"id": gallery, "node_agent_sku_id": "batch.node.ubuntu 24.04"}})
    vm = pool_model.vm_configuration(spec.azure, CREDENTIALS).as_dict()  # type: ignore[attr-defined]
    assert vm["imageReference"] == {"virtualMachineImageId": gallery}
    assert isinstance(m.BatchVmImageReference(vm["imageReference"]), m.BatchVmImageReference)
