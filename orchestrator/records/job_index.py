"""Which pool each job known on this machine went to, and when (``$ORCH_HOME/jobs``).

Lets ``orch logs`` find the most recent job and route a job id to its pool without asking every
backend. Backends stay the source of truth for state; this index only routes, and only the
core writes it (``orchestrator.submit`` before submitting, ``orchestrator.jobs`` for jobs found
on a pool that the index did not know yet). Ids are checked before a file name is made of them.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from orchestrator.records.home import orch_home, private_dir
from orchestrator.spec.ids import check_id


@dataclass(frozen=True)
class JobEntry:
    """``objective`` (``{"metric", "goal"}``) and ``trials`` (how many trials the sweep plans) are
    set for sweeps; ``budget`` (USD, the job's ``limits.budget``) and ``sweep_budgets`` (sweep task
    id -> USD) where the spec gives them; entries written before they existed read back with None.
    ``submitted_at`` is set by ``record``."""

    id: str
    pool_id: str
    backend: str
    submitted_at: float = 0.0
    kind: str = "job"  # job | sweep
    objective: dict[str, str] | None = None
    trials: int | None = None
    budget: float | None = None
    sweep_budgets: dict[str, float] | None = None


def record(entry: JobEntry) -> JobEntry:
    """Index a job. Re-recording it on the same pool keeps its first submission time."""
    check_id(entry.pool_id, "pool id")
    existing = lookup(entry.id)
    same = existing is not None and existing.pool_id == entry.pool_id
    entry = replace(entry, submitted_at=existing.submitted_at if same and existing else time.time())
    directory = orch_home() / "jobs"
    private_dir(directory)
    tmp = directory / f".{entry.id}.tmp"
    tmp.write_text(json.dumps(asdict(entry)))
    tmp.replace(directory / f"{entry.id}.json")
    return entry


def lookup(job_id: str) -> JobEntry | None:
    path = orch_home() / "jobs" / f"{check_id(job_id, 'job id')}.json"
    try:
        return _entry(json.loads(path.read_text()))
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
    (orch_home() / "jobs" / f"{check_id(job_id, 'job id')}.json").unlink(missing_ok=True)


def forget_pool(pool_id: str) -> None:
    for entry in entries():
        if entry.pool_id == pool_id:
            forget(entry.id)
