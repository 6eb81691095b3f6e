"""``orch ui [--port N] [--host H] [--open] [--allow-actions]``: the live web dashboard."""
from __future__ import annotations

import click

from orchestrator.cli.context import config_dir
from orchestrator.errors import SpecError

DEFAULT_PORT = 8765
SERVER_MODULES = ("starlette", "uvicorn", "anyio")


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, help="Port to serve on (0: any free port).")
@click.option("--host", default="127.0.0.1",
              help="Address to bind. Anything but loopback opens the dashboard to the network (the token still guards it).")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in the default browser.")
@click.option("--allow-actions", is_flag=True,
              help="Allow cancelling jobs and deleting pools from the page (each asks for a typed confirmation).")
@click.option("--log-poll", type=click.FloatRange(0.1, 60), default=0.5,
              help="Longest pause, in seconds, between reads of an idle log being followed (each read is one "
                   "request to the pool's backend).")
def ui(port: int, host: str, open_browser: bool, allow_actions: bool, log_poll: float) -> None:
    """Serve a live dashboard of pools, jobs, logs and sweeps from this machine.

    Prints a URL with a random access token made for this start (as Jupyter does). Read-only
    unless --allow-actions. Ctrl-C stops it.
    """
    try:
        from orchestrator.ui.serve import serve
    except ImportError as exc:
        if exc.name not in SERVER_MODULES:
            raise
        raise SpecError(f"orch ui needs its web server ({exc.name} is not installed)",
                        hint="pip install 'orch[ui]'") from None
    serve(host=host, port=port, open_browser=open_browser, allow_actions=allow_actions, config_dir=config_dir(),
          poll_cap=log_poll, echo=click.echo)
