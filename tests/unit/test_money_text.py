"""Money on every card, list and message: exact, grouped, the currency's own decimals, and
never an exponent, whatever text the provider sent."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.handlers.render import amount_text


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("0E-8", "USD", "0.00"),  # a provider's zero as Decimal writes it
        ("150.00000000", "USD", "150.00"),  # CryptoProcessing's 8 places on a USD invoice
        (Decimal("1234.5"), "EUR", "1\u202f234.50"),
        (Decimal("100"), "JPY", "100"),
        (Decimal("0.0015"), "BTC", "0.00150000"),
        (Decimal("1.123"), "EUR", "1.123"),  # more places than the currency's are never cut
        ("1E+3", "USDT_TRC20", "1\u202f000"),  # unknown currency: as exact as given
        ("not a number", "EUR", "not a number"),
    ],
)
def test_amounts_are_shown_as_people_read_them(
    amount: Decimal | str, currency: str, shown: str
) -> None:
    assert amount_text(amount, currency) == shown


@settings(max_examples=500, deadline=None)
@given(
    st.decimals(min_value=0, max_value=Decimal("1e15"), allow_nan=False, allow_infinity=False),
    st.sampled_from(["USD", "EUR", "JPY", "BTC", "ETH", "USDT_TRC20", None]),
)
def test_no_exponent_and_no_value_lost(amount: Decimal, currency: str | None) -> None:
    text = amount_text(amount, currency)
    assert "E" not in text.upper()
    assert Decimal(text.replace("\u202f", "")) == amount
