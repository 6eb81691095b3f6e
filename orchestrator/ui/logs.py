"""A task file followed live as server-sent events, over the same offset reads as ``orch logs --tail``.

The pure ``tail.Follower`` does the reading (incremental UTF-8, a restarted file marked, one last
read after the task ends); each poll runs in a worker thread through the dashboard's lock, and the
pace backs off while the file is idle, up to ``poll_cap`` seconds. Each event's id is the byte
offset reached, so a reconnecting browser (``Last-Event-ID``) resumes where it was.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from orchestrator.tail import Backoff, Follower
from orchestrator.ui.state import Dashboard

DEFAULT_POLL_CAP = 0.5
MAX_EVENT_CHARS = 64 * 1024
HEARTBEAT_SECONDS = 15.0


def event(kind: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


async def log_events(dashboard: Dashboard, job_id: str, task_id: str, name: str, *, offset: int = 0,
                     poll_cap: float = DEFAULT_POLL_CAP) -> AsyncIterator[str]:
    """Events ``text`` (new output) until the task ended and was read a last time, then ``end``."""
    follower = Follower(lambda at: dashboard.read(job_id, task_id, name, at),
                        lambda: dashboard.task_ended(job_id, task_id), offset=offset)
    pace = Backoff(minimum=0.1, maximum=poll_cap)
    idle = 0.0
    yield "retry: 2000\n\n"
    while True:
        text = await anyio.to_thread.run_sync(follower.poll)
        for start in range(0, len(text), MAX_EVENT_CHARS):
            yield event("text", {"text": text[start:start + MAX_EVENT_CHARS]}, follower.offset)
        if follower.done:
            break
        delay = pace.next(bool(text))
        idle = 0.0 if text else idle + delay
        if idle >= HEARTBEAT_SECONDS:
            idle = 0.0
            yield ": still following\n\n"
        await anyio.sleep(delay)
    state = await anyio.to_thread.run_sync(lambda: dashboard.task(job_id, task_id).state.value)
    yield event("end", {"state": state, "offset": follower.offset}, follower.offset)
