"""Running a multi-instance task: one instance per node, coordination then application.

Every instance gets its task directory (``AZ_BATCH_TASK_SHARED_DIR``) with the
``commonResourceFiles``; the primary also gets ``resourceFiles`` in ``wd``. The coordination
command runs on all instances at once and must exit 0 everywhere; then the application
command runs on the primary only. Background processes started by the coordination command
live until the attempt ends. Non-primary instances are the subtasks 1..N-1; each reports its
coordination exit code. A failure anywhere fails (and retries) the whole task.
"""
from __future__ import annotations

import threading

from .layout import NodeDirs, multi_instance_environment, prepare_task_dir
from .resource_files import ResourceFileError, download_resource_files
from .runner import ProcessOutcome, run_process
from .state import BatchState
from .task_completion import RunResult, TaskFinishedCallback, finish_execution
from .task_execution import outcome_result, retry_loop, upload_outputs
from .task_plan import TaskPlan, mark_running
from .times import utc_now


class MultiInstanceRun:
    """The execution thread body of a multi-instance task."""

    def __init__(self, state: BatchState, plan: TaskPlan, on_finished: TaskFinishedCallback) -> None:
        self.state = state
        self.plan = plan
        self.on_finished = on_finished
        self.task_dirs = [NodeDirs(p.node.root_dir).task_dir(plan.job_id, plan.task_id) for p in plan.placements]
        self.coordination_codes: list[int | None] = [None] * len(plan.placements)

    def run(self) -> None:
        """Execute all instances and record the outcome (never raises)."""
        try:
            result = self._execute()
        except Exception as exc:  # the node agent reports unexpected errors as server errors
            result = RunResult(failure_info={"category": "servererror", "code": "Unknown", "message": repr(exc)},
                               failure_kind="preprocessing")
        self.plan.handle.kill_all(forget=True)
        self._record_subtasks(result)
        finish_execution(self.state, self.plan.job_id, self.plan.task_id, self.plan.handle,
                         list(self.plan.placements), result, self.on_finished)

    def _execute(self) -> RunResult:
        plan = self.plan
        working_dirs = [prepare_task_dir(task_dir) for task_dir in self.task_dirs]
        common_files = (plan.spec.get("multiInstanceSettings") or {}).get("commonResourceFiles")
        try:
            for task_dir in self.task_dirs:
                download_resource_files(common_files, task_dir, plan.auto_storage)
            download_resource_files(plan.spec.get("resourceFiles"), working_dirs[0], plan.auto_storage)
        except ResourceFileError as exc:
            return RunResult(failure_info=exc.failure_info(), failure_kind="preprocessing")
        if plan.handle.cancel_reason:
            return RunResult(cancel_reason=plan.handle.cancel_reason)
        mark_running(self.state, plan)
        result = retry_loop(self.state, plan, self._attempt)
        return upload_outputs(plan, result, working_dirs[0], self.task_dirs[0])

    def _environment(self, index: int) -> dict[str, str]:
        addresses = [placement.node.ip_address for placement in self.plan.placements]
        env = self.plan.environment(self.plan.placements[index], self.task_dirs[index])
        env.update(multi_instance_environment(addresses, index == 0, self.task_dirs[index]))
        return env

    def _run(self, index: int, command_line: str, deadline: float | None) -> ProcessOutcome:
        task_dir = self.task_dirs[index]
        return run_process(command_line, cwd=task_dir / "wd", env=self._environment(index),
                           stdout_path=task_dir / "stdout.txt", stderr_path=task_dir / "stderr.txt",
                           handle=self.plan.handle, deadline=deadline, kill_leftovers=False)

    def _attempt(self) -> RunResult:
        deadline = self.plan.deadline()
        coordination = str(self.plan.spec["multiInstanceSettings"]["coordinationCommandLine"])
        outcomes: list[ProcessOutcome | None] = [None] * len(self.task_dirs)

        def coordinate(index: int) -> None:
            outcomes[index] = self._run(index, coordination, deadline)

        threads = [threading.Thread(target=coordinate, args=(i,), daemon=True) for i in range(len(outcomes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        finished = [outcome for outcome in outcomes if outcome is not None]
        self.coordination_codes = [outcome.exit_code if outcome else None for outcome in outcomes]
        failed = next((outcome for outcome in finished if outcome.exit_code != 0), None)
        if failed is not None or len(finished) < len(outcomes):
            self.plan.handle.kill_all(forget=True)
            if failed is None:
                return RunResult(failure_info={"category": "servererror", "code": "Unknown",
                                               "message": "A coordination command could not be run."},
                                 failure_kind="preprocessing")
            return outcome_result(failed)
        outcome = self._run(0, str(self.plan.spec["commandLine"]), deadline)
        self.plan.handle.kill_all(forget=True)
        return outcome_result(outcome)

    def _record_subtasks(self, result: RunResult) -> None:
        with self.state.lock:
            job = self.state.jobs.get(self.plan.job_id.lower())
            task = job.tasks.get(self.plan.task_id.lower()) if job else None
            if task is None or task.handle is not self.plan.handle:
                return
            for subtask in task.subtasks:
                code = self.coordination_codes[subtask.id] if subtask.id < len(self.coordination_codes) else None
                subtask.exit_code = code
                subtask.end_time = utc_now()
                subtask.result = "success" if code == 0 and not result.cancel_reason else "failure"
                subtask.lifecycle.move("completed")
