"""Money, numbers, dates and durations as an en/de/ru reader writes them: exact, grouped for
the locale, the currency's own places, never an exponent, the zone always shown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from babel.numbers import get_decimal_symbol, get_group_symbol
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.handlers.formatting import birth_date, duration, money, number, when
from bot.services.currencies import decimals_of

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "shown"),
    [
        ("1500.5", "USD", "en", "1,500.50 USD"),
        ("1500.5", "USD", "de", "1.500,50 USD"),
        ("1500.5", "USD", "ru", "1 500,50 USD"),
        (Decimal("1234.5"), "EUR", "en", "1,234.50 EUR"),
        (Decimal("1234.5"), "EUR", "de", "1.234,50 EUR"),
        (Decimal("1234.5"), "EUR", "ru", "1 234,50 EUR"),
        (Decimal("1500"), "JPY", "en", "1,500 JPY"),  # no places of its own
        (Decimal("1500"), "JPY", "de", "1.500 JPY"),
        (Decimal("0.0015"), "BTC", "en", "0.00150000 BTC"),  # 8 places
        (Decimal("0.0015"), "BTC", "de", "0,00150000 BTC"),
        (Decimal("0.0015"), "BTC", "ru", "0,00150000 BTC"),
        ("1E+3", "USDT_TRC20", "en", "1,000 USDT_TRC20"),  # unknown places: as given
        ("1E+3", "USDT_TRC20", "ru", "1 000 USDT_TRC20"),
        ("12.3400", "USDT_TRC20", "de", "12,34 USDT_TRC20"),  # trailing zeros dropped
        ("0E-8", "USD", "en", "0.00 USD"),  # a provider's zero as Decimal writes it
        ("-0E-8", "USD", "de", "0,00 USD"),
        ("150.00000000", "USD", "en", "150.00 USD"),  # 8 places on a USD invoice
        ("1.123", "EUR", "de", "1,123 EUR"),  # places beyond the currency's are kept
        ("100.5", "JPY", "en", "100.5 JPY"),
        (" 7.5 ", "eur", "en", "7.50 EUR"),
        ("-5", "EUR", "en", "-5.00 EUR"),  # not expected, but no crash
        ("1500.5", None, "de", "1.500,5"),  # no currency: the number alone
        ("1500.5", "USD", "xx", "1,500.50 USD"),  # unknown locale → English
        ("1500.5", "USD", "de-AT", "1.500,50 USD"),  # a Telegram language code
        ("1500.5", "USD", "", "1,500.50 USD"),
    ],
)
def test_money_reads_right_in_each_locale(
    amount: Decimal | str, currency: str | None, locale: str, shown: str
) -> None:
    assert money(amount, currency, locale) == shown.replace(" ", NBSP)


@pytest.mark.parametrize("locale", ["en", "de", "ru"])
def test_huge_amounts_keep_every_digit(locale: str) -> None:
    value = Decimal("999999999999999999.123456789012345678")
    text = money(value, "ETH", locale)
    assert text.endswith("123456789012345678" + NBSP + "ETH")
    assert text.count("9") == 19
    assert money(Decimal("1E+18"), "BTC", locale).count("0") == 18 + 8


@pytest.mark.parametrize(
    ("amount", "shown"),
    [
        ("not a number", "not a number"),
        ("x" * 100, "x" * 40),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("1E+999999", "1E+999999"),  # absurd size: as given, not a million digits
    ],
)
def test_unreadable_amounts_are_shown_as_given(amount: str, shown: str) -> None:
    assert money(amount, "EUR", "de") == shown


@pytest.mark.parametrize(
    ("amount", "locale", "shown"),
    [
        (Decimal(1000000), "en", "1,000,000"),
        (Decimal(1000000), "de", "1.000.000"),
        (Decimal(1000000), "ru", "1 000 000"),
        (Decimal("2500.50"), "de", "2.500,5"),
        (Decimal("0E-8"), "en", "0"),
        (Decimal("1E+6"), "en", "1,000,000"),
        (5, "ru", "5"),
    ],
)
def test_numbers_are_grouped_for_the_locale(amount: Decimal | int, locale: str, shown: str) -> None:
    assert number(amount, locale) == shown.replace(" ", NBSP)


MOMENT = datetime(2026, 11, 30, 5, 56, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("locale", "tz", "shown"),
    [
        ("en", "UTC", "Nov 30, 2026, 05:56 UTC"),
        ("de", "UTC", "30.11.2026, 05:56 UTC"),
        ("ru", "UTC", "30 нояб. 2026\u202fг., 05:56 UTC"),
        ("en", "Europe/Berlin", "Nov 30, 2026, 06:56 UTC+1"),
        ("de", "Asia/Kolkata", "30.11.2026, 11:26 UTC+5:30"),
        ("ru", "America/New_York", "30 нояб. 2026\u202fг., 00:56 UTC-5"),
        ("en", "No/Such_Zone", "Nov 30, 2026, 05:56 UTC"),  # still true: labelled UTC
        ("xx", "UTC", "Nov 30, 2026, 05:56 UTC"),
    ],
)
def test_dates_show_the_zone(locale: str, tz: str, shown: str) -> None:
    assert when(MOMENT, locale, tz) == shown


def test_dates_in_any_zone_are_converted() -> None:
    moscow = MOMENT.astimezone(timezone(timedelta(hours=3)))
    assert when(moscow, "de") == "30.11.2026, 05:56 UTC"
    assert when(moscow, "de", "Europe/Moscow") == "30.11.2026, 08:56 UTC+3"


def test_naive_dates_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        when(datetime(2026, 11, 30, 5, 56), "en")


@pytest.mark.parametrize(
    ("seconds", "locale", "shown"),
    [
        (900, "en", "15 minutes"),
        (900, "de", "15 Minuten"),
        (900, "ru", "15 минут"),
        (21 * 60, "ru", "21 минута"),
        (3300, "en", "55 minutes"),  # format_timedelta would say "1 hour"
        (5400, "en", "1 hour and 30 minutes"),
        (5400, "de", "1 Stunde und 30 Minuten"),
        (5400, "ru", "1 час и 30 минут"),
        (3600, "de", "1 Stunde"),
        (10 * 86400, "en", "10 days"),  # format_timedelta would say "1 week"
        (2 * 86400, "ru", "2 дня"),
        (90061, "de", "1 Tag, 1 Stunde, 1 Minute und 1 Sekunde"),
        (0, "en", "0 seconds"),
        (-60, "en", "-1 minute"),
    ],
)
def test_durations_are_exact_words(seconds: int, locale: str, shown: str) -> None:
    assert duration(seconds, locale) == shown


CURRENCIES = ["USD", "EUR", "JPY", "BTC", "ETH", "USDT_TRC20", None]


def _read_back(text: str, currency: str | None, locale: str) -> tuple[Decimal, str]:
    """Undo the locale's writing by hand: drop the code, the group marks, swap the point."""
    if currency:
        assert text.endswith(NBSP + currency)
        text = text.removesuffix(NBSP + currency)
    plain = text.replace(get_group_symbol(locale), "").replace(get_decimal_symbol(locale), ".")
    return Decimal(plain), plain


