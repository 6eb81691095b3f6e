"""The ``orch`` command line. Thin: parse, call a plain function, render. See ``root.py``."""
from __future__ import annotations

import shlex
import sys

import click

from orchestrator.errors import DeclinedError, OrchError, redact

_resume_hint: list[str] = []


def on_interrupt(hint: str) -> None:
    """Say what Ctrl-C from now on leaves behind and how to resume (replaces the default:
    run the same command again, which every orch command allows)."""
    _resume_hint[:] = [hint]


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI and maps every ``OrchError`` to its exit code, in one place.

    Ctrl-C exits 130 with how to resume; a declined confirmation exits 10 (``DeclinedError``)."""
    from orchestrator.cli.root import cli

    args = list(sys.argv[1:] if argv is None else argv)
    _resume_hint.clear()
    try:
        cli.main(args=args, prog_name="orch", standalone_mode=False, auto_envvar_prefix="ORCH")
    except OrchError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        _interrupted(args)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__ or exc.__context__, KeyboardInterrupt):
            _interrupted(args)
        click.echo(f"error: {DeclinedError.__doc__}", err=True)
        sys.exit(DeclinedError.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)


def _interrupted(args: list[str]) -> None:
    hint = _resume_hint[0] if _resume_hint else f"run `{shlex.join(['orch', *args])}` again to resume"
    click.echo(f"\ninterrupted (Ctrl-C): orch's state is consistent; {hint}", err=True)
    sys.exit(130)
