"""The ``orch`` command line. Thin: parse, call a plain function, render. See ``root.py``."""
from __future__ import annotations

import logging
import os
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


def entry() -> None:
    """The ``orch`` program (console script and ``python -m orchestrator``): ``main``, then leave
    at once. Every command has finished its work and its writes when ``main`` returns, so what is
    left is the interpreter's teardown, which for a command that reached a Ray cluster is the Ray
    driver's (disconnecting, joining its threads: about 0.9 s of a 1.6 s ``orch jobs show``).
    Output is flushed and logging shut down first; the exit code is ``main``'s. In-process
    callers (tests) use ``main``, which raises ``SystemExit`` as usual."""
    try:
        main()
    except SystemExit as leaving:
        code = leaving.code
    else:  # pragma: no cover - main always exits
        code = 0
    os._exit(_flushed(code))


def _flushed(code: object) -> int:
    """Print a non-integer exit message as ``sys.exit`` would, flush stdout, stderr and logging,
    and give the process's exit code (1 when stdout could not be written, as a closed pipe)."""
    status = code if isinstance(code, int) else 0 if code is None else 1
    if not isinstance(code, (int, type(None))):
        print(code, file=sys.stderr)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            status = status or 1
    return status
