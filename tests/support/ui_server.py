"""Run the dashboard in a background thread of the test process, and talk to it over real HTTP."""
from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orchestrator.ui.access import Access
from orchestrator.ui.serve import bind
from orchestrator.ui.server import create_app
from orchestrator.ui.state import Dashboard


@dataclass
class Served:
    access: Access
    dashboard: Dashboard
    host: str = "127.0.0.1"
    cookies: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.access.port}"

    @property
    def login_url(self) -> str:
        return f"{self.base}/?token={self.access.token}"

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None, body: Any = None,
                auth: bool = True, timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
        """One request; ``auth`` sends the token as a bearer token."""
        connection = http.client.HTTPConnection(self.host, self.access.port, timeout=timeout)
        sent = {"Host": f"{self.host}:{self.access.port}", **({"Authorization": f"Bearer {self.access.token}"}
                                                                if auth else {}), **(headers or {})}
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        connection.request(method, path, body=data, headers=sent)
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, payload

    def get_json(self, path: str) -> Any:
        status, _, payload = self.request("GET", path)
        assert status == 200, (status, payload[:500])
        return json.loads(payload)

    def events(self, path: str, *, until: str = "end", timeout: float = 30) -> list[tuple[str, dict[str, Any]]]:
        """Server-sent events of ``path`` up to and including the first ``until`` event."""
        connection = http.client.HTTPConnection(self.host, self.access.port, timeout=timeout)
        connection.request("GET", path, headers={"Authorization": f"Bearer {self.access.token}"})
        response = connection.getresponse()
        assert response.status == 200, response.read()
        found: list[tuple[str, dict[str, Any]]] = []
        kind = None
        try:
            while True:
                raw = response.readline()
                if not raw:
                    return found
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind:
                    found.append((kind, json.loads(line[6:])))
                    if kind == until:
                        return found
        finally:
            connection.close()


@contextmanager
def serve(dashboard: Dashboard | None = None, *, allow_actions: bool = False, token: str = "test-token",
          poll_cap: float = 0.5) -> Iterator[Served]:
    """The dashboard on a free loopback port until the block ends."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    access = Access(token=token, port=sock.getsockname()[1], allow_actions=allow_actions)
    dashboard = dashboard or Dashboard()
    server = uvicorn.Server(uvicorn.Config(create_app(dashboard, access, poll_cap=poll_cap), log_level="warning",
                                           access_log=False, lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the dashboard did not start"
        time.sleep(0.02)
    try:
        yield Served(access=access, dashboard=dashboard)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
