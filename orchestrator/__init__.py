"""orch: YAML job specs to compute pools, distributed training and sweeps.

``from orchestrator import report`` is the one-line metric helper for training scripts.
Nothing heavy is imported here: the CLI must start fast.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["report", "__version__"]


def report(step: int | None = None, **metrics: Any) -> None:
    """Record metrics for the current trial (see ``orchestrator.sweep.metrics.report``)."""
    from orchestrator.sweep.metrics import report as _report

    _report(step=step, **metrics)
