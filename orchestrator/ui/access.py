"""Who may read the dashboard and who may act through it.

A per-start random token (printed in the URL, as Jupyter does) opens the dashboard: the first
visit with ``?token=`` sets an HttpOnly, SameSite=Strict cookie and redirects to the URL without
it; scripts may send ``Authorization: Bearer <token>`` instead. Anything else gets 401.

Requests that change something (cancel a job, delete a pool) must also:
- be POSTs with a JSON body naming what they act on (the page asks the user to confirm first);
- carry ``X-Orch-CSRF``, a value derived from the token that only the dashboard's own pages hold
  (another site can neither read it nor send a custom header without a CORS preflight, which is
  never granted);
- come from the dashboard's own origin (``Origin`` and ``Sec-Fetch-Site`` when the browser sends them);
- reach a server started with actions allowed (read-only by default).
Every request must name an expected ``Host`` (the bound address or a loopback name), which stops
DNS-rebinding pages from talking to it.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD"})


def new_token() -> str:
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: its HTTP status and a message for the user."""

    status: int
    message: str


@dataclass(frozen=True)
class Access:
    """The token of this start, the port (which names the cookie) and the host names accepted
    (``hosts`` None: any, for a server bound to every interface, where only the token guards)."""

    token: str
    port: int
    hosts: frozenset[str] | None = field(default_factory=lambda: LOOPBACK_NAMES)
    allow_actions: bool = False

    @property
    def cookie_name(self) -> str:
        return f"orch_ui_{self.port}"

    @property
    def csrf(self) -> str:
        """The value pages send in ``X-Orch-CSRF`` (derived, so the token itself is not in the page)."""
        return hmac.new(self.token.encode(), b"orch-ui-csrf", hashlib.sha256).hexdigest()

    def host_ok(self, host_header: str | None) -> bool:
        if not host_header:
            return False
        host = urlsplit(f"//{host_header}").hostname or ""
        return self.hosts is None or host in self.hosts

    def token_ok(self, value: str | None) -> bool:
        return bool(value) and hmac.compare_digest(str(value).encode(), self.token.encode())

    def authenticated(self, headers: dict[str, str]) -> bool:
        """The request carries the token: in the dashboard's cookie or as a bearer token."""
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and self.token_ok(auth[7:].strip()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is simply no token
            return False
        morsel = cookie.get(self.cookie_name)
        return morsel is not None and self.token_ok(morsel.value)

    def check(self, method: str, headers: dict[str, str], query_token: str | None) -> Refusal | None:
        """Why this request must be refused, or None (a query token is handled by the caller)."""
        if not self.host_ok(headers.get("host")):
            return Refusal(400, "unexpected Host header: open the dashboard at the address `orch ui` printed")
        if query_token is not None and not self.token_ok(query_token):
            return Refusal(403, "wrong token: open the URL `orch ui` printed (a new start makes a new token)")
        if query_token is None and not self.authenticated(headers):
            return Refusal(401, "this dashboard needs its token: open the URL `orch ui` printed")
        if method in SAFE_METHODS:
            return None
        return self.check_action(method, headers)

    def check_action(self, method: str, headers: dict[str, str]) -> Refusal | None:
        if method != "POST":
            return Refusal(405, "only GET and POST are served")
        if not self.allow_actions:
            return Refusal(403, "the dashboard is read-only: start it with `orch ui --allow-actions` to act from it")
        if not hmac.compare_digest(headers.get("x-orch-csrf", "").encode(), self.csrf.encode()):
            return Refusal(403, "missing or wrong X-Orch-CSRF header: act from the dashboard's own page")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{headers.get('host', '')}":
            return Refusal(403, f"cross-site request refused (Origin {origin})")
        if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return Refusal(403, "cross-site request refused (Sec-Fetch-Site)")
        if not headers.get("content-type", "").startswith("application/json"):
            return Refusal(415, "actions take a JSON body")
        return None

    def cookie_header(self) -> str:
        return f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"
