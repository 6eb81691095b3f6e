"""``orch status``: pools (nodes, free slots, spend and burn rate), jobs and task counts at a glance,
and a warning for every budget or ``max_spend`` at 80 % or more."""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir, warn
from orchestrator.cli.render import (
    OUTPUT_OPTION,
    clock,
    counts_text,
    emit_json,
    emit_table,
)
from orchestrator.model import PoolInfo
from orchestrator.spec.money import format_money


@click.command()
@OUTPUT_OPTION
def status(output: str) -> None:
    """Pools, their nodes and free slots, what each spent since it was created and burns now, and
    jobs with task counts by state."""
    from orchestrator.cost.report import pool_status
    from orchestrator.jobs import list_jobs
    from orchestrator.pools import list_pools

    pools = list_pools(config_dir=config_dir())
    jobs = list_jobs(config_dir=config_dir())
    costs = {p.id: pool_status(p.id, config_dir=config_dir()) for p in pools}
    if output == "json":
        emit_json({"pools": pools, "jobs": jobs,
                   "costs": {pool_id: {"usd": c.spend.total.usd if c.spend else None,
                                       "burn_usd_per_hour": c.spend.burn_per_hour if c.spend else None,
                                       "warnings": c.warnings()} for pool_id, c in costs.items()}})
        return
    if not pools:
        click.echo("no pools: create one with `orch pool create`")
        return
    emit_table("Pools", ["POOL", "BACKEND", "STATE", "NODES", "FREE SLOTS", "RUNNING", "SPENT", "BURN"],
               [(p.id, p.backend, _state(p), f"{len(p.nodes)}/{p.target_nodes}", p.free_slots,
                 sum(n.running_tasks for n in p.nodes), _money(costs[p.id].spend and costs[p.id].spend.total.usd),
                 _rate(costs[p.id].spend and costs[p.id].spend.burn_per_hour)) for p in pools])
    if jobs:
        emit_table("Jobs", ["JOB", "POOL", "STATE", "TASKS", "CREATED"],
                   [(j.id, j.pool_id, j.state, counts_text(dict(j.task_counts)), clock(j.created_at)) for j in jobs])
    for pool_id, cost in costs.items():
        for text in cost.warnings():
            warn(text)


def _state(pool: PoolInfo) -> str:
    return f"{pool.state}, stops {clock(pool.stops_at)}" if pool.stops_at else pool.state


def _money(amount: float | None) -> str:
    return "" if amount is None else format_money(amount)


def _rate(amount: float | None) -> str:
    return "" if amount is None else f"{format_money(amount)}/h"
