"""``orch down``: remove everything orch created for a config: its jobs and pool (and with
``--storage`` the pool's blob container), then say what was removed."""
from __future__ import annotations

import click

from orchestrator.records import job_index, pool_records
from orchestrator.cli.context import settings
from orchestrator.errors import NotFoundError


@click.command()
@click.option("--storage", is_flag=True, help="Also delete the pool's blob container (inputs, outputs, log copies).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def down(storage: bool, yes: bool, quiet: bool) -> None:
    """Delete the config's jobs and pool (running tasks are killed), and with --storage its data."""
    from orchestrator.backend import load_backend
    from orchestrator.cli.render import progress_printer

    spec = settings().load_pool_spec()
    backend = load_backend(spec.backend, config_dir=settings().config_dir)
    exists = pool_records.load(spec.id) is not None
    jobs = [j.id for j in backend.list_jobs(spec.id)] if exists else []
    jobs += [e.id for e in job_index.entries() if e.pool_id == spec.id and e.id not in jobs]
    plan = [f"job {job_id}" for job_id in jobs] + ([f"pool {spec.id}"] if exists else [])
    storage = storage and hasattr(backend, "delete_storage")
    if storage:
        plan.append(f"the blob storage of pool {spec.id}")
    if not plan:
        click.echo(f"nothing to remove: pool {spec.id} does not exist")
        return
    if not yes:
        click.confirm("Remove " + ", ".join(plan) + "?", abort=True)
    removed: list[str] = []
    for job_id in jobs:
        try:
            backend.delete_job(job_id)
        except NotFoundError:
            job_index.forget(job_id)
            continue
        removed.append(f"job {job_id}")
    if exists:
        backend.delete_pool(spec.id, force=True, progress=progress_printer(quiet))
        removed.append(f"pool {spec.id}")
    if storage:
        removed += backend.delete_storage(spec)  # type: ignore[attr-defined]
    for item in removed:
        click.echo(f"removed {item}")
    if not removed:
        click.echo("nothing was removed")
