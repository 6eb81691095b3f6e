"""Job inputs (``inputs:`` in a job spec): files a job's tasks find in their working directory.

An input is a local file or directory (``path``, relative to the config dir) or a blob prefix
(``blob: container/prefix``, Azure only), placed at ``to`` (relative to the task's working
directory; a directory's files keep their layout under it). See the backends for how they travel.
"""
from __future__ import annotations

from pathlib import PurePosixPath

from pydantic import Field, model_validator

from orchestrator.spec.common import StrictModel


class InputSpec(StrictModel):
    """One input: exactly one of ``path`` and ``blob``, and where it goes (``to``)."""

    path: str | None = Field(default=None, min_length=1)
    blob: str | None = Field(default=None, min_length=1)
    to: str = Field(min_length=1)

    @model_validator(mode="after")
    def _one_source_and_a_safe_target(self) -> "InputSpec":
        if (self.path is None) == (self.blob is None):
            raise ValueError("an input needs exactly one of path (a local file or folder) or blob (container/prefix)")
        if self.blob is not None and "/" not in self.blob.strip("/"):
            raise ValueError(f"blob {self.blob!r} must be container/prefix")
        target = PurePosixPath(self.to)
        if target.is_absolute() or ".." in target.parts:
            raise ValueError(f"input target {self.to!r} must be a relative path inside the task dir, without '..'")
        return self
