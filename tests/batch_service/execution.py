"""Task executions: the snapshot one works from, running it on its node(s), recording its end.

As on a Batch node: create the task directory, download ``resourceFiles`` into ``wd``
(``preparing``), run the command line (``running``), retrying a non-zero exit up to
``maxTaskRetryCount`` (the task's, else the job's; -1: unlimited; retries made before a requeue
count), upload ``outputFiles`` (a failed upload fails the task), complete. A ``requeue``
cancellation (node removal, preemption) makes the task ``active`` again with ``requeueCount`` + 1,
its files unavailable until it runs again; any other completes it (``terminate``/``delete`` with
``TaskEnded``). A multi-instance
task gets a task directory on each node (``AZ_BATCH_TASK_SHARED_DIR``, with the
``commonResourceFiles``); each attempt runs the coordination command on every instance at once
and, when all exit 0, the command line on the primary.
"""
from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .auth import wants_job_token
from .entities import TASK_ENDED, WALL_CLOCK_EXCEEDED, JobRecord, TaskRecord
from .layout import (
    NodeDirs,
    NodeIdentity,
    apply_settings,
    multi_instance_environment,
    node_environment,
    prepare_task_dir,
)
from .runner import ExecutionHandle, ProcessOutcome, run_process
from .settings import AutoStorage
from .state import BatchState
from .timekeeping import UNLIMITED_DURATION, format_timestamp, parse_duration, utc_now
from .transfers import (
    OutputFileError,
    ResourceFileError,
    download_resource_files,
    upload_output_files,
)

TaskFinishedCallback = Callable[[JobRecord, TaskRecord], None]


@dataclass(frozen=True)
class Placement:
    """One node slot reservation of a running task (``slot_key`` indexes ``node.running``)."""

    node: NodeIdentity
    slot_key: str


@dataclass
class RunResult:
    """Outcome of an execution."""

    exit_code: int | None = None
    failure_info: dict[str, Any] | None = None
    cancel_reason: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.failure_info is None and self.cancel_reason is None


@dataclass(frozen=True)
class TaskPlan:
    """A launched task, snapshotted under the lock: its spec, the variables its processes get on
    top of the node's (job and task ids, job token, the job's then the task's environment
    settings), retry budget, wall clock limit, handle and node placements (the primary first)."""

    job_id: str
    task_id: str
    spec: dict[str, Any]
    variables: dict[str, str]
    account: str
    account_url: str
    max_retries: int
    retries_done: int
    wall_clock_s: float | None
    auto_storage: AutoStorage | None
    handle: ExecutionHandle
    placements: tuple[Placement, ...]

    def environment(self, index: int, task_dir: Path) -> dict[str, str]:
        """Environment of the task's process on its ``index``-th node (instance)."""
        env = node_environment(self.account, self.account_url, self.placements[index].node, task_dir)
        if self.spec.get("multiInstanceSettings"):
            addresses = [placement.node.ip_address for placement in self.placements]
            env.update(multi_instance_environment(addresses, index == 0, task_dir))
        return {**env, **self.variables}

    def deadline(self) -> float | None:
        """``time.monotonic()`` instant at which an attempt started now must end."""
        return None if self.wall_clock_s is None else time.monotonic() + self.wall_clock_s


