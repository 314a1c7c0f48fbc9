"""Money, numbers, dates and durations as the reader's locale writes them (Babel/CLDR).

Pure functions of a value and a locale code ("en", "de", "ru", or a Telegram language code
such as "de-AT"); a locale Babel does not know is read as English.

Money shows the ISO code, never a symbol, after the number, joined by a no-break space
(ru also groups with no-break spaces):

    en  1,500.50 USD    0.00150000 BTC    1,000 USDT_TRC20
    de  1.500,50 EUR    0,00150000 BTC    100 JPY
    ru  1 500,50 EUR    0,00150000 BTC

Why codes: "$" is ambiguous (USD, CAD, AUD...) and crypto has no CLDR symbols, so a card
mixing "€" and "BTC" would read unevenly. Why after the number, in every locale: CLDR puts
the sign first in English (`¤#,##0.00`), but Babel does not apply CLDR's currency spacing,
so a code there gives `USD1,500.50`; and "0.0015 BTC", "150 USDT" is how amounts in codes
are written in English anyway. de and ru place the currency after the number themselves.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation, localcontext
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal
from babel.units import format_unit

from bot.services.currencies import decimals_of

DEFAULT_LOCALE = "en"
# More digits than any invoice has either side of the point (1e18 with 18 places fits):
# beyond this a value is nonsense, shown as given rather than as a wall of digits.
_MAX_DIGITS = 40
# Decimal arithmetic (Babel quantizes and normalizes) must never round: a context this wide
# holds every digit of any value within _MAX_DIGITS on both sides of the point.
_PRECISION = 2 * _MAX_DIGITS + 10
_RAW_LIMIT = 40
_NBSP = "\u00a0"
# 24-hour clock everywhere: next to an explicit zone it is unambiguous in every locale.
_TIME_PATTERN = "HH:mm"
_DURATION_UNITS = (
    ("duration-day", 86_400),
    ("duration-hour", 3_600),
    ("duration-minute", 60),
    ("duration-second", 1),
)


@lru_cache(maxsize=64)
def _locale(code: str) -> Locale:
    """Babel's locale for a code's language (de, de-AT, pt_BR → de); unknown → English."""
    language = (code or "").strip().lower().replace("_", "-").split("-")[0]
    try:
        return Locale.parse(language) if language.isalpha() else Locale.parse(DEFAULT_LOCALE)
    except (UnknownLocaleError, ValueError):
        return Locale.parse(DEFAULT_LOCALE)


def _exact(amount: Decimal | int | str) -> Decimal | None:
    """The value, or None if it is not a finite number of sensible size (at most
    _MAX_DIGITS whole digits and _MAX_DIGITS places, trailing zeros not counted)."""
    if isinstance(amount, Decimal):
        value = amount
    else:
        try:
            value = Decimal(amount)
        except (InvalidOperation, ValueError, TypeError):
            return None
    if not value.is_finite():
        return None
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:  # any zero: 0, 0E-8, -0.00
        return Decimal(0)
    needed = max(0, -(exponent + len(digits) - len(significant)))
    if needed > _MAX_DIGITS or value.adjusted() >= _MAX_DIGITS:
        return None
    return value


def _pattern(places: int) -> str:
    """A Babel number pattern: grouped, at least `places` decimals (more are kept as
    Babel is told not to quantize)."""
    return "#,##0" + ("." + "0" * places if places else "")


def money(amount: Decimal | str, currency: str | None, locale: str) -> str:
    """The amount with its ISO currency code as the locale writes it: `1,500.50 USD` (en),
    `1.500,50 EUR` (de), `1 500,50 EUR` (ru); see the module's notes for why codes, after.

    Exact: no float, no rounding; at least the currency's decimal places (`decimals_of`),
    places beyond them are kept (`1.123 EUR` stays `1.123`); a currency of unknown places
    shows as many as the value needs (trailing zeros dropped). Never an exponent: `0E-8` →
    `0.00`, `1E+3` → `1,000`. Text that is not a number (or absurdly large) is returned as
    is, cut to 40 characters. No currency → the number alone.
    """
    value = _exact(amount)
    if value is None:
        return str(amount)[:_RAW_LIMIT]
    code = (currency or "").strip().upper()
    places = decimals_of(code) or 0
    pattern = _pattern(min(places, _MAX_DIGITS))
    with localcontext() as context:
        context.prec = _PRECISION
        if not code:
            return format_decimal(
                value, format=pattern, locale=_locale(locale), decimal_quantization=False
            )
        return format_currency(
            value,
            code,
            format=pattern + _NBSP + "¤¤",  # ¤¤: the ISO code, never a symbol
            locale=_locale(locale),
            currency_digits=False,  # the pattern's places (ours), not Babel's table
            decimal_quantization=False,  # keep places beyond the pattern's: never round
        )


def number(amount: Decimal | int, locale: str) -> str:
    """A plain number grouped for the locale, as exact as given, trailing zeros dropped:
    1000000 → `1,000,000` (en), `1.000.000` (de), `1 000 000` (ru)."""
    return money(amount if isinstance(amount, Decimal) else Decimal(amount), None, locale)


def _zone(tz: str) -> tuple[tzinfo, str]:
    """The zone and its label: "UTC", else the offset at that moment, `UTC+1`, `UTC+5:30`.
    An unknown zone name falls back to UTC (and says so), rather than crash a card."""
    if tz.strip().upper() in {"UTC", "Z", "ETC/UTC", "GMT", "ETC/GMT", ""}:
        return UTC, "UTC"
    try:
        return ZoneInfo(tz), ""
    except (ZoneInfoNotFoundError, ValueError):
        return UTC, "UTC"


def _offset_label(offset: timedelta | None) -> str:
    if not offset:
        return "UTC"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, minutes = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02d}" if minutes else "")


def when(moment: datetime, locale: str, tz: str = "UTC") -> str:
    """Date and time with the zone shown, the date as the locale writes it (CLDR medium),
    the time on a 24-hour clock: `Nov 30, 2026, 05:56 UTC` (en), `30.11.2026, 05:56 UTC`
    (de), `30 нояб. 2026 г., 05:56 UTC` (ru); in another zone, `… 06:56 UTC+1`.
    Aware datetimes only: a naive one raises ValueError, its zone would be a guess."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("when() needs an aware datetime")
    zone, label = _zone(tz)
    local = moment.astimezone(zone)
    label = label or _offset_label(local.utcoffset())
    babel_locale = _locale(locale)
    date_text = format_date(local, "medium", locale=babel_locale)
    time_text = format_time(local, _TIME_PATTERN, tzinfo=zone, locale=babel_locale)
    glue = str(babel_locale.datetime_formats.get("medium", "{1}, {0}"))
    return glue.replace("{1}", date_text).replace("{0}", f"{time_text} {label}")


