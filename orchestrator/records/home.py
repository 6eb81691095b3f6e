"""Where orch keeps what it knows on this machine: ``$ORCH_HOME`` (default ``~/.orch``)."""
from __future__ import annotations

import os
from pathlib import Path

from orchestrator.spec.ids import check_id


def orch_home() -> Path:
    """``$ORCH_HOME`` or ``~/.orch``."""
    return Path(os.environ.get("ORCH_HOME") or Path.home() / ".orch")


def pool_state_dir(pool_id: str, home: Path | None = None) -> Path:
    """Private folder of one pool, for its backend: tokens, a local cluster's files, node roots
    (under ``home``, for a process that knows it otherwise than from the environment)."""
    return (home or orch_home()) / "state" / check_id(pool_id, "pool id")


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) for this user only (0700); an existing ``path`` is
    made 0700 too. Everything orch keeps (records, tokens, task outputs) lies in such folders."""
    missing = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path
