"""``orch status``: pools (nodes, free slots), jobs and task counts at a glance."""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir
from orchestrator.cli.render import (
    OUTPUT_OPTION,
    clock,
    counts_text,
    emit_json,
    emit_table,
)


@click.command()
@OUTPUT_OPTION
def status(output: str) -> None:
    """Pools, their nodes and free slots, and jobs with task counts by state."""
    from orchestrator.jobs import list_jobs
    from orchestrator.pools import list_pools

    pools = list_pools(config_dir=config_dir())
    jobs = list_jobs(config_dir=config_dir())
    if output == "json":
        emit_json({"pools": pools, "jobs": jobs})
        return
    if not pools:
        click.echo("no pools: create one with `orch pool create`")
        return
    emit_table("Pools", ["POOL", "BACKEND", "STATE", "NODES", "FREE SLOTS", "RUNNING"],
               [(p.id, p.backend, p.state, f"{len(p.nodes)}/{p.target_nodes}", p.free_slots,
                 sum(n.running_tasks for n in p.nodes)) for p in pools])
    if jobs:
        emit_table("Jobs", ["JOB", "POOL", "STATE", "TASKS", "CREATED"],
                   [(j.id, j.pool_id, j.state, counts_text(dict(j.task_counts)), clock(j.created_at)) for j in jobs])
