"""Running one ordinary (single-instance) task on its node, with retries and file transfers.

Order, as on a Batch node: create the task directory, download ``resourceFiles`` into ``wd``
(state ``preparing``), run the command line (``running``) until it exits, retrying a non-zero
exit up to ``maxTaskRetryCount`` times, then upload ``outputFiles`` and complete.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .layout import NodeDirs, prepare_task_dir
from .output_files import OutputFileError, upload_output_files
from .resource_files import ResourceFileError, download_resource_files
from .runner import ProcessOutcome, run_process
from .state import BatchState
from .task_completion import WALL_CLOCK_EXCEEDED, RunResult, TaskFinishedCallback, finish_execution
from .task_plan import TaskPlan, mark_running, record_retry


def outcome_result(outcome: ProcessOutcome) -> RunResult:
    """Translate a process outcome into a task result."""
    if outcome.cancel_reason:
        return RunResult(exit_code=outcome.exit_code, cancel_reason=outcome.cancel_reason)
    if outcome.launch_error:
        failure = {"category": "usererror", "code": outcome.launch_error, "message": outcome.launch_message or ""}
        return RunResult(failure_info=failure, failure_kind="preprocessing")
    if outcome.timed_out:
        return RunResult(exit_code=outcome.exit_code, failure_info=dict(WALL_CLOCK_EXCEEDED), failure_kind="ended")
    return RunResult(exit_code=outcome.exit_code)


def retry_loop(state: BatchState, plan: TaskPlan, attempt: Callable[[], RunResult]) -> RunResult:
    """Run ``attempt`` until it succeeds, fails for a reason other than its exit code, is
    cancelled, or the retry budget (-1: unlimited) is spent."""
    retries = 0
    while True:
        result = attempt()
        if result.cancel_reason or result.exit_code == 0 or result.failure_info is not None:
            return result
        if plan.max_retries != -1 and retries >= plan.max_retries:
            return result
        retries += 1
        record_retry(state, plan, retries)


def upload_outputs(plan: TaskPlan, result: RunResult, working_dir: Path, task_dir: Path) -> RunResult:
    """Upload ``outputFiles`` after a process ran; an upload failure fails the task."""
    if result.cancel_reason or result.exit_code is None:
        return result
    try:
        upload_output_files(plan.spec.get("outputFiles"), working_dir=working_dir, task_dir=task_dir,
                            succeeded=result.succeeded)
    except OutputFileError as exc:
        return RunResult(exit_code=result.exit_code, failure_info=exc.failure_info(), failure_kind="upload")
    return result


class SingleInstanceRun:
    """The execution thread body of an ordinary task."""

    def __init__(self, state: BatchState, plan: TaskPlan, on_finished: TaskFinishedCallback) -> None:
        self.state = state
        self.plan = plan
        self.on_finished = on_finished

    def run(self) -> None:
        """Execute the task and record its outcome (never raises)."""
        try:
            result = self._execute()
        except Exception as exc:  # the node agent reports unexpected errors as server errors
            result = RunResult(failure_info={"category": "servererror", "code": "Unknown", "message": repr(exc)},
                               failure_kind="preprocessing")
        finish_execution(self.state, self.plan.job_id, self.plan.task_id, self.plan.handle,
                         list(self.plan.placements), result, self.on_finished)

    def _execute(self) -> RunResult:
        plan = self.plan
        placement = plan.placements[0]
        task_dir = NodeDirs(placement.node.root_dir).task_dir(plan.job_id, plan.task_id)
        working_dir = prepare_task_dir(task_dir)
        try:
            download_resource_files(plan.spec.get("resourceFiles"), working_dir, plan.auto_storage)
        except ResourceFileError as exc:
            return RunResult(failure_info=exc.failure_info(), failure_kind="preprocessing")
        if plan.handle.cancel_reason:
            return RunResult(cancel_reason=plan.handle.cancel_reason)
        mark_running(self.state, plan)
        env = plan.environment(placement, task_dir)

        def attempt() -> RunResult:
            return outcome_result(run_process(
                str(plan.spec["commandLine"]), cwd=working_dir, env=env, stdout_path=task_dir / "stdout.txt",
                stderr_path=task_dir / "stderr.txt", handle=plan.handle, deadline=plan.deadline(),
            ))

        result = retry_loop(self.state, plan, attempt)
        return upload_outputs(plan, result, working_dir, task_dir)
