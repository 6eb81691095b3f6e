"""Amounts of money in specs: USD only, written as numbers or strings."""
from __future__ import annotations

import pytest

from orchestrator.cost.money import format_money, parse_money


@pytest.mark.parametrize(("text", "amount"), [
    (50, 50.0), (0.5, 0.5), ("50", 50.0), ("50 USD", 50.0), ("12.5usd", 12.5), ("$12.50", 12.5), (" $ 3 ", 3.0)])
def test_amounts_people_write(text: object, amount: float) -> None:
    assert parse_money(text) == amount


@pytest.mark.parametrize(("text", "says"), [
    ("50 EUR", "convert"), ("-3", "not an amount"), (-3, "between 0"), (True, "number of USD"),
    ("fifty", "not an amount"), (float("nan"), "between 0"), ("1e12", "not an amount"), (2e9, "between 0")])
def test_what_is_refused_says_why(text: object, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_money(text)


def test_small_amounts_keep_their_cents() -> None:
    assert format_money(12.345) == "12.35 USD" and format_money(0.0012) == "0.0012 USD" and format_money(0) == "0.00 USD"
