"""``orch logs [JOB [TASK]] [--file stdout|stderr|metrics|PATH] [--tail]``.

stdout, stderr and metrics are text (undecodable bytes replaced); any other file is written to
stdout byte for byte, so ``--file outputs/model.pt > model.pt`` copies it. Everything is streamed
in the backend's chunks: memory stays constant whatever the file's size.
"""
from __future__ import annotations

import sys
from typing import Iterable

import click

from orchestrator.cli.context import config_dir
from orchestrator.cli.params import JOB_ID, TASK_FILE, TASK_ID
from orchestrator.errors import NotFoundError

TEXT_FILES = frozenset({"stdout", "stderr", "metrics"})


@click.command()
@click.argument("job_id", type=JOB_ID, required=False)
@click.argument("task_id", type=TASK_ID, required=False)
@click.option("--file", "name", type=TASK_FILE, default="stdout", show_default=True,
              help="stdout, stderr, metrics (text), or a path under the task folder, written byte for byte "
                   "(e.g. outputs/model.pt).")
@click.option("--tail", "-f", "tail", is_flag=True, help="Follow until the task (or the whole job) ends.")
def logs(job_id: str | None, task_id: str | None, name: str, tail: bool) -> None:
    """Show a task's output, or every task's output prefixed with its id.

    With no JOB, the most recent job. With --tail, follows and ends when the job ends.
    """
    from orchestrator import follow
    from orchestrator.jobs import latest_job_id, locate

    handle = locate(job_id or latest_job_id(), config_dir=config_dir())
    backend, ref = handle.backend, handle.ref
    if tail and task_id and name not in TEXT_FILES:
        _write_bytes(follow.follow_bytes(backend, ref, task_id, name))
    elif tail:
        stream = follow.follow_task(backend, ref, task_id, name) if task_id else follow.follow_all(backend, ref, name)
        for text in stream:
            click.echo(text, nl=not task_id)
    elif task_id:
        chunks = follow.file_chunks(backend, ref, task_id, name)
        if chunks is None:
            raise NotFoundError(f"{name} of task {task_id!r} in job {ref.job_id!r} does not exist (yet)",
                                hint="the task may not have started; try --tail")
        if name in TEXT_FILES:
            _write_text(follow.decoded(chunks))
        else:
            _write_bytes(chunks)
    else:
        for task in backend.list_tasks(ref):
            chunks = follow.file_chunks(backend, ref, task.id, name)
            if chunks is not None:
                _write_text(follow.prefixed(f"[{task.id}] ", follow.decoded(chunks)))


def _write_text(texts: Iterable[str]) -> None:
    for text in texts:
        click.echo(text, nl=False)


def _write_bytes(chunks: Iterable[bytes]) -> None:
    sys.stdout.flush()
    out = sys.stdout.buffer
    for data in chunks:
        out.write(data)
    out.flush()
