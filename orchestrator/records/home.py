"""Where orch keeps what it knows on this machine: ``$ORCH_HOME`` (default ``~/.orch``)."""
from __future__ import annotations

import os
from pathlib import Path

from orchestrator.spec.ids import check_id


def orch_home() -> Path:
    """``$ORCH_HOME`` or ``~/.orch``."""
    return Path(os.environ.get("ORCH_HOME") or Path.home() / ".orch")


def pool_state_dir(pool_id: str) -> Path:
    """Private folder of one pool, for its backend: tokens, a local cluster's files, node roots."""
    return orch_home() / "state" / check_id(pool_id, "pool id")
