"""Authentication: Shared Key (``Authorization: SharedKey account:signature``), and the job-scoped
bearer tokens Batch gives tasks with ``authenticationTokenSettings`` (a token authorizes
``/jobs/<its job>`` and everything under it, nothing else).

Shared Key signs ``VERB``, the standard headers (Content-Length ``0`` for a body-less request
other than GET/HEAD; Date empty when ``ocp-date`` is sent), each ``ocp-*`` header, then
``/account/raw-path`` and the sorted query parameters. Their names are lower-cased by the
reference but signed as sent by the Python SDK (``timeOut``): both are accepted. Requests dated
more than 15 minutes off are refused.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

from .errors import BatchApiError
from .timekeeping import parse_http_date, utc_now

SIGNED_HEADERS = ("content-encoding", "content-language", "content-length", "content-md5", "content-type", "date",
                  "if-modified-since", "if-match", "if-none-match", "if-unmodified-since", "range")
MAX_CLOCK_SKEW = timedelta(minutes=15)


def sign(key_b64: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA256 of ``string_to_sign`` with the base64 account key."""
    digest = hmac.new(base64.b64decode(key_b64), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def string_to_sign(account: str, method: str, raw_path: str, raw_query: str, headers: dict[str, str], *,
                   lowercase_query_names: bool) -> str:
    """The canonical string a client signs for this request (``headers`` keys lower-case)."""
    standard = {name: headers.get(name, "") for name in SIGNED_HEADERS}
    if method not in ("GET", "HEAD") and not standard["content-length"]:
        standard["content-length"] = "0"
    if headers.get("ocp-date"):
        standard["date"] = ""
    ocp_headers = sorted((name, value) for name, value in headers.items() if name.startswith("ocp-") and value)
    resource = f"/{account}{raw_path}"
    params: dict[str, list[str]] = {}
    for name, values in parse_qs(raw_query).items():
        params.setdefault(name.lower() if lowercase_query_names else name, []).extend(values)
    for name in sorted(params):
        resource += f"\n{name}:{','.join(sorted(params[name]))}"
    lines = [method] + [standard[name] for name in SIGNED_HEADERS]
    return "\n".join(lines) + "\n" + "".join(f"{name}:{value}\n" for name, value in ocp_headers) + resource


def _auth_failed(detail: str) -> BatchApiError:
    return BatchApiError("AuthenticationFailed", values=[("AuthenticationErrorDetail", detail)])


class SharedKeyVerifier:
    """Checks requests against one account name and base64 key."""

    def __init__(self, account: str, key_b64: str) -> None:
        self.account = account
        self.key_b64 = key_b64

    def verify(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str]) -> None:
        """Return when the request is signed with this account's key; raise the Batch error otherwise."""
        authorization = headers.get("authorization")
        if not authorization:
            message = "Server failed to authenticate the request. The Authorization header is missing."
            raise BatchApiError("AuthenticationFailed", message, status=401, headers={"WWW-Authenticate": "SharedKey"})
        scheme, _, credentials = authorization.partition(" ")
        account, _, signature = credentials.strip().rpartition(":")
        if scheme != "SharedKey" or not account or not signature:
            raise BatchApiError("InvalidAuthenticationInfo", values=[("AuthenticationErrorDetail", authorization)])
        raw_date = headers.get("ocp-date") or headers.get("date")
        if not raw_date:
            raise BatchApiError("MissingRequiredHeader", values=[("HeaderName", "ocp-date")])
        sent = parse_http_date(raw_date)
        if sent is None:
            raise BatchApiError("InvalidHeaderValue", values=[("HeaderName", "ocp-date"), ("HeaderValue", raw_date)])
        if abs(utc_now() - sent) > MAX_CLOCK_SKEW:
            raise _auth_failed("Request date header too old or too far in the future.")
        if account != self.account:
            raise _auth_failed(f"The account '{account}' in the Authorization header is not this account.")
        if not any(hmac.compare_digest(self._expected(method, raw_path, raw_query, headers, lower), signature)
                   for lower in (False, True)):
            raise _auth_failed(f"The MAC signature found in the HTTP request '{signature}' is not the same as "
                               "any computed signature.")

    def _expected(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str], lower: bool) -> str:
        text = string_to_sign(self.account, method, raw_path, raw_query, headers, lowercase_query_names=lower)
        try:
            return sign(self.key_b64, text)
        except (binascii.Error, ValueError):
            return ""


def wants_job_token(task_spec: dict[str, Any]) -> bool:
    """Whether a task spec asks for a job-scoped token (``authenticationTokenSettings.access: [job]``)."""
    return "job" in ((task_spec.get("authenticationTokenSettings") or {}).get("access") or [])


class JobTokens:
    """One opaque token per job, valid while the service runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_job: dict[str, str] = {}
        self._jobs: dict[str, str] = {}

    def issue(self, job_id: str) -> str:
        """The job's token (created on first use)."""
        with self._lock:
            token = self._by_job.get(job_id.lower())
            if token is None:
                token = self._by_job[job_id.lower()] = secrets.token_urlsafe(32)
                self._jobs[token] = job_id.lower()
            return token

    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self._jobs

    def verify(self, raw_path: str, authorization: str) -> None:
        """Return when ``Bearer <token>`` is a job token and the path lies within that job; else 403."""
        job = self._jobs.get(authorization.partition(" ")[2].strip())
        if job is None:
            raise _auth_failed("unknown bearer token")
        parts = raw_path.strip("/").split("/")
        if len(parts) < 2 or parts[0] != "jobs" or unquote(parts[1]).lower() != job:
            raise _auth_failed("the job token does not grant access to this resource")
