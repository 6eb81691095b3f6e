"""The base of a backend's own block in pool files (``ray:``, ``azure:``).

Each backend registers its block model in ``orchestrator.registry``; ``PoolSpec`` gets one
optional key per registered backend and checks that only the chosen backend's block is given.
A block also declares what the backend can run, so planning refuses a job the pool cannot run
before anything is created, without naming any backend.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from orchestrator.spec.common import StrictModel

ALL_LAUNCHERS = frozenset({"horovod", "torchrun", "mpi"})


class BackendBlock(StrictModel):
    """Settings only one backend understands, plus class-level facts about that backend."""

    required: ClassVar[bool] = False
    """Pool files of this backend must give the block (else it defaults to all defaults)."""
    launchers: ClassVar[frozenset[str]] = ALL_LAUNCHERS
    """Distributed launchers the backend can start."""
    launcher_note: ClassVar[str] = ""
    """Why a launcher is missing, and what to use instead (for the error)."""
    low_priority_nodes: ClassVar[bool] = False
    """Whether pools may have low-priority (Spot) nodes."""
    blob_inputs: ClassVar[bool] = False
    """Whether job inputs may name blob prefixes (``inputs: [{blob: …}]``)."""

    @classmethod
    def pool_defaults(cls, block: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults the backend gives the pool's common keys, from the raw block (e.g. CPUs of a
        VM size); keys the file gives win. Must not raise: the block's own validation reports."""
        return {}

    def pool_problem(self, *, slots_per_node: int) -> str | None:
        """Why the backend cannot build a pool whose nodes run ``slots_per_node`` tasks each (naming
        the key to change), or None. Checked when the pool file is loaded."""
        return None

    def spans_nodes(self, pool_nodes: int) -> bool:
        """Whether a task may span several nodes of a pool of ``pool_nodes`` nodes."""
        return True

    def distributed_problem(self, *, nodes: int, slots_per_node: int) -> tuple[str, str] | None:
        """Why a task spanning ``nodes`` (> 1) nodes cannot run on a pool of this backend that runs
        ``slots_per_node`` tasks per node, as ``(problem, how to fix it)``; None when it can."""
        return None

    def controller_problem(self) -> tuple[str, str] | None:
        """Why a sweep controller (adaptive or held-back sweeps) cannot run in this pool's cluster,
        as ``(problem, how to fix it)`` naming the keys to set; None when it can."""
        return None

    @property
    def caps_in_flight(self) -> bool:
        """Whether the engine itself caps a job's tasks in flight (``limits.max_concurrent_trials``);
        where it cannot, the job's sweep controller holds trials back."""
        return True

    def warnings(self) -> list[str]:
        """Things worth a look that are not errors (e.g. an image near its end of life), each
        naming the key (``azure.image``) it is about; ``orch validate`` prints them."""
        return []
