"""Take secrets out of text before it reaches the page.

Backends already keep keys out of their errors (the Azure backend strips SAS signatures); this is
the dashboard's own last line, applied to every error and detail text it shows: SAS signatures
(the same rule as the Azure backend's), account keys in connection strings, and bearer tokens.
The UI cannot import a backend, so the rule is kept here.
"""
from __future__ import annotations

import re

REDACTED = "REDACTED"
_RULES = (
    re.compile(r"(\bsig=)[^&\s'\"]+", re.IGNORECASE),
    re.compile(r"(\bAccountKey=)[^;\s'\"]+", re.IGNORECASE),
    re.compile(r"(\bSharedAccessSignature=)[^;\s'\"]+", re.IGNORECASE),
    re.compile(r"(\bBearer\s+)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),
)


def redact(text: str | None) -> str | None:
    """``text`` with every secret the rules above find replaced by ``REDACTED`` (None stays None)."""
    if text is None:
        return None
    for rule in _RULES:
        text = rule.sub(rf"\g<1>{REDACTED}", text)
    return text
