"""How typed answers are read: amounts exactly, dates as dates, countries as ISO alpha-3."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from bot.services.inputs import (
    InputError,
    check_amount_precision,
    parse_amount,
    parse_country,
    parse_date_of_birth,
    parse_email,
    parse_name,
    parse_title,
)

MAX = Decimal("10000000")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", "100"),
        ("100.5", "100.5"),
        ("100,5", "100.5"),
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1,234,567", "1234567"),
        ("0,123", "0.123"),
        ("0.123", "0.123"),
        ("1.2345", "1.2345"),
        ("1 234 567", "1234567"),
        ("0.00000001", "0.00000001"),
        ("$ 12.30", "12.30"),
        ("0.1", "0.1"),
    ],
)
def test_amounts_are_read_exactly(text: str, expected: str) -> None:
    amount = parse_amount(text, max_amount=MAX)
    assert isinstance(amount, Decimal)
    assert amount == Decimal(expected) and format(amount, "f") == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "error-amount-format"),
        ("abc", "error-amount-format"),
        ("1e5", "error-amount-format"),
        ("NaN", "error-amount-format"),
        ("inf", "error-amount-format"),
        ("1.2.3", "error-amount-format"),
        ("12,34,56", "error-amount-format"),
        ("-1", "error-amount-positive"),
        ("0", "error-amount-positive"),
        ("0.00", "error-amount-positive"),
        ("1,234", "error-amount-ambiguous"),
        ("1.234", "error-amount-ambiguous"),
        ("12.345", "error-amount-ambiguous"),
        ("100 50", "error-amount-format"),
        ("12 34,5", "error-amount-format"),
        ("10000001", "error-amount-too-large"),
    ],
)
def test_unreadable_or_ambiguous_amounts_are_refused(text: str, key: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_amount(text, max_amount=MAX)
    assert caught.value.key == key


def test_precision_is_checked_against_the_currency_not_rounded() -> None:
    assert check_amount_precision(Decimal("12.30"), 2, "EUR") == Decimal("12.30")
    assert check_amount_precision(Decimal("0.12345678"), 8, "BTC") == Decimal("0.12345678")
    with pytest.raises(InputError) as caught:
        check_amount_precision(Decimal("12.345"), 2, "EUR")
    assert caught.value.params == {"currency": "EUR", "decimals": 2}
    with pytest.raises(InputError):
        check_amount_precision(Decimal("1.5"), 0, "JPY")


TODAY = dt.date(2026, 11, 22)


@pytest.mark.parametrize("text", ["1995-08-17", "17.08.1995", "1995-8-17", "17.8.1995"])
def test_dates_of_birth_in_both_formats_become_dates(text: str) -> None:
    born = parse_date_of_birth(text, today=TODAY)
    assert born == dt.date(1995, 8, 17) and type(born) is dt.date


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("17/08/1995", "error-date-format"),
        ("1995-02-30", "error-date-invalid"),
        ("2026-11-22", "error-date-future"),
        ("1880-01-01", "error-date-too-old"),
    ],
)
def test_impossible_dates_of_birth_are_refused(text: str, key: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_date_of_birth(text, today=TODAY)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("text", "alpha3"),
    [("DE", "DEU"), ("deu", "DEU"), ("Germany", "DEU"), ("France", "FRA"), ("gb", "GBR")],
)
def test_countries_become_iso_alpha3(text: str, alpha3: str) -> None:
    assert parse_country(text) == alpha3


def test_unknown_countries_are_refused() -> None:
    with pytest.raises(InputError):
        parse_country("Atlantis")


def test_titles_names_and_emails() -> None:
    assert parse_title("  Order\n 42 ") == "Order 42"
    assert len(parse_title("x" * 50)) == 50
    with pytest.raises(InputError):
        parse_title("x" * 51)
    with pytest.raises(InputError):
        parse_title("   ")
    assert parse_name("Jean-Luc") == "Jean-Luc"
    with pytest.raises(InputError):
        parse_name("R2D2")
    assert parse_email(" a.b@example.org ") == "a.b@example.org"
    with pytest.raises(InputError):
        parse_email("nope@nowhere")
