"""Turn what a merchant typed into validated values, or say precisely what is wrong.

Errors carry a locale key and parameters, never a sentence: the chat layer words them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import gettext
import re
import unicodedata
from decimal import Decimal, InvalidOperation
from pathlib import Path

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


# --- countries -------------------------------------------------------------------------------
#
# A country is typed as an ISO code (DE, deu, 276), or as a name in English or in the merchant's
# language, in any case, with or without accents and punctuation. Names come from pycountry's
# own gettext catalogs (`iso3166-1`), which carry the ISO forms ("Russian Federation",
# "Российская Федерация"); `_ALIASES` adds the few short names people actually type.

_ISO3166 = "iso3166-1"
_LOCALE_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_]([A-Za-z]{2}))?")
# Leading articles ignored on both sides: "the Netherlands", "die Niederlande".
_ARTICLES = frozenset({"the", "die", "der", "das"})
_MAX_SUGGESTIONS = 3
_SUGGEST_CUTOFF = 0.6
# A text much longer than any name (the longest key has 53 letters) is not worth comparing.
_SUGGEST_MAX_KEY = 120

# Everyday short names missing from pycountry (its catalogs hold the ISO forms). English ones
# apply in every locale, as English names do. Deliberately short: obvious names only.
_ALIASES: dict[str, dict[str, str]] = {
    "en": {
        "Russia": "RUS",
        "UK": "GBR",
        "Great Britain": "GBR",
        "Britain": "GBR",
        "Turkey": "TUR",
        "Holland": "NLD",
        "Ivory Coast": "CIV",
        "Vatican": "VAT",
        "Brunei": "BRN",
        "Cape Verde": "CPV",
    },
    "de": {
        "Russland": "RUS",
        "Großbritannien": "GBR",
        "Weißrussland": "BLR",
        "Moldawien": "MDA",
        "Elfenbeinküste": "CIV",
        "Vatikan": "VAT",
    },
    "ru": {
        "Россия": "RUS",
        "РФ": "RUS",
        "США": "USA",
        "Америка": "USA",
        "Великобритания": "GBR",
        "Белоруссия": "BLR",
        "Молдова": "MDA",
        "Кыргызстан": "KGZ",
        "Голландия": "NLD",
        "Ватикан": "VAT",
        "ОАЭ": "ARE",
        "КНДР": "PRK",
        "ЮАР": "ZAF",
    },
}

# Shown instead of pycountry's name where that one is the official form, or miscapitalised
# ("Соединённые штаты").
_DISPLAY_NAMES: dict[str, dict[str, str]] = {
    "RUS": {"en": "Russia", "de": "Russland", "ru": "Россия"},
    "USA": {"ru": "США"},
    "GBR": {"ru": "Великобритания"},
}


_UMLAUTS: dict[str, str | int | None] = {
    "ä": "ae",
    "ö": "oe",
    "ü": "ue",
    "Ä": "Ae",
    "Ö": "Oe",
    "Ü": "Ue",
}
_SPELL_UMLAUTS = str.maketrans(_UMLAUTS)


def _tokens(text: str) -> list[str]:
    """Words of `text`, case-, accent- and punctuation-free: "Côte d'Ivoire" → cote, d, ivoire."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch if ch.isalnum() else " " for ch in folded if not unicodedata.combining(ch))
    words = bare.split()
    if len(words) > 1 and words[0] in _ARTICLES:
        del words[0]
    return words


def _key(text: str) -> str:
    """What names are compared by: spaces aside too, so "Guinea Bissau" is "Guinea-Bissau"."""
    return "".join(_tokens(text))


def _keys(name: str) -> set[str]:
    """`name`'s key, and its key with umlauts spelled out (Oesterreich, Tuerkei)."""
    spelled = name.translate(_SPELL_UMLAUTS)
    return {key for key in (_key(name), _key(spelled)) if key}


def _variants(name: str) -> list[str]:
    """Shorter forms of a catalog name: without "(…)", and "Korea, Republic of" read as
    "Republic of Korea" and as "Korea" (shared by two countries, hence ambiguous)."""
    bare = " ".join(re.sub(r"\([^)]*\)", " ", name).split())
    forms = [bare] if bare != name else []
    head, comma, tail = bare.partition(",")
    if comma and "," not in tail:
        forms += [f"{tail.strip()} {head}", head]
    return forms


