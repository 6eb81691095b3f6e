"""``orch sweep FILE [--dry-run|--resume]``, ``orch sweep status JOB``, ``orch sweep results JOB``."""
from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from orchestrator.cli import on_interrupt
from orchestrator.cli.context import config_dir, settings, warn
from orchestrator.cli.params import JOB_ID
from orchestrator.cli.render import OUTPUT_OPTION, counts_text, emit_json
from orchestrator.errors import SpecError
from orchestrator.spec.money import format_money

WIDE_OUTPUT = 240


class SweepGroup(click.Group):
    """``orch sweep FILE`` runs a sweep; ``status``/``results`` are subcommands."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        if args and args[0] not in self.commands:
            args = ["run", *args]
        return super().resolve_command(ctx, args)


@click.group(cls=SweepGroup)
def sweep() -> None:
    """Run a sweep (``orch sweep FILE``), see its status and results."""


@sweep.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the trials (one JSON line each) without submitting.")
@click.option("--resume", is_flag=True, help="Submit only trials not yet present (after Ctrl-C).")
@click.option("--yes", "-y", is_flag=True, help="Allow sweeps over 100,000 trials.")
@click.option("--tail", "-f", "tail", is_flag=True, help="Follow the trials' output until the sweep ends.")
@click.option("--append", is_flag=True, help="Add the new trials of a changed FILE to the sweep while it runs.")
def run(file: Path, dry_run: bool, resume: bool, yes: bool, tail: bool, append: bool) -> None:
    """Expand the sweep in FILE and submit its trials as one job (idempotent: ids are deterministic).

    Bayesian sampling, early termination and a sweep timeout are driven by a controller that
    runs in the cluster: the sweep goes on after this command returns.
    """
    from orchestrator import plan
    from orchestrator.spec.loader import place_error
    from orchestrator.submit import dry_run as preview
    from orchestrator.submit import submit_job
    from orchestrator.sweep.expand import CONFIRM_ABOVE

    job = settings().load_job_spec(file)
    try:
        total = plan.planned_trials(job)
        if total > CONFIRM_ABOVE and not yes and not dry_run:
            raise SpecError(f"the sweep has {total:,} trials (over {CONFIRM_ABOVE:,})",
                            hint="pass --yes to submit it anyway, or lower limits.max_total_trials")
        if dry_run:
            warnings, launches = preview(job, config_dir=config_dir())
            for warning in warnings:
                warn(warning)
            for launch in launches:
                click.echo(json.dumps({"id": launch.id, "params": dict(launch.params), "command": launch.command},
                                      default=str))
            return
        on_interrupt(f"run `orch sweep {shlex.quote(str(file))} --resume` to submit the trials not yet present")
        report = submit_job(job, config_dir=config_dir(), append=append, warn=warn)
    except SpecError as exc:
        raise place_error(exc, file) from None
    verb = "resumed" if resume else "submitted"
    click.echo(f"sweep {job.id} {verb}: {report.submitted} trial(s) added, {report.already_present} already present"
               + ("; its controller runs in the cluster" if report.controlled else ""), err=tail)
    if tail:
        from orchestrator.cli.jobs_cmds import follow_and_exit

        follow_and_exit(job.id)


@sweep.command("status")
@click.argument("job_id", type=JOB_ID)
@OUTPUT_OPTION
def status(job_id: str, output: str) -> None:
    """Progress bar and trial counts of a sweep (stopped = ended early by its policy)."""
    from orchestrator.jobs import existing_job, sweep_state
    from orchestrator.records import job_index

    handle, info = existing_job(job_id, config_dir=config_dir())
    entry = job_index.lookup(job_id)
    counts = dict(info.task_counts)
    done = sum(n for state, n in counts.items() if state not in ("pending", "running"))
    planned = entry.trials if entry and entry.trials else 0
    total = info.total_tasks if info.finished else max(planned, info.total_tasks)
    if output == "json":
        emit_json({"job": job_id, "state": info.state, "done": done, "total": total, "counts": counts})
        return
    from rich.console import Console
    from rich.progress_bar import ProgressBar
    from rich.table import Table

    line = Table.grid(padding=(0, 1))
    line.add_row(job_id, ProgressBar(total=max(1, total), completed=done, width=40), f"{done}/{total}", info.state)
    console = Console(soft_wrap=True)
    console.print(line)
    console.print(counts_text(counts))
    controller = sweep_state(handle) if not info.finished else None
    if controller is not None:
        console.print(f"controller: {'running' if controller.get('running') else 'not running'}, "
                      f"{controller.get('passes', 0)} passes"
                      + (f"; last error: {controller['last_error']}" if controller.get("last_error") else ""),
                      markup=False)


@sweep.command("results")
@click.argument("job_id", type=JOB_ID)
@click.option("--metric", default=None, help="Metric to rank by (default: the sweep's objective, else the first "
                                             "numeric metric reported).")
@click.option("--goal", type=click.Choice(["maximize", "minimize"]), default=None,
              help="Direction (default: the objective's, else maximize).")
@click.option("--output", "-o", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also draw the objective against each parameter, and learning curves, into this PNG.")
def results(job_id: str, metric: str | None, goal: str | None, output: str, plot_path: Path | None) -> None:
    """Trials sorted by the objective (the best value each reported), best first, with what each
    cost and what the sweep had spent when its best trial ended (where the backend keeps a cost ledger)."""
    from orchestrator.cost.report import sweep_cost
    from orchestrator.jobs import locate
    from orchestrator.records import job_index
    from orchestrator.sweep import results as sweep_results

    handle = locate(job_id, config_dir=config_dir())
    entry = job_index.lookup(job_id)
    objective = sweep_results.resolve_objective(metric, goal, entry.objective if entry else None)
    ranked_results, chosen = sweep_results.collect(handle.backend, handle.ref, objective)
    ranked = sweep_results.rank(ranked_results, objective.goal)
    best = sweep_results.best(ranked)
    costs = sweep_cost(handle.backend, handle.ref, best.task if best else None)
    priced = costs is not None and not costs.unpriced
    rows = sweep_results.rows(ranked, chosen, costs.trials if costs is not None and priced else None)
    if plot_path is not None:
        from orchestrator.sweep.plot import write_plot

        write_plot(ranked, chosen or "value", objective.goal, plot_path)
        click.echo(f"plot written to {plot_path}", err=True)
    if output == "json":
        emit_json(rows)
    elif output == "csv":
        _emit_csv(rows)
    else:
        _print_table(rows)
        if costs is not None and not priced:
            click.echo(f"trials cost: not priced (pool {handle.ref.pool_id} has no price: set price_per_node_hour "
                       "in its pool file)")
        elif costs is not None:
            click.echo(f"trials cost {format_money(costs.total)}" + (
                f"; best found after {format_money(costs.best_after)} ({best.task.id})"
                if costs.best_after is not None and best is not None else ""))


def _emit_csv(rows: list[dict[str, object]]) -> None:
    import csv
    import sys

    columns = list(dict.fromkeys(key for row in rows for key in row))
    writer = csv.DictWriter(sys.stdout, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)


def _print_table(rows: list[dict[str, object]]) -> None:
    """Rows as a table; parameters headed by their names. Piped output is not cut to 80 columns."""
    import sys

    from rich.console import Console
    from rich.table import Table

    columns = list(rows[0]) if rows else ["rank", "trial", "state"]
    table = Table(show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column.removeprefix("param.").upper(), no_wrap=column in ("trial", "state"))
    for row in rows:
        table.add_row(*(_cell(row.get(column), money=column == "cost_usd") for column in columns))
    Console(soft_wrap=True, width=None if sys.stdout.isatty() else WIDE_OUTPUT).print(table)


def _cell(value: object, *, money: bool = False) -> str:
    if value is None:
        return ""
    if money and isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
