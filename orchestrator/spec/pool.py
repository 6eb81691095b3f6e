"""The pool spec (``pool.yaml``): where tasks run and how many nodes of what size."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from orchestrator.backends.azure import vm_sizes
from orchestrator.errors import SpecError
from orchestrator.backends.azure.spec import AzurePoolOptions
from orchestrator.spec.common import Command, Env, Id, StrictModel, check_command


class NodeCounts(StrictModel):
    """Node counts. Ray uses ``dedicated`` only; Azure adds low-priority (spot) nodes."""

    dedicated: int = Field(default=1, ge=0, le=1000)
    low_priority: int = Field(default=0, ge=0, le=1000)

    @property
    def total(self) -> int:
        return self.dedicated + self.low_priority


class StartTask(StrictModel):
    """Commands run once on each node before it takes tasks."""

    command: Annotated[Command, AfterValidator(check_command)]
    env: Env = Field(default_factory=dict)
    wait_for_success: bool = True
    max_retries: int = Field(default=0, ge=0, le=100)


class RayOptions(StrictModel):
    """Ray-specific settings. Without ``address`` orch starts a local cluster itself."""

    address: str | None = None
    auth_token_file: str | None = None
    startup_timeout: float = Field(default=120.0, gt=0, le=3600)


class PoolSpec(StrictModel):
    """A compute pool. ``nodes`` is a count or ``{dedicated, low_priority}``.

    ``backend: azure`` pools need an ``azure:`` block (``AzurePoolOptions``); their
    ``cpus_per_node``/``gpus_per_node`` default to the VM size's vCPUs and GPUs.
    """

    id: Id
    backend: Literal["ray", "azure"] = "ray"
    nodes: NodeCounts = Field(default_factory=NodeCounts)
    cpus_per_node: float = Field(default=1.0, gt=0, le=1024)
    gpus_per_node: int = Field(default=0, ge=0, le=16)
    max_tasks_per_node: int | None = Field(default=None, ge=1, le=1024)
    env: Env = Field(default_factory=dict)
    start_task: StartTask | None = None
    ray: RayOptions = Field(default_factory=RayOptions)
    azure: AzurePoolOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _azure_node_shape(cls, data: object) -> object:
        """Azure pools take CPUs and GPUs per node from their VM size unless given."""
        if not isinstance(data, dict) or data.get("backend") != "azure" or not isinstance(data.get("azure"), dict):
            return data
        try:
            size = vm_sizes.lookup(str(data["azure"].get("vm_size", "")))
        except SpecError:
            return data  # AzurePoolOptions reports the unknown size at its own key
        return {"cpus_per_node": float(size.vcpus), "gpus_per_node": size.gpus, **data}

    @field_validator("nodes", mode="before")
    @classmethod
    def _count_or_mapping(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("nodes is a count or a mapping {dedicated, low_priority}")
        if isinstance(value, int):
            return {"dedicated": value}
        return value

    @field_validator("start_task", mode="before")
    @classmethod
    def _command_shorthand(cls, value: object) -> object:
        return {"command": value} if isinstance(value, (str, list)) else value

    @model_validator(mode="after")
    def _has_nodes(self) -> "PoolSpec":
        if self.nodes.total < 1:
            raise ValueError("a pool needs at least one node")
        if self.backend == "ray" and self.nodes.low_priority:
            raise ValueError("the ray backend has no low-priority nodes: use nodes: N")
        if (self.backend == "azure") != (self.azure is not None):
            raise ValueError("backend azure needs an 'azure:' block (vm_size, …)" if self.backend == "azure"
                             else "the 'azure:' block applies only to backend: azure")
        return self

    @property
    def slots_per_node(self) -> int:
        """Concurrent tasks a node takes: ``max_tasks_per_node`` or one per whole CPU."""
        return self.max_tasks_per_node or max(1, int(self.cpus_per_node))
