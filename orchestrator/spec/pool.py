"""The pool spec (``pool.yaml``): where tasks run and how many nodes of what size.

The common keys live in ``PoolFields``. Each backend registered in ``orchestrator.registry``
adds one optional key, its block (``ray:``, ``azure:``; a ``BackendBlock``), so ``PoolSpec`` is
built from the registry when this module is imported. Only the chosen backend's block may be
given; a backend whose block is not ``required`` gets an all-defaults block. ``backend:`` must
name a registered backend whose requirements are installed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from orchestrator import registry
from orchestrator.errors import SpecError
from orchestrator.spec.blocks import BackendBlock
from orchestrator.spec.common import (
    Command,
    Duration,
    Env,
    Id,
    Money,
    StrictModel,
    check_command,
)

B = TypeVar("B", bound=BackendBlock)


class NodeCounts(StrictModel):
    """Node counts: ``dedicated`` and, where the backend has them, ``low_priority`` nodes, also
    spelled ``spot`` (one of the two): Batch's low-priority nodes are Spot VMs since March 2026."""

    dedicated: int = Field(default=1, ge=0, le=1000)
    low_priority: int = Field(default=0, ge=0, le=1000, validation_alias=AliasChoices("low_priority", "spot"),
                              description="preemptible nodes; `spot:` is the same key (Spot VMs)")

    @model_validator(mode="before")
    @classmethod
    def _one_name(cls, data: object) -> object:
        if isinstance(data, dict) and "spot" in data and "low_priority" in data:
            raise ValueError("give spot or low_priority, not both: they name the same nodes (Batch's low-priority "
                             "nodes are Spot VMs)")
        return data

    @property
    def total(self) -> int:
        return self.dedicated + self.low_priority


class StartTask(StrictModel):
    """Commands run once on each node before it takes tasks."""

    command: Annotated[Command, AfterValidator(check_command)]
    env: Env = Field(default_factory=dict)
    wait_for_success: bool = True
    max_retries: int = Field(default=0, ge=0, le=100)


def _installed_backend(name: str) -> str:
    try:
        registry.entry(name)
        registry.check_installed(name)
    except SpecError as exc:
        raise ValueError(f"{exc.message}; {exc.hint}") from None
    return name


class PoolFields(StrictModel):
    """A compute pool's common keys. ``nodes`` is a count or ``{dedicated, low_priority | spot}``."""

    id: Id
    backend: Annotated[str, AfterValidator(_installed_backend)] = "ray"
    nodes: NodeCounts = Field(default_factory=NodeCounts)
    cpus_per_node: float = Field(default=1.0, gt=0, le=1024)
    gpus_per_node: int = Field(default=0, ge=0, le=16)
    max_tasks_per_node: int | None = Field(default=None, ge=1, le=1024)
    env: Env = Field(default_factory=dict)
    start_task: StartTask | None = None
    idle_timeout: Duration | None = None
    """With no active or pending task for this long, the pool stops itself (Azure: shrinks to zero
    nodes; a local Ray cluster: stops); None never. Backends may default it (``pool_defaults``)."""
    autodelete: bool = False
    """At ``idle_timeout``, delete the pool instead of stopping it."""
    price_per_node_hour: float | None = Field(default=None, ge=0, le=1e6)
    """USD per node hour for the cost ledger: a Ray cluster's price, or a negotiated one (overrides
    the VM price table; Spot nodes then cost the same)."""
    max_spend: Money | None = None
    """USD: once the pool's spend reaches it, no task starts and running ones are stopped."""

    @model_validator(mode="before")
    @classmethod
    def _backend_defaults(cls, data: object) -> object:
        """The chosen backend's block fills in defaults (its own, and common keys it derives)."""
        if not isinstance(data, dict):
            return data
        backend = data.get("backend", "ray")
        model = registry.block_models().get(backend) if isinstance(backend, str) else None
        if model is None:
            return data
        block = data.get(backend)
        if block is None and not model.required:
            data = {**data, backend: {}}
        return {**model.pool_defaults(block), **data} if isinstance(block, dict) else data

    @field_validator("nodes", mode="before")
    @classmethod
    def _count_or_mapping(cls, value: object) -> object:
        if isinstance(value, bool):
            raise ValueError("nodes is a count or a mapping {dedicated, spot} (or {dedicated, low_priority})")
        if isinstance(value, int):
            return {"dedicated": value}
        return value

    @field_validator("start_task", mode="before")
    @classmethod
    def _command_shorthand(cls, value: object) -> object:
        return {"command": value} if isinstance(value, (str, list)) else value

    @model_validator(mode="after")
    def _one_block_and_nodes(self) -> PoolFields:
        if self.nodes.total < 1:
            raise ValueError("a pool needs at least one node")
        for name in registry.block_models():
            given = getattr(self, name, None) is not None
            if name == self.backend and not given:
                raise ValueError(f"backend {name} needs an '{name}:' block (see `orch schema --kind pool`)")
            if name != self.backend and given:
                raise ValueError(f"the '{name}:' block applies only to backend: {name}")
        if self.nodes.low_priority and not self.block.low_priority_nodes:
            raise ValueError(f"the {self.backend} backend has no low-priority (Spot) nodes: use nodes: N")
        problem = self.block.pool_problem(slots_per_node=self.slots_per_node)
        if problem is not None:
            raise ValueError(problem)
        return self

    @property
    def block(self) -> BackendBlock:
        """The chosen backend's block."""
        value = getattr(self, self.backend)
        assert isinstance(value, BackendBlock)
        return value

    def options(self, model: type[B]) -> B:
        """The backend block as its own type (for the backend that owns ``model``)."""
        value = self.block
        if not isinstance(value, model):
            raise TypeError(f"pool {self.id!r} uses backend {self.backend}, whose block is not a {model.__name__}")
        return value

    @property
    def slots_per_node(self) -> int:
        """Concurrent tasks a node takes: ``max_tasks_per_node`` or one per whole CPU."""
        return self.max_tasks_per_node or max(1, int(self.cpus_per_node))

    def with_node_count(self, nodes: int) -> PoolFields:
        """The same pool with ``nodes`` nodes: dedicated, unless it has only low-priority ones."""
        if self.nodes.low_priority and not self.nodes.dedicated:
            counts = NodeCounts(dedicated=0, low_priority=nodes)
        else:
            counts = NodeCounts(dedicated=nodes, low_priority=0)
        return self.model_copy(update={"nodes": counts})


def _with_blocks() -> type[PoolFields]:
    blocks: dict[str, Any] = {name: (model | None, None) for name, model in registry.block_models().items()}
    model: type[PoolFields] = create_model("PoolSpec", __base__=PoolFields, __module__=__name__,
                                           __doc__=PoolFields.__doc__, **blocks)
    return model


if TYPE_CHECKING:
    PoolSpec = PoolFields
else:
    PoolSpec = _with_blocks()
