"""``orch pool create | list | show | resize | delete``."""
from __future__ import annotations

import time
from pathlib import Path

import click

from orchestrator.cli.context import config_dir, settings
from orchestrator.cli.params import DURATION, POOL_ID
from orchestrator.cli.render import (
    OUTPUT_OPTION,
    clock,
    emit_json,
    emit_table,
    progress_printer,
)
from orchestrator.duration import format_duration
from orchestrator.model import PoolInfo


@click.group()
def pool() -> None:
    """Create, list, show, resize and delete compute pools."""


@pool.command("create")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@click.option("--dry-run", is_flag=True, help="Check the file and print the estimated cost per hour; create nothing.")
@click.option("--idle-timeout", type=DURATION, default=None,
              help="Stop the pool (or delete it, with autodelete) after no task was pending or running this "
                   "long, e.g. 30m; overrides the file's idle_timeout.")
@OUTPUT_OPTION
def create(file: Path | None, quiet: bool, dry_run: bool, idle_timeout: float | None, output: str) -> None:
    """Create the pool in FILE (default: the pool file) and wait until it can run tasks.

    Idempotent: creating a pool that exists with the same spec just shows it; a pool that stopped
    itself after its idle timeout is started again, its jobs kept.
    """
    spec = settings().load_pool_spec(file)
    if idle_timeout is not None:
        spec = spec.model_copy(update={"idle_timeout": idle_timeout})
    if dry_run:
        from orchestrator.cli.pool_cost import show_cost

        show_cost(spec, output)
        return
    from orchestrator.pools import create_pool

    _show(create_pool(spec, config_dir=config_dir(), progress=progress_printer(quiet)), output)


@pool.command("list")
@OUTPUT_OPTION
def list_pools(output: str) -> None:
    """List the pools orch knows."""
    from orchestrator.pools import list_pools as all_pools

    infos = all_pools(config_dir=config_dir())
    if output == "json":
        emit_json(infos)
        return
    emit_table(None, ["POOL", "BACKEND", "STATE", "NODES", "FREE SLOTS", "ADDRESS"],
               [(p.id, p.backend, p.state, f"{len(p.nodes)}/{p.target_nodes}", p.free_slots, p.address) for p in infos])


@pool.command("show")
@click.argument("pool_id", type=POOL_ID, required=False)
@OUTPUT_OPTION
def show(pool_id: str | None, output: str) -> None:
    """Show one pool and its nodes (default: the pool of the pool file)."""
    from orchestrator.pools import show_pool

    _show(show_pool(pool_id or settings().load_pool_spec().id, config_dir=config_dir()), output)


@pool.command("resize")
@click.argument("pool_id", type=POOL_ID)
@click.argument("nodes", type=click.IntRange(1, 1000))
@click.option("--quiet", "-q", is_flag=True)
@OUTPUT_OPTION
def resize(pool_id: str, nodes: int, quiet: bool, output: str) -> None:
    """Change the node count of an idle pool."""
    from orchestrator.pools import resize_pool

    _show(resize_pool(pool_id, nodes, config_dir=config_dir(), progress=progress_printer(quiet)), output)


@pool.command("delete")
@click.argument("pool_id", type=POOL_ID, required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Delete even while tasks run (they are killed).")
@click.option("--quiet", "-q", is_flag=True)
def delete(pool_id: str | None, yes: bool, force: bool, quiet: bool) -> None:
    """Delete a pool and everything orch started for it."""
    from orchestrator.pools import delete_pool, pool_backend

    pool_id = pool_id or settings().load_pool_spec().id
    pool_backend(pool_id)  # a pool that does not exist is reported before asking
    if not yes:
        click.confirm(f"Delete pool {pool_id!r}{' and kill its running tasks' if force else ''}?", abort=True)
    delete_pool(pool_id, force=force, config_dir=config_dir(), progress=progress_printer(quiet))
    click.echo(f"pool {pool_id} deleted")


def _show(info: PoolInfo, output: str) -> None:
    if output == "json":
        emit_json(info)
        return
    click.echo(f"pool {info.id}: {info.state} ({info.backend}, {len(info.nodes)}/{info.target_nodes} nodes"
               f"{', ' + info.address if info.address else ''})")
    if info.detail:
        click.echo(f"  {info.detail}")
    if info.stops_at is not None:
        left = max(0.0, info.stops_at - time.time())
        click.echo(f"  idle: stops itself at {clock(info.stops_at)} (in {format_duration(round(left))}) unless a task "
                   "is submitted")
    if info.nodes:
        emit_table(None, ["NODE", "ADDRESS", "STATE", "CPUS", "GPUS", "FREE SLOTS", "RUNNING"],
                   [(n.id[:12], n.address, n.state, f"{n.cpus:g}", f"{n.gpus:g}", n.free_slots, n.running_tasks)
                    for n in info.nodes])
