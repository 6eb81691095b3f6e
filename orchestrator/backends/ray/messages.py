"""What the pool manager and node agents send each other. Plain frozen dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping


@dataclass(frozen=True)
class TaskRun:
    """One attempt of one task, as sent to a node agent."""

    job_id: str
    task_id: str
    attempt: int
    command: str | tuple[str, ...]
    env: Mapping[str, str]
    cpus: float
    gpus: float
    wall_time: float | None
    output_files: tuple[str, ...] = ()
    workdir_hash: str | None = None  # the snapshot's digest; its bytes come from the manager
    inputs: tuple[tuple[str, str, str | None], ...] = ()  # (to, snapshot digest, file name or None)
    checkpoint: bool = True  # a saved checkpoint may exist: the agent asks the manager for it before starting


@dataclass(frozen=True)
class TaskEvent:
    """A state change of one attempt, reported by an agent."""

    job_id: str
    task_id: str
    attempt: int
    state: str  # running | succeeded | failed | cancelled
    node: int
    time: float
    exit_code: int | None = None
    error: str | None = None
    started: float | None = None  # on an end event whose "running" event was folded into it


def coalesce(events: list[TaskEvent]) -> list[TaskEvent]:
    """Fold each ``running`` event into a later end event of the same attempt in the batch, so a
    short task costs the manager one event, not two; order is kept otherwise."""
    ends = {(e.job_id, e.task_id, e.attempt) for e in events if e.state != "running"}
    started = {(e.job_id, e.task_id, e.attempt): e.time for e in events if e.state == "running"}
    out = []
    for event in events:
        key = (event.job_id, event.task_id, event.attempt)
        if event.state == "running" and key in ends:
            continue
        if event.state != "running" and key in started:
            event = replace(event, started=started[key])
        out.append(event)
    return out


@dataclass(frozen=True)
class AgentFacts:
    """What an agent tells about its node when it starts."""

    index: int
    node_id: str
    address: str
    cpus: float
    gpus: float
    gpu_ids: tuple[str, ...] = ()
    slots: int = 1
    start_task_exit: int | None = None
    start_task_error: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
