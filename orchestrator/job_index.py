"""Which pool each job submitted from this machine went to, and when (``$ORCH_HOME/jobs``).

Lets ``orch logs`` find the most recent job and route a job id to its pool without asking every
backend. Backends stay the source of truth for state; this index only routes.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from orchestrator.pool_registry import orch_home


@dataclass(frozen=True)
class JobEntry:
    id: str
    pool_id: str
    backend: str
    submitted_at: float
    kind: str = "job"  # job | sweep


def record(job_id: str, pool_id: str, backend: str, kind: str = "job") -> JobEntry:
    entry = JobEntry(id=job_id, pool_id=pool_id, backend=backend, submitted_at=time.time(), kind=kind)
    directory = orch_home() / "jobs"
    directory.mkdir(parents=True, exist_ok=True)
    existing = lookup(job_id)
    if existing and existing.pool_id == pool_id:
        entry = JobEntry(**{**asdict(entry), "submitted_at": existing.submitted_at})
    tmp = directory / f".{job_id}.tmp"
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(directory / f"{job_id}.json")
    return entry


def lookup(job_id: str) -> JobEntry | None:
    try:
        return JobEntry(**json.loads((orch_home() / "jobs" / f"{job_id}.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def entries() -> list[JobEntry]:
    """All indexed jobs, newest first."""
    directory = orch_home() / "jobs"
    out = []
    for path in directory.glob("*.json") if directory.is_dir() else []:
        try:
            out.append(JobEntry(**json.loads(path.read_text())))
        except (ValueError, TypeError):
            continue
    return sorted(out, key=lambda e: e.submitted_at, reverse=True)


def forget(job_id: str) -> None:
    (orch_home() / "jobs" / f"{job_id}.json").unlink(missing_ok=True)


def forget_pool(pool_id: str) -> None:
    for entry in entries():
        if entry.pool_id == pool_id:
            forget(entry.id)