@functools.lru_cache(maxsize=64)
def _catalog_language(locale: str) -> str:
    """The pycountry catalog `locale` reads ("de-AT" → "de", "pt_BR" → "pt_BR"); "en" if none."""
    match = _LOCALE_TAG.fullmatch(locale.strip())
    if match is None:
        return "en"
    language, region = str(match.group(1)).lower(), match.group(2)
    for candidate in ([f"{language}_{str(region).upper()}"] if region else []) + [language]:
        if candidate == "en":
            break
        if (Path(pycountry.LOCALES_DIR) / candidate / "LC_MESSAGES" / f"{_ISO3166}.mo").is_file():
            return candidate
    return "en"


def _translate(language: str, name: str) -> str:
    if language == "en":
        return name
    catalog = gettext.translation(_ISO3166, pycountry.LOCALES_DIR, [language], fallback=True)
    return catalog.gettext(name)


def _catalog_names(country: pycountry.db.Country) -> list[str]:
    fields = ("name", "common_name", "official_name")
    return [str(value) for value in (getattr(country, f, None) for f in fields) if value]


@functools.cache
def _country_table(language: str) -> dict[str, tuple[str, ...]]:
    """Name key → alpha-3 codes (more than one: an ambiguous name), for one catalog language.

    Built in tiers; a key found in an earlier tier is not overridden by a later one:
    aliases, the language's catalog names, English names, then the shorter variants of each.
    Within a tier a key claimed by two countries keeps both and is answered with suggestions.
    """
    countries = sorted(pycountry.countries, key=lambda c: str(c.alpha_3))
    aliases = [(name, alpha3) for name, alpha3 in _ALIASES["en"].items()]
    if language != "en":
        aliases += [(name, alpha3) for name, alpha3 in _ALIASES.get(language, {}).items()]
    english = [(name, str(c.alpha_3)) for c in countries for name in _catalog_names(c)]
    local = [(_translate(language, name), alpha3) for name, alpha3 in english]
    tiers = [aliases, local, english]
    tiers += [
        [(form, alpha3) for name, alpha3 in tier for form in _variants(name)]
        for tier in (local, english)
    ]
    table: dict[str, tuple[str, ...]] = {}
    for tier in tiers:
        claimed: dict[str, list[str]] = {}
        for name, alpha3 in tier:
            for key in _keys(name):
                if key not in table and alpha3 not in claimed.setdefault(key, []):
                    claimed[key].append(alpha3)
        table.update((key, tuple(codes)) for key, codes in claimed.items())
    return table


def _suggestions(key: str, table: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    if not key or len(key) > _SUGGEST_MAX_KEY:
        return ()
    found: list[str] = []
    for near in difflib.get_close_matches(key, table, n=12, cutoff=_SUGGEST_CUTOFF):
        found += [alpha3 for alpha3 in table[near] if alpha3 not in found]
    return tuple(found[:_MAX_SUGGESTIONS])


def parse_country(text: str, locale: str = "en") -> str:
    """An ISO code or a country name (English or `locale`'s) → ISO 3166-1 alpha-3.

    On a miss, `InputError("error-country-unknown")` carries `suggestions`: up to three
    alpha-3 codes of near names, best first (none when nothing is close).
    """
    value = clean_text(text)
    words = _tokens(value)
    if len(words) == 1 and words[0].isascii():
        word = words[0]
        country = None
        if len(word) == 2 and word.isalpha():
            country = pycountry.countries.get(alpha_2=word.upper())
        elif len(word) == 3 and word.isalpha():
            country = pycountry.countries.get(alpha_3=word.upper())
        elif len(word) == 3 and word.isdigit():
            country = pycountry.countries.get(numeric=word)
        if country is not None:
            return str(country.alpha_3)
    key = "".join(words)
    table = _country_table(_catalog_language(locale))
    codes = table.get(key, ())
    if len(codes) == 1:
        return codes[0]
    suggestions = codes[:_MAX_SUGGESTIONS] or _suggestions(key, table)
    raise InputError("error-country-unknown", value=value[:60], suggestions=suggestions)


def country_name(alpha3: str, locale: str = "en") -> str:
    """The short name of a country in `locale` (Germany, Deutschland, Германия); else `alpha3`."""
    language = _catalog_language(locale)
    shown = _DISPLAY_NAMES.get(alpha3, {})
    if language in shown:
        return shown[language]
    country = pycountry.countries.get(alpha_3=alpha3)
    if country is None:
        return alpha3
    name = getattr(country, "common_name", None) or country.name
    return _translate(language, str(name))


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
