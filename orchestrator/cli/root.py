"""The root group: global options and lazily loaded subcommands (nothing heavy at start-up)."""
from __future__ import annotations

import importlib
from pathlib import Path

import click

from orchestrator import __version__

# name -> "module:attribute"; loaded only when the command runs or its help is shown.
COMMANDS: dict[str, tuple[str, str]] = {
    "pool": ("orchestrator.cli.pool_cmds:pool", "Create, list, show, resize and delete compute pools."),
    "jobs": ("orchestrator.cli.jobs_cmds:jobs", "Add, list, show, cancel and delete jobs."),
    "sweep": ("orchestrator.cli.sweep_cmds:sweep", "Run a sweep (orch sweep FILE), see its status and results."),
    "logs": ("orchestrator.cli.logs_cmd:logs", "Show or follow task output (stdout/stderr)."),
    "status": ("orchestrator.cli.status_cmd:status", "Pools, jobs and task counts at a glance."),
    "cost": ("orchestrator.cli.cost_cmd:cost", "Spend per pool, job and task, idle time apart."),
    "validate": ("orchestrator.cli.spec_cmds:validate", "Check spec files without touching any backend."),
    "schema": ("orchestrator.cli.spec_cmds:schema", "Print the JSON Schema of pool or job files."),
    "init": ("orchestrator.cli.spec_cmds:init", "Write starter spec files into a directory."),
    "completion": ("orchestrator.cli.spec_cmds:completion", "Print a shell completion script."),
    "data": ("orchestrator.cli.data_cmds:data", "List, upload and download files in the pool's data store."),
    "down": ("orchestrator.cli.down_cmd:down", "Remove everything orch created for this config (jobs, pool, data)."),
    "ui": ("orchestrator.cli.ui_cmd:ui", "Serve a live web dashboard of pools, jobs, logs and sweeps."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, _, attr = COMMANDS[name][0].partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="orch")
@click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              envvar="ORCH_CONFIG_DIR", show_envvar=True, help="Folder holding pool.yaml and jobs/.")
@click.option("--pool", "pool_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="ORCH_POOL_FILE", show_envvar=True, help="Pool file (default: <config-dir>/pool.yaml).")
@click.pass_context
def cli(ctx: click.Context, config_dir: Path, pool_file: Path | None) -> None:
    """orch: YAML job specs to compute pools, distributed training and sweeps.

    \b
    Quick start:
      orch init && orch pool create && orch jobs add jobs/hello.yaml --tail
    Exit codes: 0 ok, 1 job had failed tasks, 2 bad spec/usage, 3 not found,
    4 backend unreachable, 5 conflict, 6 capacity, 7 timeout, 8 auth, 9 backend error,
    10 confirmation declined, 130 Ctrl-C.
    """
    from orchestrator.cli.context import Settings

    ctx.obj = Settings(config_dir=config_dir, pool_file=pool_file)
