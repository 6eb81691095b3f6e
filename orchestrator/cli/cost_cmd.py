"""``orch cost [--pool P] [--job J] [--since 7d] [--output table|json|csv]``: what pools, jobs and
tasks cost, idle time apart, from the backends' own records (``orchestrator.cost.report``)."""
from __future__ import annotations

import csv
import sys
import time

import click

from orchestrator.cli.context import config_dir, warn
from orchestrator.cli.params import DURATION, JOB_ID, POOL_ID
from orchestrator.cli.render import emit_json, emit_table
from orchestrator.cost.report import CostReport, PoolCost
from orchestrator.cost.spend import IDLE, Tally
from orchestrator.spec.money import format_money


@click.command()
@click.option("--pool", "pool_id", type=POOL_ID, default=None, help="Only this pool (deleted pools too).")
@click.option("--job", "job_id", type=JOB_ID, default=None, help="Only this job, task by task.")
@click.option("--since", type=DURATION, default=None, help="Only spend of the last DURATION (e.g. 7d, 12h, 30m).")
@click.option("--output", "-o", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True)
def cost(pool_id: str | None, job_id: str | None, since: float | None, output: str) -> None:
    """Spend per pool, job and task, with idle node time apart (node time x price).

    Pools deleted from this machine are included: their ledgers are kept.
    """
    from orchestrator.cost.report import cost_report

    start = time.time() - since if since is not None else None
    report = cost_report(pool_id=pool_id, job_id=job_id, since=start, config_dir=config_dir())
    if output == "json":
        emit_json(as_json(report, job_id))
    elif output == "csv":
        write_csv(report, job_id)
    else:
        print_tables(report, job_id)
    for note in report.notes():
        warn(note)


def rows(report: CostReport, job_id: str | None) -> list[tuple[str, str, str, Tally]]:
    """(pool, job, task, tally): each pool's total (job ""), its idle time (job "(idle)"), each job
    (task ""), and with ``job_id`` that job's tasks."""
    out = []
    for pool in report.pools:
        spend = pool.spend
        if spend is None:
            continue
        if job_id is None:
            out += [(pool.pool_id, "", "", spend.total), (pool.pool_id, IDLE, "", spend.idle)]
        for job, tally in sorted(spend.jobs.items()):
            if job_id is None or job == job_id:
                out.append((pool.pool_id, job, "", tally))
        if job_id is not None:
            out += [(pool.pool_id, job, task, tally) for (job, task), tally in sorted(spend.tasks.items())
                    if job == job_id]
    return out


def write_csv(report: CostReport, job_id: str | None) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(["pool", "job", "task", "node_hours", "usd"])
    for pool, job, task, tally in rows(report, job_id):
        writer.writerow([pool, job, task, f"{tally.node_hours:.6f}", f"{tally.usd:.6f}"])


def as_json(report: CostReport, job_id: str | None) -> dict[str, object]:
    pools = []
    for pool in report.pools:
        entry: dict[str, object] = {"pool": pool.pool_id, "backend": pool.backend, "deleted": pool.deleted,
                                    "note": pool.note}
        if pool.spend is not None:
            spend = pool.spend
            entry.update(usd=spend.total.usd, node_hours=spend.total.node_hours, idle_usd=spend.idle.usd,
                         idle_node_hours=spend.idle.node_hours, unpriced_node_hours=spend.total.unpriced_hours,
                         burn_usd_per_hour=spend.burn_per_hour,
                         jobs=[{"job": job, "usd": tally.usd, "node_hours": tally.node_hours,
                                "tasks": [{"task": task, "usd": t.usd, "node_hours": t.node_hours}
                                          for (j, task), t in sorted(spend.tasks.items()) if j == job]}
                               for job, tally in sorted(spend.jobs.items()) if job_id is None or job == job_id])
        pools.append(entry)
    return {"since": report.since, "currency": "USD", "pools": pools}


def print_tables(report: CostReport, job_id: str | None) -> None:
    since = f" since {time.strftime('%Y-%m-%d %H:%M', time.localtime(report.since))}" if report.since else ""
    if not report.pools:
        click.echo(f"no spend recorded{since}" + (f" for job {job_id}" if job_id else ""))
        return
    priced = [pool for pool in report.pools if pool.spend is not None]
    if job_id is None:
        emit_table(f"Pools{since}", ["POOL", "NODE HOURS", "SPEND", "IDLE", "BURN NOW"],
                   [(_name(p), f"{p.spend.total.node_hours:.3f}", format_money(p.spend.total.usd),
                     format_money(p.spend.idle.usd), f"{format_money(p.spend.burn_per_hour)}/h")
                    for p in priced if p.spend is not None])
    jobs = [(pool, job, tally) for pool, job, task, tally in rows(report, job_id) if job not in ("", IDLE) and not task]
    if jobs:
        emit_table(f"Jobs{since}", ["POOL", "JOB", "NODE HOURS", "SPEND"],
                   [(pool, job, f"{tally.node_hours:.3f}", format_money(tally.usd)) for pool, job, tally in jobs])
    tasks = [(job, task, tally) for _, job, task, tally in rows(report, job_id) if task]
    if tasks:
        emit_table(f"Tasks of job {job_id}", ["TASK", "NODE HOURS", "SPEND"],
                   [(task, f"{tally.node_hours:.4f}", format_money(tally.usd)) for _, task, tally in tasks])


def _name(pool: PoolCost) -> str:
    return f"{pool.pool_id} (deleted)" if pool.deleted else pool.pool_id
