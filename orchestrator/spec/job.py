"""The job spec (``jobs/*.yaml``): tasks to run on a pool, with retries, limits and dependencies."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from orchestrator.spec.common import (
    TRIAL_INDEX_DIGITS,
    Command,
    Duration,
    Env,
    Id,
    KeyedError,
    Money,
    Retries,
    StrictModel,
    check_command,
)
from orchestrator.spec.inputs import InputSpec
from orchestrator.spec.sweep import SweepFields


class TaskResources(StrictModel):
    """What one task needs on its node (per rank's node share for distributed tasks)."""

    cpus: float = Field(default=1.0, gt=0, le=1024)
    gpus: float = Field(default=0.0, ge=0, le=16)


class MpiOptions(StrictModel):
    runtime: Literal["openmpi", "mpich", "intelmpi"] = "openmpi"
    options: list[str] = Field(default_factory=list)


class DistributedSpec(StrictModel):
    """Run the command as one data-parallel job over several nodes.

    ``nodes`` is a count or ``"pool"`` (every node of the pool); ``processes_per_node`` None means
    the pool's GPUs per node, else 1 (``orchestrator.launch.plans.resolve_*`` resolve both against
    a pool; a ``TaskLaunch`` carries the resolved copy). An ``mpi`` block selects the MPI runtime
    for launcher ``mpi`` (Open MPI without one), and for launcher ``horovod`` selects
    ``horovodrun --mpi`` (an MPI-enabled Horovod build) instead of Gloo.
    """

    launcher: Literal["horovod", "torchrun", "mpi"]
    nodes: int | Literal["pool"] = Field(default=1)
    processes_per_node: int | None = Field(default=None, ge=1, le=128)
    mpi: MpiOptions | None = None

    @field_validator("nodes")
    @classmethod
    def _positive(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1000:
            raise ValueError("nodes must be between 1 and 1000, or 'pool'")
        return value

    @model_validator(mode="after")
    def _mpi_only_for_mpi_launchers(self) -> "DistributedSpec":
        if self.mpi is not None and self.launcher == "torchrun":
            raise ValueError("'mpi' settings apply to launcher horovod or mpi, not torchrun")
        return self

    @property
    def uses_mpi(self) -> bool:
        """True when the launch goes through an MPI runtime (launcher mpi, or horovod --mpi)."""
        return self.launcher == "mpi" or self.mpi is not None

    @property
    def runtime(self) -> Literal["openmpi", "mpich", "intelmpi"]:
        """The MPI runtime in effect; Open MPI unless the spec names another."""
        return self.mpi.runtime if self.mpi is not None else "openmpi"

    @property
    def mpi_options(self) -> tuple[str, ...]:
        """Extra arguments for the MPI launcher, user's order."""
        return tuple(self.mpi.options) if self.mpi is not None else ()


class TaskSpec(SweepFields):
    """One task. Without ``id`` it gets ``task-<index>`` (stable across re-submissions).

    With ``search_space`` or ``task_factory`` it expands into trials ``<id>-00000``, … (see
    ``orchestrator.spec.sweep``); placeholders ``{{name}}`` in the command take each trial's values.
    """

    id: Id | None = None
    command: Annotated[Command, AfterValidator(check_command)]
    env: Env = Field(default_factory=dict)
    resources: TaskResources = Field(default_factory=TaskResources)
    max_retries: Retries | None = None
    max_wall_time: Duration | None = None
    depends_on: list[Id] = Field(default_factory=list)
    output_files: list[str] = Field(default_factory=list)
    distributed: DistributedSpec | None = None


class JobLimits(StrictModel):
    """Caps on the whole job."""

    budget: Money | None = None
    """USD the job's tasks may cost in all; at it, no task starts and running ones stop."""


class JobSpec(StrictModel):
    """A job: its pool, defaults for its tasks, and the tasks.

    ``workdir`` (relative to the config dir; ``null`` for none) is snapshotted at submission and
    linked into every task's own working directory, so relative paths in commands work.
    ``inputs`` are files placed in every task's working directory (see ``orchestrator.spec.inputs``).
    """

    id: Id
    pool: Id
    env: Env = Field(default_factory=dict)
    max_retries: Retries = 0
    max_wall_time: Duration | None = None
    auto_complete: bool = True
    workdir: str | None = "."
    inputs: list[InputSpec] = Field(default_factory=list)
    limits: JobLimits | None = None
    tasks: list[TaskSpec] = Field(min_length=1, max_length=100_000)

    @model_validator(mode="after")
    def _ids_and_dependencies(self) -> "JobSpec":
        ids = self.task_ids()
        _check_unique(ids, self.tasks)
        known = set(ids)
        for index, task in enumerate(self.tasks):
            for position, dep in enumerate(task.depends_on):
                if dep not in known:
                    raise KeyedError(f"tasks[{index}].depends_on[{position}]",
                                     f"tasks[{index}].depends_on names {dep!r}, which is not a task of this job")
        cycle = _find_cycle({tid: list(t.depends_on) for tid, t in zip(ids, self.tasks)})
        if cycle:
            raise ValueError(f"depends_on has a cycle: {' -> '.join(cycle)}; remove one of these dependencies")
        return self

    def task_ids(self) -> list[str]:
        """Each task's id: its own, or ``task-<index>``."""
        return [t.id or f"task-{i}" for i, t in enumerate(self.tasks)]


def _check_unique(ids: list[str], tasks: list[TaskSpec]) -> None:
    """Task ids are unique in a job, ignoring case (Azure Batch compares them so), and no task id
    is also the id of another task's trial (``<sweep task>-00001``)."""
    first: dict[str, int] = {}
    for index, task_id in enumerate(ids):
        key = task_id.casefold()
        if key in first:
            other = ids[first[key]]
            same = "is used twice" if other == task_id else f"and {other!r} (tasks[{first[key]}]) differ only in case"
            raise KeyedError(f"tasks[{index}].id",
                             f"task id {task_id!r} {same}; task ids must be unique in a job, ignoring case")
        first[key] = index
    sweeps = {task_id.casefold(): index for index, (task_id, task) in enumerate(zip(ids, tasks)) if task.is_sweep()}
    for index, task_id in enumerate(ids):
        base, _, number = task_id.rpartition("-")
        if number.isdigit() and len(number) >= TRIAL_INDEX_DIGITS and base.casefold() in sweeps:
            raise KeyedError(f"tasks[{index}].id",
                             f"task id {task_id!r} is also the id of a trial of sweep task {ids[sweeps[base.casefold()]]!r} "
                             f"(tasks[{sweeps[base.casefold()]}]); rename one of them")


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A dependency cycle as a path that returns to its start, or None (iterative DFS)."""
    state: dict[str, int] = {}
    for root in graph:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, child = stack.pop()
            if child == 0:
                state[node] = 1
                path.append(node)
            deps = graph.get(node, [])
            if child < len(deps):
                stack.append((node, child + 1))
                nxt = deps[child]
                if state.get(nxt) == 1:
                    return path[path.index(nxt):] + [nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None
