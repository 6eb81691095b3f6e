"""The ``azure:`` block of a pool file: how an Azure Batch pool is built.

Only pools with ``backend: azure`` have it (``PoolSpec`` checks). Node counts, task slots per
node (``max_tasks_per_node``), the start task and the environment stay in the pool's common
keys; this block holds what only Batch knows: VM size, OS image, containers, node fill,
autoscale, inter-node communication, the lifetime of the SAS URLs orch hands to tasks, the
nodes' managed identity (how a sweep controller reaches Batch), and what the Batch account has
beyond a default one (the ``maxParallelTasks`` job property; task authentication tokens).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator.backends.azure import image_support, vm_sizes
from orchestrator.errors import SpecError
from orchestrator.spec.blocks import BackendBlock
from orchestrator.spec.common import Duration, StrictModel

GPU_IMAGE = ("microsoft-dsvm", "ubuntu-hpc", "2404", "latest", "batch.node.ubuntu 24.04")
"""Default image of GPU and container pools: Ubuntu HPC 24.04, with NVIDIA drivers, Docker and MPI
(Batch's replacement for ubuntu-hpc 2204, whose support ends 2027-06-30; see ``image_support``)."""
CPU_IMAGE = ("canonical", "ubuntu-24_04-lts", "server", "latest", "batch.node.ubuntu 24.04")
"""Default image of CPU pools without containers."""
_GALLERY_IMAGE = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Compute/galleries/"
                            r"[^/]+/images/[^/]+(/versions/[^/]+)?$", re.IGNORECASE)
MAX_TASK_SLOTS = 256
DEFAULT_IDLE_TIMEOUT = 15 * 60.0
"""Azure pools stop after 15 minutes without work unless the pool file says otherwise
(``idle_timeout: null``: never): an idle pool costs at most those 15 minutes plus one 5-minute
autoscale evaluation, and a stopped pool takes minutes to allocate nodes again, so short gaps
between jobs do not pay for a restart (see ``autostop``)."""
_CONTAINER_NAME = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class MarketplaceImage(StrictModel):
    """A marketplace image and the Batch node agent that matches it."""

    publisher: str = Field(min_length=1)
    offer: str = Field(min_length=1)
    sku: str = Field(min_length=1)
    version: str = "latest"
    node_agent_sku_id: str = Field(min_length=1)


class CustomImage(StrictModel):
    """An Azure Compute Gallery image or image version (its ARM resource id). Batch stopped taking
    managed images (``Microsoft.Compute/images``) after 31 March 2026."""

    id: str
    node_agent_sku_id: str = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _gallery_image(cls, value: str) -> str:
        if not _GALLERY_IMAGE.match(value):
            raise ValueError(f"{value!r} is not an Azure Compute Gallery image id (/subscriptions/<sub>/resourceGroups/"
                             "<group>/providers/Microsoft.Compute/galleries/<gallery>/images/<image>[/versions/<v>]); "
                             "Batch no longer takes managed images: publish the image to a gallery")
        return value


class RegistryRef(StrictModel):
    """A container registry; its password is looked up in credentials.yaml ``registries``."""

    server: str = Field(min_length=1)
    credentials: str = Field(min_length=1, description="name of an entry under `registries:` in credentials.yaml")


class ContainerOptions(StrictModel):
    """Tasks run in ``task_image`` (default: the first of ``images``); ``images`` are prefetched."""

    images: list[str] = Field(min_length=1)
    task_image: str | None = None
    run_options: str = ""
    registries: list[RegistryRef] = Field(default_factory=list)

    @property
    def image_for_tasks(self) -> str:
        return self.task_image or self.images[0]


_IDENTITY_ID = re.compile(r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.ManagedIdentity/"
                          r"userAssignedIdentities/[^/]+$", re.IGNORECASE)
