"""Shared Key verification, as the Batch service checks ``Authorization: SharedKey account:signature``.

String to sign::

    VERB\\nContent-Encoding\\nContent-Language\\nContent-Length\\nContent-MD5\\nContent-Type\\nDate\\n
    If-Modified-Since\\nIf-Match\\nIf-None-Match\\nIf-Unmodified-Since\\nRange\\n
    CanonicalizedHeaders            (each ``ocp-*`` header as ``name:value\\n``, names lower-case, sorted)
    CanonicalizedResource           (``/account/raw-path`` then ``\\nname:value`` per query parameter, sorted)

Content-Length is ``0`` for a body-less request other than GET/HEAD; Date is empty when
``ocp-date`` is present. The reference says query names are lower-cased; the Python SDK signs
them as sent (``timeOut``), so both forms are accepted. Requests older or newer than 15 minutes
are refused.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import timedelta
from urllib.parse import parse_qs

from .errors import BatchApiError
from .times import parse_http_date, utc_now

SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
MAX_CLOCK_SKEW = timedelta(minutes=15)


def sign(key_b64: str, string_to_sign: str) -> str:
    """Base64 HMAC-SHA256 of ``string_to_sign`` with the base64 account key."""
    digest = hmac.new(base64.b64decode(key_b64), string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def string_to_sign(
    account: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    *,
    lowercase_query_names: bool,
) -> str:
    """The canonical string a client signs for this request (``headers`` keys lower-case)."""
    standard = {name: headers.get(name, "") for name in SIGNED_HEADERS}
    if method not in ("GET", "HEAD") and not standard["content-length"]:
        standard["content-length"] = "0"
    if headers.get("ocp-date"):
        standard["date"] = ""
    lines = [method] + [standard[name] for name in SIGNED_HEADERS]
    ocp_headers = sorted((name, value) for name, value in headers.items() if name.startswith("ocp-") and value)
    canonical_headers = "".join(f"{name}:{value}\n" for name, value in ocp_headers)
    resource = f"/{account}{raw_path}"
    params: dict[str, list[str]] = {}
    for name, values in parse_qs(raw_query).items():
        key = name.lower() if lowercase_query_names else name
        params.setdefault(key, []).extend(values)
    for name in sorted(params):
        resource += f"\n{name}:{','.join(sorted(params[name]))}"
    return "\n".join(lines) + "\n" + canonical_headers + resource


class SharedKeyVerifier:
    """Checks requests against one account name and base64 key."""

    def __init__(self, account: str, key_b64: str) -> None:
        self.account = account
        self.key_b64 = key_b64

    def verify(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str]) -> None:
        """Return when the request is signed with this account's key; raise the Batch error otherwise."""
        authorization = headers.get("authorization")
        if not authorization:
            raise BatchApiError(
                "AuthenticationFailed",
                "Server failed to authenticate the request. The Authorization header is missing.",
                status=401,
                headers={"WWW-Authenticate": "SharedKey"},
            )
        scheme, _, credentials = authorization.partition(" ")
        account, _, signature = credentials.strip().rpartition(":")
        if scheme != "SharedKey" or not account or not signature:
            raise BatchApiError("InvalidAuthenticationInfo", values=[("AuthenticationErrorDetail", authorization)])
        self._check_date(headers)
        if account != self.account:
            raise _auth_failed(f"The account '{account}' in the Authorization header is not this account.")
        if not any(
            hmac.compare_digest(self._expected(method, raw_path, raw_query, headers, lower), signature)
            for lower in (False, True)
        ):
            raise _auth_failed(
                f"The MAC signature found in the HTTP request '{signature}' is not the same as any computed signature."
            )

    def _expected(self, method: str, raw_path: str, raw_query: str, headers: dict[str, str], lower: bool) -> str:
        text = string_to_sign(self.account, method, raw_path, raw_query, headers, lowercase_query_names=lower)
        try:
            return sign(self.key_b64, text)
        except (binascii.Error, ValueError):
            return ""

    @staticmethod
    def _check_date(headers: dict[str, str]) -> None:
        raw_date = headers.get("ocp-date") or headers.get("date")
        if not raw_date:
            raise BatchApiError("MissingRequiredHeader", values=[("HeaderName", "ocp-date")])
        sent = parse_http_date(raw_date)
        if sent is None:
            raise BatchApiError("InvalidHeaderValue", values=[("HeaderName", "ocp-date"), ("HeaderValue", raw_date)])
        if abs(utc_now() - sent) > MAX_CLOCK_SKEW:
            raise _auth_failed("Request date header too old or too far in the future.")


def _auth_failed(detail: str) -> BatchApiError:
    return BatchApiError("AuthenticationFailed", values=[("AuthenticationErrorDetail", detail)])
