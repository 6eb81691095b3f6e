"""``orch down``: remove everything orch created for a config: its jobs and pool (and with
``--storage`` the pool's stored data), then say what was removed."""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir, settings


@click.command()
@click.option("--storage", is_flag=True, help="Also delete the pool's stored data (inputs, outputs, log copies).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def down(storage: bool, yes: bool, quiet: bool) -> None:
    """Delete the config's jobs and pool (running tasks are killed), and with --storage its data."""
    from orchestrator.cli.render import progress_printer
    from orchestrator.pools import plan_removal, remove

    spec = settings().load_pool_spec()
    removal = plan_removal(spec, storage=storage, config_dir=config_dir())
    if not removal.items():
        click.echo(f"nothing to remove: pool {spec.id} does not exist")
        return
    if not yes:
        click.confirm("Remove " + ", ".join(removal.items()) + "?", abort=True)
    removed = remove(removal, config_dir=config_dir(), progress=progress_printer(quiet))
    for item in removed:
        click.echo(f"removed {item}")
    if not removed:
        click.echo("nothing was removed")