def duration(seconds: int, locale: str) -> str:
    """An exact duration in words: `15 minutes`, `15 Minuten`, `15 минут`;
    `1 hour and 30 minutes`; `2 days`. Days, hours, minutes and seconds, each unit named
    by CLDR (babel.units), joined as the locale joins a list.

    Not babel.dates.format_timedelta: it rounds to one unit (55 minutes → "1 hour",
    90 minutes → "2 hours", 10 days → "1 week"), wrong for a validity period.
    A negative duration is shown with a minus sign; 0 → `0 seconds`."""
    babel_locale = _locale(locale)
    seconds = int(seconds)
    sign, rest = (-1, -seconds) if seconds < 0 else (1, seconds)
    parts: list[str] = []
    for unit, size in _DURATION_UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(format_unit(count, unit, length="long", locale=babel_locale))
    if not parts:
        return format_unit(0, "duration-second", length="long", locale=babel_locale)
    text = format_list(parts, style="standard", locale=babel_locale)
    return f"-{text}" if sign < 0 else text


def birth_date(day: date, locale: str) -> str:
    """A date of birth as the reader writes one: `1990-12-10` in English (unambiguous, as
    typed), `10.12.1990` in German and Russian."""
    if locale.split("_")[0] in {"de", "ru"}:
        return format_date(day, format="dd.MM.yyyy", locale=locale)
    return day.isoformat()
