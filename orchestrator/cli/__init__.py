"""The ``orch`` command line. Thin: parse, call a plain function, render. See ``root.py``."""
from __future__ import annotations

import sys

import click

from orchestrator.errors import InterruptedByUser, OrchError


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and maps every ``OrchError`` to its exit code, in one place."""
    from orchestrator.cli.root import cli

    try:
        cli.main(args=argv, prog_name="orch", standalone_mode=False, auto_envvar_prefix="ORCH")
    except OrchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: {InterruptedByUser.__doc__}", err=True)
        sys.exit(InterruptedByUser.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
