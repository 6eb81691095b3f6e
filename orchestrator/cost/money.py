"""Amounts of money written by people: ``50``, ``"50 USD"``, ``"$12.50"``, ``"0.9 usd"``.

orch prices in US dollars (the VM price table's currency, and what ``price_per_node_hour``
means), so an amount is a non-negative number of USD; another currency code is refused rather
than silently read as dollars.
"""
from __future__ import annotations

import math
import re

CURRENCY = "USD"
_AMOUNT = re.compile(r"\s*(\$)?\s*(\d+(?:\.\d+)?)\s*([A-Za-z]{3})?\s*")
_EXAMPLES = '50, "50 USD" or "$12.50"'
MAX_AMOUNT = 1e9


def parse_money(value: object) -> float:
    """USD in ``value``; ValueError says the accepted forms."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"an amount is a number of {CURRENCY} or a string like {_EXAMPLES}; got {value!r}")
    if isinstance(value, str):
        match = _AMOUNT.fullmatch(value)
        if match is None:
            raise ValueError(f"{value!r} is not an amount: write it like {_EXAMPLES}")
        dollar, number, code = match.groups()
        if code is not None and code.upper() != CURRENCY:
            raise ValueError(f"orch prices in {CURRENCY} (the VM price table's currency); "
                             f"convert {value!r} to {CURRENCY}")
        if dollar and code is not None and code.upper() != CURRENCY:
            raise ValueError(f"{value!r} names two currencies")
        amount = float(number)
    else:
        amount = float(value)
    if not math.isfinite(amount) or amount < 0 or amount > MAX_AMOUNT:
        raise ValueError(f"an amount must be between 0 and {MAX_AMOUNT:,.0f} {CURRENCY}; got {value!r}")
    return amount


def format_money(amount: float) -> str:
    """``12.35 USD``; amounts under a cent keep four decimals (a short trial's cost)."""
    return f"{amount:,.4f} {CURRENCY}" if 0 < abs(amount) < 0.01 else f"{amount:,.2f} {CURRENCY}"