def build_plan(state: BatchState, job: JobRecord, task: TaskRecord, placements: list[Placement],
               handle: ExecutionHandle) -> TaskPlan:
    """Snapshot a task for execution; lock held."""
    variables = {"AZ_BATCH_JOB_ID": job.id, "AZ_BATCH_TASK_ID": task.id}
    if wants_job_token(task.spec):
        variables["AZ_BATCH_AUTHENTICATION_TOKEN"] = state.job_tokens.issue(job.id)
    apply_settings(variables, job.spec.get("commonEnvironmentSettings"))
    apply_settings(variables, task.spec.get("environmentSettings"))
    explicit = (task.spec.get("constraints") or {}).get("maxTaskRetryCount")
    job_retries = int((job.spec.get("constraints") or {}).get("maxTaskRetryCount") or 0)
    wall_clock = task.constraints.get("maxWallClockTime") or UNLIMITED_DURATION
    return TaskPlan(
        job_id=job.id, task_id=task.id, spec=copy.deepcopy(task.spec), variables=variables,
        account=state.account, account_url=state.base_url,
        max_retries=int(explicit if explicit is not None else job_retries),
        retries_done=int(task.execution.get("retryCount") or 0),
        wall_clock_s=None if wall_clock == UNLIMITED_DURATION else parse_duration(wall_clock).total_seconds(),
        auto_storage=state.settings.auto_storage, handle=handle, placements=tuple(placements),
    )


def _current_task(state: BatchState, plan: TaskPlan) -> TaskRecord | None:
    task = state.find_task(plan.job_id, plan.task_id)
    return task if task is not None and task.handle is plan.handle else None


def outcome_result(outcome: ProcessOutcome) -> RunResult:
    """Translate a process outcome into a task result."""
    if outcome.cancel_reason:
        return RunResult(exit_code=outcome.exit_code, cancel_reason=outcome.cancel_reason)
    if outcome.launch_error:
        return RunResult(failure_info={"category": "usererror", "code": outcome.launch_error,
                                       "message": outcome.launch_message or ""})
    if outcome.timed_out:
        return RunResult(exit_code=outcome.exit_code, failure_info=dict(WALL_CLOCK_EXCEEDED))
    return RunResult(exit_code=outcome.exit_code)


def _record_outcome(task: TaskRecord, result: RunResult) -> None:
    now = format_timestamp(utc_now())
    if result.cancel_reason == "requeue":
        task.execution["requeueCount"] = int(task.execution.get("requeueCount", 0)) + 1
        task.execution["lastRequeueTime"] = now
        for key in ("startTime", "endTime", "exitCode", "failureInfo", "result", "containerInfo"):
            task.execution.pop(key, None)
        task.node_info = None
        task.task_dir = None  # its files were on the node it left
        task.subtasks = []
        task.move("active")
        return
    task.execution["endTime"] = now
    task.execution.setdefault("startTime", now)
    if "containerInfo" in task.execution:
        task.execution["containerInfo"] = {**task.execution["containerInfo"], "state": "exited"}
    if result.exit_code is not None:
        task.execution["exitCode"] = result.exit_code
    failure = result.failure_info
    if result.cancel_reason in ("terminate", "delete") and failure is None:
        failure = dict(TASK_ENDED)
    if failure is not None:
        task.execution["failureInfo"] = failure
    task.execution["result"] = "success" if result.succeeded else "failure"
    for subtask in task.subtasks:  # the other instances end with the task
        subtask.update(state="completed", endTime=now, result=task.execution["result"])
    task.move("completed")


def finish_execution(state: BatchState, plan: TaskPlan, result: RunResult, on_finished: TaskFinishedCallback) -> None:
    """Record ``result`` on the task (if it is still this execution's), free its slots, notify."""
    with state.lock:
        job = state.jobs.get(plan.job_id.lower())
        task = _current_task(state, plan)
        if task is not None:
            _record_outcome(task, result)
            task.handle = None
        for placement in plan.placements:
            node = state.find_node(placement.node.pool_id, placement.node.node_id)
            if node is None:
                continue
            node.running.pop(placement.slot_key, None)
            node.total_tasks_succeeded += 1 if result.succeeded else 0
            if not node.running and node.state == "running":
                node.lifecycle.move("idle")
        if job is not None and task is not None and task.state == "completed":
            on_finished(job, task)
        plan.handle.finished.set()
        state.wake()


