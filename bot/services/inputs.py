"""Turn what a merchant typed into validated values, or say precisely what is wrong.

Errors carry a locale key and parameters, never a sentence: the chat layer words them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from decimal import Decimal, InvalidOperation

import pycountry


class InputError(ValueError):
    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


MAX_AMOUNT_DIGITS = 18
_SPACES = re.compile(r"[\s\u00a0\u202f\u2009'’_]")
_NUMBER = re.compile(r"^\d+(?:[.,]\d+)*$")
# Digits grouped by spaces (or apostrophes) must be real thousands groups: "12 34" is a typo.
_SPACE_GROUPED = re.compile(r"^\d{1,3}(?:[\s\u00a0\u202f\u2009'’_]\d{3})+(?:[.,]\d+)?$")
_HAS_SPACE_GROUP = re.compile(r"\d[\s\u00a0\u202f\u2009'’_]+\d")


def parse_amount(text: str, *, max_amount: Decimal) -> Decimal:
    """Read `100`, `100.5`, `1 234,56`, `1,234.56`; refuse what could be read two ways."""
    raw = text.strip()
    for symbol in ("$", "€", "£", "¥", "₽"):
        # Before or after the number only: inside it ("12$50" is 12.50 in Cape Verde) it is
        # not a symbol to drop.
        raw = raw.removeprefix(symbol).removesuffix(symbol).strip()
    if _HAS_SPACE_GROUP.search(raw) and not _SPACE_GROUPED.match(raw):
        raise InputError("error-amount-format")
    raw = _SPACES.sub("", raw)
    if raw.startswith("-"):
        raise InputError("error-amount-positive")
    if not raw or not _NUMBER.match(raw):
        raise InputError("error-amount-format")
    dots, commas = raw.count("."), raw.count(",")
    if dots and commas:
        # The separator that comes last is the decimal one; the other groups thousands.
        decimal_sep = "." if raw.rfind(".") > raw.rfind(",") else ","
        group_sep = "," if decimal_sep == "." else "."
        whole, _, fraction = raw.rpartition(decimal_sep)
        if decimal_sep in whole or not _grouped(whole, group_sep):
            raise InputError("error-amount-format")
        normalised = whole.replace(group_sep, "") + "." + fraction
    elif dots > 1 or commas > 1:
        sep = "." if dots else ","
        if not _grouped(raw, sep):
            raise InputError("error-amount-format")
        normalised = raw.replace(sep, "")
    elif commas == 1 or dots == 1:
        whole, fraction = raw.split("," if commas else ".")
        if len(fraction) == 3 and whole != "0":
            # "1,234" and "1.234" are 1234 to some and 1.234 to others: a factor of 1000 is
            # not something to guess.
            raise InputError("error-amount-ambiguous", value=text.strip())
        normalised = f"{whole}.{fraction}"
    else:
        normalised = raw
    try:
        amount = Decimal(normalised)
    except InvalidOperation:
        raise InputError("error-amount-format") from None
    if not amount.is_finite():
        raise InputError("error-amount-format")
    if amount <= 0:
        raise InputError("error-amount-positive")
    if amount > max_amount:
        raise InputError("error-amount-too-large", max=format(max_amount, "f"))
    if len(amount.as_tuple().digits) > MAX_AMOUNT_DIGITS:
        raise InputError("error-amount-format")
    return amount


def _grouped(number: str, sep: str) -> bool:
    head, *groups = number.split(sep)
    return bool(groups) and 1 <= len(head) <= 3 and all(len(group) == 3 for group in groups)


def decimals_of(amount: Decimal) -> int:
    """Places after the point, trailing zeros aside: 12.30 → 1. Exact at any size.

    (`normalize()` would round to the context's 28 digits and overflow on huge exponents.)
    """
    _, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):  # NaN or Infinity
        raise InputError("error-amount-format")
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    return max(0, -exponent - (len(digits) - len(significant)))


def check_amount_precision(amount: Decimal, decimals: int, currency: str) -> Decimal:
    """Refuse more decimals than the currency has rather than rounding the merchant's money."""
    if decimals_of(amount) > decimals:
        raise InputError("error-amount-decimals", currency=currency, decimals=decimals)
    return amount


def parse_currency_code(text: str) -> str:
    code = text.strip()
    # Checked before upper-casing: "ß".upper() is "SS" and "ſ".upper() is "S".
    if not re.fullmatch(r"[A-Za-z0-9_]{2,16}", code):
        raise InputError("error-currency-format")
    return code.upper()


def clean_text(text: str) -> str:
    """Collapse whitespace and drop control characters a pasted text may carry."""
    text = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in " \t\n")
    return " ".join(text.split())


def parse_title(text: str) -> str:
    title = clean_text(text)
    if not title:
        raise InputError("error-title-empty")
    if len(title) > 50:
        raise InputError("error-title-too-long", length=len(title), max=50)
    return title


def parse_name(text: str, *, max_length: int = 100) -> str:
    name = clean_text(text)
    if not name:
        raise InputError("error-name-empty")
    if len(name) > max_length:
        raise InputError("error-name-too-long", max=max_length)
    if not any(ch.isalpha() for ch in name) or any(ch.isdigit() for ch in name):
        raise InputError("error-name-letters")
    return name


def parse_legal_name(text: str) -> str:
    name = clean_text(text)
    if not name:
        raise InputError("error-name-empty")
    if len(name) > 200:
        raise InputError("error-name-too-long", max=200)
    return name


def parse_date_of_birth(text: str, *, today: dt.date) -> dt.date:
    """Accept `YYYY-MM-DD` and `DD.MM.YYYY`; a real date in the past, a plausible age."""
    value = text.strip()
    match_iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", value)
    match_eu = re.fullmatch(r"(\d{1,2})\.(\d{1,2})\.(\d{4})", value)
    if match_iso:
        year, month, day = (int(part) for part in match_iso.groups())
    elif match_eu:
        day, month, year = (int(part) for part in match_eu.groups())
    else:
        raise InputError("error-date-format")
    try:
        born = dt.date(year, month, day)
    except ValueError:
        raise InputError("error-date-invalid") from None
    if born >= today:
        raise InputError("error-date-future")
    if born.year < today.year - 120:
        raise InputError("error-date-too-old")
    return born


def parse_country(text: str) -> str:
    """ISO 3166-1 alpha-2, alpha-3 or English name → alpha-3 (the form the provider shows)."""
    value = clean_text(text)
    if not value:
        raise InputError("error-country-unknown", value=text.strip())
    country = None
    if len(value) == 2 and value.isalpha():
        country = pycountry.countries.get(alpha_2=value.upper())
    elif len(value) == 3 and value.isalpha():
        country = pycountry.countries.get(alpha_3=value.upper())
    if country is None:
        try:
            country = pycountry.countries.lookup(value)
        except LookupError:
            country = None
    if country is None:
        raise InputError("error-country-unknown", value=value[:60])
    return str(country.alpha_3)


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


def parse_email(text: str) -> str:
    email = text.strip()
    if len(email) > 254 or not _EMAIL.match(email):
        raise InputError("error-email-format")
    # Control and invisible format characters (NUL, zero-width space, RTL override) are never
    # part of an address, and would make one look like another.
    if any(unicodedata.category(ch)[0] == "C" for ch in email):
        raise InputError("error-email-format")
    return email


def country_name(alpha3: str) -> str:
    country = pycountry.countries.get(alpha_3=alpha3)
    return str(country.name) if country is not None else alpha3
