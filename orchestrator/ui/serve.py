"""Start the dashboard: bind, make this start's token, print the URL, serve until Ctrl-C."""
from __future__ import annotations

import errno
import ipaddress
import socket
import webbrowser
from pathlib import Path
from typing import Callable

from orchestrator.errors import ConflictError, SpecError
from orchestrator.ui.access import LOOPBACK_NAMES, Access, new_token
from orchestrator.ui.logs import DEFAULT_POLL_CAP
from orchestrator.ui.server import create_app
from orchestrator.ui.state import Dashboard

WILDCARDS = ("0.0.0.0", "::", "")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); ``ConflictError`` when taken."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SpecError(f"cannot bind to host {host!r}: {exc.strerror}", hint="pass --host with an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConflictError(f"port {port} on {host} is in use", hint="pass --port N (0 picks a free port)") from None
        raise SpecError(f"cannot bind to {host}:{port}: {exc.strerror}", hint="pass another --host or --port") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def accepted_hosts(host: str) -> frozenset[str] | None:
    """Host names requests may carry: loopback names and the bound host (any, for a wildcard bind)."""
    if host in WILDCARDS:
        return None
    return LOOPBACK_NAMES | {host, socket.gethostname()} if host not in LOOPBACK_NAMES else LOOPBACK_NAMES


def url_of(host: str, port: int, token: str) -> str:
    shown = socket.gethostname() if host in WILDCARDS else host
    try:
        if ipaddress.ip_address(shown).version == 6:
            shown = f"[{shown}]"
    except ValueError:
        pass
    return f"http://{shown}:{port}/?token={token}"


def serve(*, host: str = "127.0.0.1", port: int = 0, open_browser: bool = False, allow_actions: bool = False,
          config_dir: Path | None = None, poll_cap: float = DEFAULT_POLL_CAP,
          echo: Callable[[str], None] = print) -> None:
    """Serve the dashboard until interrupted; prints its URL (with the token) through ``echo``."""
    import uvicorn

    sock = bind(host, port)
    access = Access(token=new_token(), port=sock.getsockname()[1], hosts=accepted_hosts(host),
                    allow_actions=allow_actions)
    app = create_app(Dashboard(config_dir), access, poll_cap=poll_cap)
    url = url_of(host, access.port, access.token)
    echo(f"orch ui: {url}")
    echo("read-only" if not allow_actions else "actions allowed: cancel jobs and delete pools (each confirmed)")
    if open_browser:
        webbrowser.open(url)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                           timeout_graceful_shutdown=2))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again
        pass
    echo("orch ui stopped")
