"""``orch sweep FILE [--dry-run|--resume]``, ``orch sweep status JOB``, ``orch sweep results JOB``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from orchestrator.cli.context import backend_for_job, settings
from orchestrator.cli.render import counts_text, emit_table
from orchestrator.errors import SpecError


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
@click.option("--dry-run", is_flag=True, help="Print the trials without submitting.")
@click.option("--resume", is_flag=True, help="Submit only trials not yet present (after Ctrl-C).")
@click.option("--yes", "-y", is_flag=True, help="Allow grids over 100,000 trials.")
@click.option("--tail", "-f", "tail", is_flag=True, help="Follow the trials' output until the sweep ends.")
def run(file: Path, dry_run: bool, resume: bool, yes: bool, tail: bool) -> None:
    """Expand the sweep in FILE and submit its trials as one job (idempotent: ids are deterministic)."""
    from orchestrator import sweep as sweep_core
    from orchestrator.job_tasks import launches, preflight
    from orchestrator.submit import submit_job

    job = settings().load_job_spec(file)
    total = sum((sweep_core.count(t) or 0) for t in job.tasks)
    if total > sweep_core.CONFIRM_ABOVE and not yes:
        raise SpecError(f"the sweep has {total:,} trials (over {sweep_core.CONFIRM_ABOVE:,})",
                        hint="pass --yes to submit it anyway, or lower limits.max_total_trials")
    if dry_run:
        for warning in preflight(job, base_dir=settings().config_dir):
            click.echo(f"warning: {warning}", err=True)
        for launch in launches(job, base_dir=settings().config_dir):
            click.echo(json.dumps({"id": launch.id, "params": dict(launch.params), "command": launch.command}))
        return
    report = submit_job(job, settings().config_dir, kind="sweep", warn=lambda w: click.echo(f"warning: {w}", err=True))
    verb = "resumed" if resume else "submitted"
    click.echo(f"sweep {job.id} {verb}: {report.submitted} trial(s) added, {report.already_present} already present",
               err=tail)
    if tail:
        from orchestrator.cli.jobs_cmds import follow_and_exit

        follow_and_exit(job.id)


@sweep.command("status")
@click.argument("job_id")
def status(job_id: str) -> None:
    """Progress bar and counts of a sweep."""
    info = backend_for_job(job_id).get_job(job_id)
    if info is None:
        raise SpecError(f"sweep {job_id!r} not found")
    done = sum(v for k, v in info.task_counts.items() if k not in ("pending", "running"))
    width = 40
    filled = int(width * done / max(1, info.total_tasks))
    click.echo(f"{job_id} [{'#' * filled}{'.' * (width - filled)}] {done}/{info.total_tasks} {info.state}")
    click.echo(counts_text(dict(info.task_counts)))


@sweep.command("results")
@click.argument("job_id")
@click.option("--metric", default=None, help="Metric to rank by (default: the first numeric metric the trials report).")
@click.option("--goal", type=click.Choice(["maximize", "minimize"]), default="maximize")
@click.option("--output", "-o", type=click.Choice(["table", "json", "csv"]), default="table")
def results(job_id: str, metric: str | None, goal: str, output: str) -> None:
    """Trials sorted by the objective, best first."""
    from orchestrator import sweep_results
    from orchestrator.cli.render import emit_json

    backend = backend_for_job(job_id)
    ranked = sweep_results.rank(sweep_results.collect(backend, job_id, metric), metric, goal)
    rows = [{"trial": r.task.id, "state": r.task.state.value, metric or "value": r.value,
             **{f"param.{k}": v for k, v in r.task.params.items()}} for r in ranked]
    if output == "json":
        emit_json(rows)
    elif output == "csv":
        import csv
        import sys

        columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "trial", k != "state", k))
        writer = csv.DictWriter(sys.stdout, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    else:
        columns = list(rows[0]) if rows else ["trial"]
        emit_table(None, [c.upper() for c in columns], [[row.get(c) for c in columns] for row in rows])
