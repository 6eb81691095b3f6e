"""How Batch task states read back as orch's: stops that came too late, tasks blocked behind a
failed dependency (Batch keeps them active forever), cancelled jobs."""
from __future__ import annotations

from typing import Any

from azure.batch import models as m

from orchestrator.backends.azure import job_ops
from orchestrator.model import TaskState


def task(task_id: str, state: str, result: str | None = None, depends_on: list[str] | None = None,
         failure: str | None = None) -> Any:
    body: dict[str, Any] = {"id": task_id, "state": state}
    if result is not None:
        body["executionInfo"] = {"result": result, "retryCount": 0, "requeueCount": 0,
                                 "exitCode": 0 if result == "success" else 1}
        if failure:
            body["executionInfo"]["failureInfo"] = {"category": "usererror", "code": failure}
    if depends_on:
        body["dependsOn"] = {"taskIds": depends_on}
    return m.BatchTask(body)


def states(tasks: list[Any], *, cancelled: bool = False, stopped: set[str] = frozenset()) -> dict[str, TaskState]:
    infos = job_ops.task_infos(tasks, "j", job_cancelled=cancelled, stopped=set(stopped))
    return {info.id: info.state for info in infos}


def test_a_stop_that_reached_a_finished_task_leaves_it_succeeded() -> None:
    tasks = [task("done", "completed", "success"), task("cut", "completed", "failure", failure="TaskEnded")]
    assert states(tasks, stopped={"done", "cut"}) == {"done": TaskState.SUCCEEDED, "cut": TaskState.STOPPED}


def test_tasks_blocked_behind_a_failed_dependency_are_failed_transitively() -> None:
    tasks = [task("a", "completed", "failure"), task("b", "active", depends_on=["a"]),
             task("c", "active", depends_on=["b"]), task("d", "completed", "success"),
             task("e", "active", depends_on=["d"])]
    got = job_ops.task_infos(tasks, "j", job_cancelled=False, stopped=set())
    assert {info.id: info.state for info in got} == {"a": TaskState.FAILED, "b": TaskState.FAILED,
                                                     "c": TaskState.FAILED, "d": TaskState.SUCCEEDED,
                                                     "e": TaskState.PENDING}
    assert got[2].error == "dependency 'b' did not succeed"


def test_in_a_cancelled_job_waiting_tasks_are_cancelled_not_failed() -> None:
    tasks = [task("a", "completed", "failure", failure="TaskEnded"), task("b", "active", depends_on=["a"])]
    assert states(tasks, cancelled=True) == {"a": TaskState.CANCELLED, "b": TaskState.CANCELLED}


def test_attempts_come_from_what_batch_keeps_retries_requeues_and_the_last_run() -> None:
    body = {"id": "t", "state": "completed", "nodeInfo": {"nodeId": "tvm-2"},
            "executionInfo": {"result": "success", "exitCode": 0, "retryCount": 1, "requeueCount": 2,
                              "lastRetryTime": "2026-01-01T10:00:00Z", "lastRequeueTime": "2026-01-01T10:05:00Z",
                              "startTime": "2026-01-01T10:06:00Z", "endTime": "2026-01-01T10:09:00Z"}}
    info = job_ops.task_infos([m.BatchTask(body)], "j", job_cancelled=False, stopped=set())[0]
    got = [(a.number, a.state, a.node_id, a.exit_code) for a in info.attempts]
    assert got == [(1, "failed", None, None), (2, "preempted", None, None), (3, "preempted", None, None),
                   (4, "succeeded", "tvm-2", 0)]
    assert info.attempts[0].ended_at == 1767261600.0 and info.attempts[2].ended_at == 1767261900.0
    assert info.attempts[1].ended_at is None and "requeued" in (info.attempts[1].error or "")
    assert info.attempts[3].started_at == 1767261960.0 and info.retries == 1


def test_a_requeued_task_waiting_again_has_its_preempted_attempt_only() -> None:
    body = {"id": "t", "state": "active", "executionInfo": {"retryCount": 0, "requeueCount": 1,
                                                             "lastRequeueTime": "2026-01-01T10:05:00Z"}}
    info = job_ops.task_infos([m.BatchTask(body)], "j", job_cancelled=False, stopped=set())[0]
    assert info.state == TaskState.PENDING
    assert [(a.number, a.state) for a in info.attempts] == [(1, "preempted")]