_CLIENT_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class PoolIdentity(StrictModel):
    """A user-assigned managed identity the pool's nodes carry. The sweep controller reaches Batch
    with it, so it needs a role on the Batch account that may read and write jobs and tasks.
    Batch takes pool identities only through Azure Resource Manager: orch creates such a pool
    there (the credentials need the Batch account's ``resource_id``)."""

    resource_id: str = Field(description="the identity's ARM resource id (…/providers/Microsoft.ManagedIdentity/"
                                         "userAssignedIdentities/<name>)")
    client_id: str | None = Field(default=None, description="the identity's client id; tokens are asked for "
                                                             "by resource id without it")

    @field_validator("resource_id")
    @classmethod
    def _arm_id(cls, value: str) -> str:
        if not _IDENTITY_ID.match(value):
            raise ValueError(f"{value!r} is not a user-assigned identity's resource id (/subscriptions/<sub>/"
                             "resourceGroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)")
        return value

    @field_validator("client_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None and not _CLIENT_ID.match(value):
            raise ValueError(f"{value!r} is not a client id (a GUID such as 00000000-0000-0000-0000-000000000000)")
        return value


class Autoscale(StrictModel):
    """A Batch autoscale ``formula``, or a named ``scenario`` with node bounds.

    ``pending_tasks``: as many nodes as pending tasks need (by task slots), between
    ``min_nodes`` and ``max_nodes``, re-evaluated every ``interval``. With ``low_priority`` they
    are Spot nodes, and Spot nodes preempted for ``replace_preempted_after`` are replaced by
    dedicated ones (``$PreemptedNodeCount``, as Batch's autoscale documentation shows) until Spot
    capacity returns.
    """

    formula: str | None = None
    scenario: Literal["pending_tasks"] | None = None
    min_nodes: int = Field(default=0, ge=0, le=1000)
    max_nodes: int | None = Field(default=None, ge=0, le=1000)
    low_priority: bool = False
    interval: Duration = 300.0
    replace_preempted_after: Duration = 180.0

    @model_validator(mode="after")
    def _one_way(self) -> "Autoscale":
        if (self.formula is None) == (self.scenario is None):
            raise ValueError("autoscale takes either a formula or a scenario (pending_tasks), not both or neither")
        if self.scenario and self.max_nodes is None:
            raise ValueError("autoscale scenario pending_tasks needs max_nodes")
        if self.max_nodes is not None and self.max_nodes < self.min_nodes:
            raise ValueError("autoscale max_nodes must be at least min_nodes")
        if not 300 <= self.interval <= 168 * 3600:
            raise ValueError("autoscale interval must be between 5m and 168h (Batch's limits)")
        if self.replace_preempted_after > 86400:
            raise ValueError("autoscale replace_preempted_after must be at most 24h")
        return self


class AzurePoolOptions(BackendBlock):
    """Settings of an Azure Batch pool (see the module docstring)."""

    required: ClassVar[bool] = True
    low_priority_nodes: ClassVar[bool] = True
    blob_inputs: ClassVar[bool] = True

    vm_size: str
    image: MarketplaceImage | None = None
    custom_image: CustomImage | None = None
    container: ContainerOptions | None = None
    inter_node_communication: bool | Literal["auto"] = "auto"
    node_fill: Literal["pack", "spread"] = "spread"
    autoscale: Autoscale | None = None
    allocation_timeout: Duration = 1800.0
    job_lifetime: Duration = 48 * 3600.0
    output_upload: Literal["tasksuccess", "taskfailure", "taskcompletion"] = "taskcompletion"
    storage_container: str | None = None
    max_parallel_tasks: bool = Field(default=False, description=(
        "the Batch account has the maxParallelTasks job property (a Batch account feature, off by default: "
        "ask Azure support); then Batch itself caps a sweep's trials in flight"))
    identity: PoolIdentity | None = None
    task_authentication_tokens: bool = Field(default=False, description=(
        "the Batch account still allows task authentication tokens (authenticationTokenSettings, retired by "
        "Batch on 30 September 2024); then a sweep controller may use one when the pool has no identity"))

    @field_validator("vm_size")
    @classmethod
    def _known_size(cls, value: str) -> str:
        try:
            return vm_sizes.lookup(value).name
        except SpecError as exc:
            raise ValueError(f"{exc.message}; {exc.hint}") from None

    @field_validator("storage_container")
    @classmethod
    def _container_name(cls, value: str | None) -> str | None:
        if value is not None and not _CONTAINER_NAME.match(value):
            raise ValueError(f"{value!r} is not a blob container name: 3-63 lowercase letters, digits and "
                             "single hyphens, starting and ending with a letter or digit")
        return value

    @model_validator(mode="after")
    def _limits(self) -> "AzurePoolOptions":
        if self.image is not None and self.custom_image is not None:
            raise ValueError("give either image (marketplace) or custom_image, not both")
        if not 10 <= self.allocation_timeout <= 7 * 86400:
            raise ValueError("allocation_timeout must be between 10s and 7d")
        if not 3600 <= self.job_lifetime <= 7 * 86400:
            raise ValueError("job_lifetime must be between 1h and 7d: it bounds the SAS URLs given to tasks")
        return self

    @classmethod
    def pool_defaults(cls, block: Mapping[str, Any]) -> dict[str, Any]:
        """CPUs and GPUs per node default to the VM size's (an unknown size is reported at its key);
        an Azure pool stops itself after ``DEFAULT_IDLE_TIMEOUT`` without work (``autostop``)."""
        defaults: dict[str, Any] = {"idle_timeout": DEFAULT_IDLE_TIMEOUT}
        try:
            size = vm_sizes.lookup(str(block.get("vm_size", "")))
        except SpecError:
            return defaults
        return {**defaults, "cpus_per_node": float(size.vcpus), "gpus_per_node": size.gpus}

    def spans_nodes(self, pool_nodes: int) -> bool:
        """Inter-node communication: as asked, or (``auto``) on when the pool can have several nodes."""
        if self.inter_node_communication != "auto":
            return bool(self.inter_node_communication)
        most = (self.autoscale.max_nodes or 0) if self.autoscale else pool_nodes
        return vm_sizes.requires_inter_node_communication(self.vm_size, max(1, most))

    def pool_problem(self, *, slots_per_node: int) -> str | None:
        """Batch allows at most 4 task slots per vCPU of the VM size, and 256."""
        most = min(4 * vm_sizes.lookup(self.vm_size).vcpus, MAX_TASK_SLOTS)
        if slots_per_node <= most:
            return None
        return (f"max_tasks_per_node: Batch runs at most {most} tasks per node on {self.vm_size} (4 per vCPU, "
                f"at most {MAX_TASK_SLOTS}); got {slots_per_node}")

    def distributed_problem(self, *, nodes: int, slots_per_node: int) -> tuple[str, str] | None:
        """Batch runs a multi-node task as a multi-instance task, which it schedules only on pools
        with one task slot per node (elsewhere it stays queued forever)."""
        if slots_per_node == 1:
            return None
        return (f"a task on {nodes} nodes becomes a Batch multi-instance task, which Batch schedules only on pools "
                f"with one task slot per node; this pool runs {slots_per_node} tasks per node",
                "set max_tasks_per_node: 1 in the pool file, then `orch pool delete` and `orch pool create` it "
                "(or keep a separate pool for distributed jobs)")

    @property
    def caps_in_flight(self) -> bool:
        """Batch caps tasks in flight (``maxParallelTasks``) only where the account has the feature."""
        return self.max_parallel_tasks

    def controller_problem(self) -> tuple[str, str] | None:
        """A sweep controller runs as a Batch job manager task and must reach Batch: with the pool's
        managed identity, or a task authentication token where the account still allows them."""
        if self.identity is not None or self.task_authentication_tokens:
            return None
        return ("this sweep needs a sweep controller in the pool (a Batch job manager task), which must reach "
                "Batch: with the pool's managed identity (azure.identity), or with a task authentication token, "
                "which Batch retired on 30 September 2024; this pool has neither",
                "set azure.identity to a user-assigned identity with a role on the Batch account ({resource_id: "
                "/subscriptions/<sub>/resourceGroups/<group>/providers/Microsoft.ManagedIdentity/"
                "userAssignedIdentities/<name>, client_id: <its client id>}), then `orch pool delete` and "
                "`orch pool create`; or set azure.task_authentication_tokens: true if the account still allows "
                "task authentication tokens")

    def warnings(self, today: date | None = None) -> list[str]:
        """The image or node agent SKU is retired, or retires within a year (``image_support``)."""
        today = today or date.today()
        image = None
        if self.custom_image is not None:
            agent, agent_key = self.custom_image.node_agent_sku_id, "azure.custom_image.node_agent_sku_id"
        else:
            market = self.marketplace_image()
            image = image_support.marketplace_image(market.publisher, market.offer, market.sku)
            agent = market.node_agent_sku_id
            agent_key = "azure.image.node_agent_sku_id" if self.image else "azure.image (orch's default)"
        found = [image_support.warning("azure.image" if self.image else "azure.image (orch's default)", image, today),
                 image_support.warning(agent_key, image_support.node_agent(agent), today)]
        return [text for text in found if text is not None]

    @property
    def has_gpu(self) -> bool:
        return vm_sizes.lookup(self.vm_size).has_gpu

    def marketplace_image(self) -> MarketplaceImage:
        """The image nodes boot: the one given, or the GPU-/container-aware default."""
        if self.image is not None:
            return self.image
        publisher, offer, sku, version, agent = GPU_IMAGE if self.has_gpu or self.container else CPU_IMAGE
        return MarketplaceImage(publisher=publisher, offer=offer, sku=sku, version=version, node_agent_sku_id=agent)
