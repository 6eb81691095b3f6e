"""``orch jobs add | list | show | cancel | delete``."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import click

from orchestrator.cli import on_interrupt
from orchestrator.cli.context import config_dir, settings, warn
from orchestrator.cli.params import JOB_ID, POOL_ID
from orchestrator.cli.render import (
    OUTPUT_OPTION,
    clock,
    counts_text,
    emit_json,
    emit_table,
    seconds,
)
from orchestrator.errors import JobFailedError, NotFoundError, OrchError, SpecError
from orchestrator.model import AttemptInfo, TaskInfo

EARLIER_SHOWN = 20


@click.group()
def jobs() -> None:
    """Add, list, show, cancel and delete jobs."""


@jobs.command("add")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--tail", "-f", "tail", is_flag=True, help="Follow the job's output; exit 0 only if every task succeeded.")
@click.option("--append", is_flag=True, help="Add the new tasks of a changed FILE to the job while it runs.")
@OUTPUT_OPTION
def add(file: Path, tail: bool, append: bool, output: str) -> None:
    """Submit the job in FILE to its pool. Re-running the same file adds only tasks not yet present
    (after Ctrl-C); a changed file under the same job id is refused unless it only adds tasks
    and --append is given.

    A job with sweep tasks goes the way of ``orch sweep FILE`` (adaptive sweeps get their controller).
    """
    from orchestrator.spec.loader import place_error
    from orchestrator.submit import submit_job

    job = settings().load_job_spec(file)
    try:
        report = submit_job(job, config_dir=config_dir(), append=append, warn=warn)
    except SpecError as error:
        raise place_error(error, file) from None
    if output == "json" and not tail:
        emit_json(report)
        return
    click.echo(f"job {job.id}: {report.submitted} task(s) submitted, {report.already_present} already present"
               + (f", {len(report.failed)} failed" if report.failed else ""), err=tail)
    if tail:
        follow_and_exit(job.id)


def follow_and_exit(job_id: str, name: str = "stdout") -> None:
    """Stream every task's output until the job ends; raise ``JobFailedError`` unless all succeeded.
    Budgets of the job and its pool are watched meanwhile: a warning at 80 % and when reached."""
    from orchestrator.cost.report import BudgetWatch
    from orchestrator.follow import follow_all
    from orchestrator.jobs import locate

    handle = locate(job_id, config_dir=config_dir())
    on_interrupt(f"job {job_id} keeps running on pool {handle.ref.pool_id}: `orch logs {job_id} --tail` follows it "
                 f"again, `orch jobs show {job_id}` shows it, `orch jobs cancel {job_id}` stops it")
    watch = BudgetWatch(handle.backend, handle.ref)
    done = threading.Event()
    if watch.active:
        threading.Thread(target=_watch_budgets, args=(watch, done), name="budgets", daemon=True).start()
    try:
        for line in follow_all(handle.backend, handle.ref, name):
            click.echo(line)
    finally:
        done.set()
    for text in watch.check():
        warn(text)
    info = handle.backend.get_job(handle.ref)
    if info is None:
        raise NotFoundError(f"job {job_id!r} disappeared while being followed")
    click.echo(f"job {job_id} {info.state}: {counts_text(dict(info.task_counts))}", err=True)
    if not info.all_succeeded:
        failed = [t for t in handle.backend.list_tasks(handle.ref) if t.state.value in ("failed", "cancelled")]
        for task in failed[:10]:
            click.echo(f"  {task.id}: {task.state.value}, exit code {task.exit_code}"
                       + (f": {task.error}" if task.error else ""), err=True)
        raise JobFailedError(f"job {job_id} did not succeed ({counts_text(dict(info.task_counts))})",
                             hint=f"see `orch logs {job_id} <task> --file stderr`")


def _watch_budgets(watch: Any, done: threading.Event) -> None:
    """Print budget warnings (``BudgetWatch``) until ``done``; a failed read is tried again later."""
    while not done.wait(watch.every):
        try:
            texts = watch.check()
        except OrchError:
            continue
        for text in texts:
            warn(text)


@jobs.command("list")
@click.option("--pool", "pool_id", type=POOL_ID, default=None, help="Only jobs of this pool.")
@OUTPUT_OPTION
def list_jobs(pool_id: str | None, output: str) -> None:
    """List jobs of every pool."""
    from orchestrator.jobs import list_jobs as all_jobs

    infos = all_jobs(pool_id, config_dir=config_dir())
    if output == "json":
        emit_json(infos)
        return
    emit_table(None, ["JOB", "POOL", "STATE", "TASKS", "CREATED", "DURATION"],
               [(j.id, j.pool_id, j.state, counts_text(dict(j.task_counts)), clock(j.created_at),
                 seconds(j.created_at, j.ended_at)) for j in infos])


@jobs.command("show")
@click.argument("job_id", type=JOB_ID)
@OUTPUT_OPTION
def show(job_id: str, output: str) -> None:
    """Show a job and its tasks: states, exit codes, nodes, earlier attempts (retried, preempted and
    requeued, lost with their node), times."""
    from orchestrator.jobs import existing_job

    handle, info = existing_job(job_id, config_dir=config_dir())
    tasks = handle.backend.list_tasks(handle.ref)
    if output == "json":
        emit_json({"job": info, "tasks": tasks})
        return
    click.echo(f"job {info.id} on pool {info.pool_id}: {info.state} ({counts_text(dict(info.task_counts))})")
    emit_table(None, ["TASK", "STATE", "EXIT", "NODE", "RETRIES", "STARTED", "DURATION", "ERROR"],
               [_task_row(t) for t in tasks])
    _echo_earlier_attempts(tasks)


def _task_row(task: TaskInfo) -> tuple[object, ...]:
    return (task.id, task.state.value, task.exit_code, task.node_id, task.retries, clock(task.started_at),
            seconds(task.started_at, task.ended_at) if task.started_at else "", task.error or "")


def _echo_earlier_attempts(tasks: list[TaskInfo]) -> None:
    """Tasks that ran more than once, one line each below the table (never cut by its width)."""
    earlier = [(task.id, text) for task in tasks if (text := _earlier_attempts(task))]
    if not earlier:
        return
    click.echo("earlier attempts:")
    for task_id, text in earlier[:EARLIER_SHOWN]:
        click.echo(f"  {task_id}: {text}")
    if len(earlier) > EARLIER_SHOWN:
        click.echo(f"  … and {len(earlier) - EARLIER_SHOWN} more task(s); --output json has every attempt")
    cut = sum(1 for t in tasks for a in t.attempts if a.state in ("preempted", "lost"))
    if cut:
        click.echo(f"{cut} attempt(s) ended because their node was preempted or lost; preempted ones were "
                   "requeued without counting as retries; each new attempt starts from the task's last saved "
                   "checkpoint ($ORCH_CHECKPOINT_DIR)")


def _earlier_attempts(task: TaskInfo) -> str:
    """Attempts before the current one, e.g. ``attempt 1 preempted, requeued; attempt 2 failed (exit 3)``."""
    attempts = list(task.attempts)
    if attempts and task.state.is_terminal() and attempts[-1].state == task.state.value:
        attempts.pop()  # the last attempt is the task's own outcome, shown in its row
    return "; ".join(f"attempt {a.number} {_attempt_text(a)}" for a in attempts)


def _attempt_text(attempt: AttemptInfo) -> str:
    if attempt.state == "preempted":
        return "preempted, requeued"
    if attempt.state == "lost":
        return "lost (node down)"
    if attempt.state == "failed" and attempt.exit_code is not None:
        return f"failed (exit {attempt.exit_code})"
    return attempt.state


@jobs.command("cancel")
@click.argument("job_id", type=JOB_ID)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def cancel(job_id: str, yes: bool) -> None:
    """Cancel a job: pending tasks never start, running ones are killed with their process trees."""
    from orchestrator.jobs import cancel_job, locate

    handle = locate(job_id, config_dir=config_dir())
    _confirm(job_id, "cancel", yes)
    cancel_job(handle)
    click.echo(f"job {job_id} cancelled")


@jobs.command("delete")
@click.argument("job_id", type=JOB_ID)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def delete(job_id: str, yes: bool) -> None:
    """Delete a job and its record (cancels it first if it still runs)."""
    from orchestrator.jobs import delete_job, locate

    handle = locate(job_id, config_dir=config_dir())
    _confirm(job_id, "delete", yes)
    delete_job(handle)
    click.echo(f"job {job_id} deleted")


def _confirm(job_id: str, verb: str, yes: bool) -> None:
    if not yes:
        click.confirm(f"{verb.capitalize()} job {job_id!r}?", abort=True)
