"""The ``ray:`` block of a pool file: how orch reaches (or starts) the pool's Ray cluster."""
from __future__ import annotations

import re
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from orchestrator.spec.blocks import BackendBlock

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"(?:ray://)?(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\]):([0-9]{{1,5}})")


class RayOptions(BackendBlock):
    """Ray-specific settings. Without ``address`` orch starts a local cluster itself."""

    launchers: ClassVar[frozenset[str]] = frozenset({"horovod", "torchrun"})
    launcher_note: ClassVar[str] = ("launcher mpi starts ranks over ssh, which Ray pools do not have; on Ray use "
                                    "launcher horovod or torchrun (no ssh needed); mpi runs on Azure Batch pools")

    address: str | None = None
    auth_token_file: str | None = None
    startup_timeout: float = Field(default=120.0, gt=0, le=3600)
    expose: bool = False
    """A local cluster listens on this machine's network address (other machines can reach it,
    token auth still on) instead of 127.0.0.1 only."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        """``host:port``, ``ray://host:port`` or ``auto``."""
        match = ADDRESS.fullmatch(value) if value is not None and value != "auto" else None
        if value is not None and value != "auto" and (match is None or not 0 < int(match.group(1)) < 65536):
            raise ValueError(f"{value!r} is not a Ray address: give host:port (e.g. 10.0.0.4:6379), "
                             "ray://host:port, or auto")
        return value

    @model_validator(mode="after")
    def _expose_is_for_local_clusters(self) -> RayOptions:
        if self.expose and self.address:
            raise ValueError("expose applies to a local cluster orch starts; a cluster at ray.address listens "
                             "where it was started: remove expose")
        return self
