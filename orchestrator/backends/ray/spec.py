"""The ``ray:`` block of a pool file: how orch reaches (or starts) the pool's Ray cluster."""
from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from orchestrator.spec.blocks import BackendBlock


class RayOptions(BackendBlock):
    """Ray-specific settings. Without ``address`` orch starts a local cluster itself."""

    launchers: ClassVar[frozenset[str]] = frozenset({"horovod", "torchrun"})
    launcher_note: ClassVar[str] = ("launcher mpi starts ranks over ssh, which Ray pools do not have; on Ray use "
                                    "launcher horovod or torchrun (no ssh needed); mpi runs on Azure Batch pools")

    address: str | None = None
    auth_token_file: str | None = None
    startup_timeout: float = Field(default=120.0, gt=0, le=3600)
