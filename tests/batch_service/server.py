"""The HTTP(S) front end: a threading HTTP/1.1 server whose handler parses requests and writes
responses (or drops the connection) for the dispatcher; and, for HTTPS, a self-signed certificate
made on the spot (its own CA: clients trust it through ``REQUESTS_CA_BUNDLE`` or ``connection_verify``).
"""
from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import sys
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .http_messages import Request, Response
from .routing import RequestDispatcher
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

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_DRAINED_BODY_BYTES:
            self.close_connection = True
            body = b""
        else:
            body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or self.server.authority
        request = Request(self.command.upper(), parts.path, parts.query, parse_qs(parts.query, keep_blank_values=True),
                          {name.lower(): value.strip() for name, value in self.headers.items()}, body,
                          f"{self.server.scheme}://{host}", str(uuid.uuid4()))
        too_large = length > self.server.settings.max_body_bytes
        response = self.server.dispatcher.dispatch(request, body_too_large=too_large)
        if response is None:
            self._drop()
        else:
            self._write(request, response)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def _drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _write(self, request: Request, response: Response) -> None:
        self.send_response(response.status)
        headers = {"request-id": request.request_id, "DataServiceVersion": "3.0", **response.headers}
        if request.header("client-request-id"):
            headers["client-request-id"] = str(request.header("client-request-id"))
        headers.setdefault("Content-Length", str(len(response.body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if request.method != "HEAD":
            self.wfile.write(response.body)


VALID_FOR = datetime.timedelta(days=2)


@dataclass(frozen=True)
class TlsFiles:
    """A PEM certificate (also the CA to trust) and its private key."""

    cert: Path
    key: Path


def self_signed_cert(directory: Path, host: str = "127.0.0.1") -> TlsFiles:
    """Write a fresh self-signed certificate for ``host`` (and localhost) under ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "local batch service")])
    now = datetime.datetime.now(datetime.timezone.utc)
    alt_names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        alt_names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALID_FOR)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "batch-cert.pem", directory / "batch-key.pem")
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """The server side TLS context for ``files``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.cert), str(files.key))
    return context
