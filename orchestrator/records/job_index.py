"""Which pool each job submitted from this machine went to, and when (``$ORCH_HOME/jobs``).

Lets ``orch logs`` find the most recent job and route a job id to its pool without asking every
backend. Backends stay the source of truth for state; this index only routes.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from typing import Any

from orchestrator.records.pool_records import orch_home


@dataclass(frozen=True)
class JobEntry:
    """``objective`` (``{"metric", "goal"}``) and ``trials`` (how many trials the sweep plans) are
    set for sweeps; entries written before they existed read back with None."""

    id: str
    pool_id: str
    backend: str
    submitted_at: float
    kind: str = "job"  # job | sweep
    objective: dict[str, str] | None = None
    trials: int | None = None


def record(job_id: str, pool_id: str, backend: str, kind: str | None = None, *,
           objective: dict[str, str] | None = None, trials: int | None = None) -> JobEntry:
    """Index a job. Re-recording it on the same pool keeps its first submission time, and keeps
    ``kind``, ``objective`` and ``trials`` where this call leaves them out (None)."""
    existing = lookup(job_id)
    same = existing if existing and existing.pool_id == pool_id else None
    entry = JobEntry(id=job_id, pool_id=pool_id, backend=backend,
                     submitted_at=same.submitted_at if same else time.time(),
                     kind=kind or (same.kind if same else "job"),
                     objective=objective if objective is not None else (same.objective if same else None),
                     trials=trials if trials is not None else (same.trials if same else None))
    directory = orch_home() / "jobs"
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{job_id}.tmp"
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(directory / f"{job_id}.json")
    return entry


def lookup(job_id: str) -> JobEntry | None:
    try:
        return _entry(json.loads((orch_home() / "jobs" / f"{job_id}.json").read_text()))
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return None


def _entry(data: Any) -> JobEntry:
    """An entry from its JSON; unknown keys (from a newer orch) are ignored."""
    known = {f.name for f in fields(JobEntry)}
    return JobEntry(**{key: value for key, value in data.items() if key in known})


def entries() -> list[JobEntry]:
    """All indexed jobs, newest first."""
    directory = orch_home() / "jobs"
    out = []
    for path in directory.glob("*.json") if directory.is_dir() else []:
        try:
            out.append(_entry(json.loads(path.read_text())))
        except (ValueError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda e: e.submitted_at, reverse=True)


def forget(job_id: str) -> None:
    (orch_home() / "jobs" / f"{job_id}.json").unlink(missing_ok=True)


def forget_pool(pool_id: str) -> None:
    for entry in entries():
        if entry.pool_id == pool_id:
            forget(entry.id)
