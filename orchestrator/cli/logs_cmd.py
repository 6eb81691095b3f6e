"""``orch logs [JOB [TASK]] [--file stdout|stderr] [--tail]``."""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir
from orchestrator.errors import NotFoundError


@click.command()
@click.argument("job_id", required=False)
@click.argument("task_id", required=False)
@click.option("--file", "name", default="stdout", show_default=True,
              help="stdout, stderr, metrics, or a path under the task folder (e.g. outputs/model.pt).")
@click.option("--tail", "-f", "tail", is_flag=True, help="Follow until the task (or the whole job) ends.")
def logs(job_id: str | None, task_id: str | None, name: str, tail: bool) -> None:
    """Show a task's output, or every task's output prefixed with its id.

    With no JOB, the most recent job. With --tail, follows and ends when the job ends.
    """
    from orchestrator.follow import follow_all, follow_task, read_whole
    from orchestrator.jobs import latest_job_id, locate

    handle = locate(job_id or latest_job_id(), config_dir=config_dir())
    backend, ref = handle.backend, handle.ref
    if tail:
        stream = follow_task(backend, ref, task_id, name) if task_id else follow_all(backend, ref, name)
        for text in stream:
            click.echo(text, nl=not task_id)
        return
    task_ids = [task_id] if task_id else [t.id for t in backend.list_tasks(ref)]
    for tid in task_ids:
        data = read_whole(backend, ref, tid, name)
        if data is None:
            if task_id:
                raise NotFoundError(f"{name} of task {tid!r} in job {ref.job_id!r} does not exist (yet)",
                                    hint="the task may not have started; try --tail")
            continue
        text = data.decode("utf-8", "replace")
        if task_id:
            click.echo(text, nl=False)
        else:
            for line in text.splitlines():
                click.echo(f"[{tid}] {line}")