@st.composite
def amounts(draw: st.DrawFn) -> Decimal:
    """Up to 1e18 with up to 18 places, in every shape a provider may write: trailing
    zeros, exponents (`0E-8`, `15E+2`), or Hypothesis's own decimals."""
    if draw(st.booleans()):
        digits = draw(st.integers(min_value=0, max_value=10**36))
        exponent = draw(st.integers(min_value=-18, max_value=3))
        value = Decimal(f"{digits}E{exponent}")
        if value.adjusted() < 19:
            return value
    return draw(
        st.decimals(
            min_value=0, max_value=Decimal("1e18"), places=draw(st.integers(0, 18)), allow_nan=False
        )
    )


@settings(max_examples=600, deadline=None)
@given(amounts(), st.sampled_from(CURRENCIES), st.sampled_from(["en", "de", "ru"]))
def test_no_exponent_and_no_value_lost(amount: Decimal, currency: str | None, locale: str) -> None:
    text = money(amount, currency, locale)
    value, plain = _read_back(text, currency, locale)
    assert "E" not in plain and "e" not in plain
    assert value == amount  # every digit kept, nothing rounded
    fraction = plain.partition(".")[2]
    own = decimals_of(currency)
    if own is None:  # as many places as the value needs, no more
        assert not fraction.endswith("0")
    else:  # at least the currency's, more only if the value needs them
        assert len(fraction) >= own
        assert len(fraction) == own or not fraction.endswith("0")
    assert money(str(amount), currency, locale) == text  # text and Decimal agree


def test_a_birth_date_is_written_as_the_reader_writes_it() -> None:
    born = date(1990, 12, 10)
    assert birth_date(born, "en") == "1990-12-10"
    assert birth_date(born, "de") == "10.12.1990"
    assert birth_date(born, "ru") == "10.12.1990"
