"""The HTTP front end: a threading HTTP/1.1 server (HTTPS when given a TLS context) whose handler
parses requests and writes responses (or drops the connection) for the dispatcher."""
from __future__ import annotations

import socket
import ssl
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .dispatcher import RequestDispatcher
from .http_messages import Request, Response
from .settings import ServiceSettings

# Bodies up to this size are read (and answered) even when over the Batch limit.
MAX_DRAINED_BODY_BYTES = 64 * 1024 * 1024


class BatchHttpServer(ThreadingHTTPServer):
    """Threading server bound to one dispatcher and its settings."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], dispatcher: RequestDispatcher, settings: ServiceSettings,
                 tls: ssl.SSLContext | None = None) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.scheme = "https" if tls is not None else "http"
        super().__init__(address, BatchRequestHandler)
        if tls is not None:  # the handshake happens in the handler thread, on first read
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        bound_host, bound_port = self.socket.getsockname()[:2]
        self.authority = f"{bound_host}:{bound_port}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients closing keep-alive connections are normal; report anything else."""
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError, ssl.SSLError)):
            super().handle_error(request, client_address)


class BatchRequestHandler(BaseHTTPRequestHandler):
    """Parses one request, asks the dispatcher, writes the answer."""

    protocol_version = "HTTP/1.1"
    server: BatchHttpServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - keep test output quiet
        return

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_DRAINED_BODY_BYTES:
            self.close_connection = True
            body = b""
        else:
            body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or self.server.authority
        request = Request(
            method=self.command.upper(),
            raw_path=parts.path,
            raw_query=parts.query,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={name.lower(): value.strip() for name, value in self.headers.items()},
            body=body,
            base_url=f"{self.server.scheme}://{host}",
            request_id=str(uuid.uuid4()),
        )
        too_large = length > self.server.settings.max_body_bytes
        response = self.server.dispatcher.dispatch(request, body_too_large=too_large)
        if response is None:
            self._drop()
        else:
            self._write(request, response)

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, request: Request, response: Response) -> None:
        self.send_response(response.status)
        headers = {
            "request-id": request.request_id,
            "DataServiceVersion": "3.0",
            **response.headers,
        }
        client_request_id = request.header("client-request-id")
        if client_request_id:
            headers["client-request-id"] = client_request_id
        headers.setdefault("Content-Length", str(len(response.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if request.method != "HEAD" and response.status != 304:
            self.wfile.write(response.body)
