"""Adding many tasks to a Batch job: collections of at most 100, a few in flight at once.

Every task is accounted for. Per collection: transient failures (429/5xx, dropped
connections) are retried with backoff honouring Retry-After; a body too large (413) is split
in two; per-task results decide each task: ``success`` → submitted, ``TaskExists`` → already
present on the first attempt, submitted after a retried request (the failed attempt had added
it), a server error → sent again, any other error → failed with its reason. Tasks are built
lazily from a stream and at most ``window`` collections exist in memory.
"""
from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from azure.batch import models as m
from orchestrator.backends.azure.batch_client import BatchApi, text
from orchestrator.backends.azure.retries import (
    error_code,
    is_transient,
    redact,
    retry_after,
    status_of,
    to_orch_error,
)

COLLECTION_LIMIT = 100
CONCURRENCY = 8


@dataclass
class Tally:
    """Running totals of one submission (thread-safe through ``lock``)."""

    submitted: int = 0
    already_present: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def chunks(tasks: Iterable[m.BatchTaskCreateOptions], size: int = COLLECTION_LIMIT) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for task in tasks:
        chunk.append(task)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def add_tasks(api: BatchApi, job_id: str, tasks: Iterable[m.BatchTaskCreateOptions], *,
              concurrency: int = CONCURRENCY) -> Tally:
    """Send every task (see the module docstring); never raises for a single task's failure."""
    tally = Tally()
    window = concurrency * 2
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="orch-add-tasks") as pool:
        pending: set[Future[None]] = set()
        try:
            for chunk in chunks(tasks):
                if len(pending) >= window:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _reraise(done)
                pending.add(pool.submit(_send_all, api, job_id, chunk, tally))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        if pending:
            _reraise(wait(pending)[0])
    return tally


def _reraise(done: set[Future[None]]) -> None:
    for future in done:
        future.result()


def _send_all(api: BatchApi, job_id: str, tasks: list[Any], tally: Tally) -> None:
    """Send ``tasks`` until each has an outcome (resending those with server errors)."""
    todo = tasks
    for round_number in range(api.policy.attempts):
        if not todo:
            return
        todo = _send(api, job_id, todo, tally, first_round=round_number == 0)
        if todo:
            api.policy.sleep(api.policy.delay(round_number, None))
    with tally.lock:
        for task in todo:
            tally.failed[task.id] = f"Batch kept answering a server error after {api.policy.attempts} tries"


def _send(api: BatchApi, job_id: str, tasks: list[Any], tally: Tally, *, first_round: bool) -> list[Any]:
    """One collection request (retried when transient); returns tasks to send again."""
    group = m.BatchTaskGroup(task_values=tasks)
    for attempt in range(api.policy.attempts):
        with tally.lock:
            tally.requests += 1
        try:
            result = api.client.create_task_collection(job_id, group)
        except Exception as exc:
            if status_of(exc) == 413:
                return _split(api, job_id, tasks, tally, first_round=first_round, reason=_reason(exc))
            if not is_transient(exc) or attempt + 1 >= api.policy.attempts:
                reason = str(to_orch_error(f"adding tasks to job {job_id!r}", exc, attempts=attempt + 1))
                with tally.lock:
                    tally.failed.update({task.id: reason for task in tasks})
                return []
            api.policy.sleep(api.policy.delay(attempt, retry_after(exc)))
            continue
        return _record(result, tasks, tally, retried=attempt > 0 or not first_round)
    return tasks


def _split(api: BatchApi, job_id: str, tasks: list[Any], tally: Tally, *, first_round: bool,
           reason: str) -> list[Any]:
    if len(tasks) == 1:
        with tally.lock:
            tally.failed[tasks[0].id] = f"the task is too large for one request: {reason}"
        return []
    middle = len(tasks) // 2
    return (_send(api, job_id, tasks[:middle], tally, first_round=first_round)
            + _send(api, job_id, tasks[middle:], tally, first_round=first_round))


def _record(result: Any, tasks: list[Any], tally: Tally, *, retried: bool) -> list[Any]:
    by_id = {task.id: task for task in tasks}
    again: list[Any] = []
    answered: set[str] = set()
    with tally.lock:
        for item in result.result_values or []:
            answered.add(item.task_id)
            status = text(item.status)
            code = item.error.code if item.error is not None else ""
            if status == "success":
                tally.submitted += 1
            elif code == "TaskExists":
                if retried:
                    tally.submitted += 1
                else:
                    tally.already_present += 1
            elif status == "servererror" and item.task_id in by_id:
                again.append(by_id[item.task_id])
            else:
                message = item.error.message.value if item.error and item.error.message else ""
                tally.failed[item.task_id] = redact(f"{code}: {message}".strip(": "))
    again += [task for task_id, task in by_id.items() if task_id not in answered]
    return again


def _reason(exc: BaseException) -> str:
    code = error_code(exc) if hasattr(exc, "response") else ""
    return code or type(exc).__name__
