"""The node agent's own process: when its node started, and undoing Ray's worker settings."""
from __future__ import annotations

import os

import psutil


def raylet_started() -> float | None:
    """When this node's raylet (the agent's nearest ``raylet`` ancestor) started: the node's
    start, for the cost ledger of a local cluster. None if it cannot be told."""
    try:
        for parent in psutil.Process().parents():
            if parent.name() == "raylet":
                return float(parent.create_time())
    except psutil.Error:
        return None
    return None


def normal_priority() -> str:
    """Undo what Ray does to its worker processes (nice 15, first in line for the OOM killer), so
    task processes, which inherit both from this agent, run like any user program. Best effort:
    lowering either needs privileges; the result is reported in the node facts."""
    notes = []
    try:
        os.setpriority(os.PRIO_PROCESS, 0, 0)
    except OSError:
        notes.append(f"nice {os.getpriority(os.PRIO_PROCESS, 0)} kept")
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("0")
    except OSError:
        notes.append("oom_score_adj kept")
    return "; ".join(notes) or "normal"