class TaskExecution:
    """The thread body of one task execution (see the module docstring)."""

    def __init__(self, state: BatchState, plan: TaskPlan, on_finished: TaskFinishedCallback) -> None:
        self.state, self.plan, self.on_finished = state, plan, on_finished
        self.task_dirs = [NodeDirs(p.node.root_dir).task_dir(plan.job_id, plan.task_id) for p in plan.placements]

    def run(self) -> None:
        """Execute the task and record its outcome (never raises)."""
        try:
            result = self._execute()
        except Exception as exc:  # the node agent reports unexpected errors as server errors
            result = RunResult(failure_info={"category": "servererror", "code": "Unknown", "message": repr(exc)})
        self.plan.handle.kill_all(forget=True)
        finish_execution(self.state, self.plan, result, self.on_finished)

    def _execute(self) -> RunResult:
        plan = self.plan
        working_dirs = [prepare_task_dir(task_dir) for task_dir in self.task_dirs]
        common_files = (plan.spec.get("multiInstanceSettings") or {}).get("commonResourceFiles")
        try:
            for task_dir in self.task_dirs if common_files else []:
                download_resource_files(common_files, task_dir, plan.auto_storage)
            download_resource_files(plan.spec.get("resourceFiles"), working_dirs[0], plan.auto_storage)
        except ResourceFileError as exc:
            return RunResult(failure_info=exc.failure_info())
        if plan.handle.cancel_reason:
            return RunResult(cancel_reason=plan.handle.cancel_reason)
        with self.state.lock:
            task = _current_task(self.state, plan)
            if task is not None:
                task.execution.setdefault("startTime", format_timestamp(utc_now()))
                task.move("running")
        retries = plan.retries_done  # retries before a requeue count too: the budget is the task's
        while True:  # retry a non-zero exit while the budget (-1: unlimited) allows
            result = self._attempt()
            if result.cancel_reason or result.exit_code == 0 or result.failure_info is not None:
                break
            if plan.max_retries != -1 and retries >= plan.max_retries:
                break
            retries += 1
            with self.state.lock:
                task = _current_task(self.state, plan)
                if task is not None:
                    now = format_timestamp(utc_now())
                    task.execution.update(retryCount=retries, lastRetryTime=now, startTime=now)
                    task.revision.touch()
        if result.cancel_reason or result.exit_code is None:
            return result
        try:
            upload_output_files(plan.spec.get("outputFiles"), working_dir=working_dirs[0],
                                task_dir=self.task_dirs[0], succeeded=result.succeeded)
        except OutputFileError as exc:
            return RunResult(exit_code=result.exit_code, failure_info=exc.failure_info())
        return result

    def _run(self, index: int, command_line: str, deadline: float | None) -> ProcessOutcome:
        task_dir = self.task_dirs[index]
        return run_process(command_line, cwd=task_dir / "wd", env=self.plan.environment(index, task_dir),
                           stdout_path=task_dir / "stdout.txt", stderr_path=task_dir / "stderr.txt",
                           handle=self.plan.handle, deadline=deadline, kill_leftovers=False)

    def _attempt(self) -> RunResult:
        """One attempt: for a multi-instance task the coordination command on every instance, then
        (when all exited 0) the command line on the primary. Leftover processes are killed."""
        deadline = self.plan.deadline()
        multi = self.plan.spec.get("multiInstanceSettings")
        if multi:
            outcomes: list[ProcessOutcome | None] = [None] * len(self.task_dirs)

            def coordinate(index: int) -> None:
                outcomes[index] = self._run(index, str(multi["coordinationCommandLine"]), deadline)

            threads = [threading.Thread(target=coordinate, args=(i,), daemon=True) for i in range(len(outcomes))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            failed = next((outcome for outcome in outcomes if outcome is not None and outcome.exit_code != 0), None)
            if failed is not None or None in outcomes:
                self.plan.handle.kill_all(forget=True)
                if failed is None:
                    return RunResult(failure_info={"category": "servererror", "code": "Unknown",
                                                   "message": "A coordination command could not be run."})
                return outcome_result(failed)
        outcome = self._run(0, str(self.plan.spec["commandLine"]), deadline)
        self.plan.handle.kill_all(forget=True)
        return outcome_result(outcome)
