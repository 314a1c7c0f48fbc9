"""Countries by ISO code or by name, in English or the merchant's language, with suggestions.

`parse_country(text, locale)` reads alpha-2/alpha-3/numeric codes and the names pycountry's
gettext catalogs give (English name, common name, official name, and their translations into
`locale`), case-, accent- and punctuation-insensitively, plus a short alias table (Russia,
Россия, UK, Großbritannien…). A miss raises `InputError("error-country-unknown")` whose
`suggestions` hold up to three alpha-3 codes of near names.

Collisions found over every pycountry country in en/de/ru: no two countries share a name, a
common name or an official name, in English or translated. Only the derived short forms
collide: "Korea" (KOR/PRK), "Virgin Islands" / "Виргинские острова" (VGB/VIR), in German
"Saint Martin" (MAF/SXM); these are answered with both as suggestions. "Congo", the head of
"Congo, The Democratic Republic of the", stays the Republic of the Congo's own name (COG).
"""

from __future__ import annotations

import gettext

import pycountry
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.services.inputs import InputError, country_name, parse_country

COUNTRIES = sorted(pycountry.countries, key=lambda c: str(c.alpha_3))
ALPHA3 = frozenset(str(c.alpha_3) for c in COUNTRIES)
LOCALES = ("en", "de", "ru")


def refusal(text: str, locale: str = "en") -> InputError:
    with pytest.raises(InputError) as caught:
        parse_country(text, locale)
    assert caught.value.key == "error-country-unknown"
    return caught.value


def suggested(text: str, locale: str = "en") -> tuple[str, ...]:
    return check_suggestions(refusal(text, locale).params["suggestions"])


def check_suggestions(suggestions: object) -> tuple[str, ...]:
    assert isinstance(suggestions, tuple)
    assert len(suggestions) <= 3
    assert len(set(suggestions)) == len(suggestions)
    assert all(code in ALPHA3 for code in suggestions)
    return tuple(str(code) for code in suggestions)


# --- what is read ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "alpha3"),
    [
        ("DE", "DEU"),
        ("de", "DEU"),
        ("deu", "DEU"),
        ("DeU", "DEU"),
        (" gb ", "GBR"),
        ("US", "USA"),
        ("usa", "USA"),
        ("276", "DEU"),
        ("\u200fRU\u200e", "RUS"),
        ("ＤＥ", "DEU"),
    ],
)
@pytest.mark.parametrize("locale", LOCALES)
def test_codes_in_any_case_and_any_locale(text: str, alpha3: str, locale: str) -> None:
    assert parse_country(text, locale) == alpha3


@pytest.mark.parametrize(
    ("text", "alpha3"),
    [
        ("Germany", "DEU"),
        ("germany", "DEU"),
        ("Federal Republic of Germany", "DEU"),
        ("Russian Federation", "RUS"),
        ("Russia", "RUS"),
        ("United States", "USA"),
        ("united states of america", "USA"),
        ("the United States", "USA"),
        ("UK", "GBR"),
        ("Great Britain", "GBR"),
        ("United Kingdom", "GBR"),
        ("the Netherlands", "NLD"),
        ("Côte d'Ivoire", "CIV"),
        ("cote divoire", "CIV"),
        ("Ivory Coast", "CIV"),
        ("South Korea", "KOR"),
        ("Korea, Republic of", "KOR"),
        ("Republic of Korea", "KOR"),
        ("Guinea Bissau", "GNB"),
        ("Falkland Islands", "FLK"),
        ("Türkiye", "TUR"),
        ("Turkiye", "TUR"),
        ("Turkey", "TUR"),
        ("Viet Nam", "VNM"),
        ("vietnam", "VNM"),
        ("  France\n", "FRA"),
    ],
)
def test_english_names(text: str, alpha3: str) -> None:
    assert parse_country(text) == alpha3
    assert parse_country(text, "en") == alpha3


@pytest.mark.parametrize(
    ("text", "alpha3"),
    [
        ("Deutschland", "DEU"),
        ("deutschland", "DEU"),
        ("DEUTSCHLAND", "DEU"),
        ("Bundesrepublik Deutschland", "DEU"),
        ("Österreich", "AUT"),
        ("osterreich", "AUT"),
        ("Oesterreich", "AUT"),
        ("Russland", "RUS"),
        ("Russische Föderation", "RUS"),
        ("Großbritannien", "GBR"),
        ("Grossbritannien", "GBR"),
        ("Vereinigtes Königreich", "GBR"),
        ("Vereinigte Staaten", "USA"),
        ("Türkei", "TUR"),
        ("Tuerkei", "TUR"),
        ("Südkorea", "KOR"),
        ("die Niederlande", "NLD"),
        ("Weißrussland", "BLR"),
        ("Germany", "DEU"),  # English is always read too
    ],
)
def test_german_names(text: str, alpha3: str) -> None:
    assert parse_country(text, "de") == alpha3


@pytest.mark.parametrize(
    ("text", "alpha3"),
    [
        ("Россия", "RUS"),
        ("россия", "RUS"),
        ("РОССИЯ", "RUS"),
        ("Российская Федерация", "RUS"),
        ("РФ", "RUS"),
        ("Германия", "DEU"),
        ("германия", "DEU"),
        ("США", "USA"),
        ("Соединённые Штаты Америки", "USA"),
        ("соединенные штаты", "USA"),  # ё typed as е
        ("Великобритания", "GBR"),
        ("Франция", "FRA"),
        ("Кот-д'Ивуар", "CIV"),
        ("кот д ивуар", "CIV"),
        ("Южная Корея", "KOR"),
        ("Белоруссия", "BLR"),
        ("Беларусь", "BLR"),
        ("Исламская Республика Иран", "IRN"),  # the catalog writes "Респу́блика", stressed
        ("Йемен", "YEM"),
        ("Germany", "DEU"),
    ],
)
def test_russian_names(text: str, alpha3: str) -> None:
    assert parse_country(text, "ru") == alpha3


@pytest.mark.parametrize("locale", ["de-AT", "de_DE", "DE", " de "])
def test_a_regional_locale_reads_its_language(locale: str) -> None:
    assert parse_country("Deutschland", locale) == "DEU"


@pytest.mark.parametrize("locale", ["xx", "", "../../etc", "en-US", "de/../ru"])
def test_an_unknown_locale_reads_english(locale: str) -> None:
    assert parse_country("Germany", locale) == "DEU"
    assert parse_country("DE", locale) == "DEU"


# --- misses and suggestions ------------------------------------------------------------------


def test_a_typo_suggests_the_country_first() -> None:
    assert suggested("Deutchland", "de")[0] == "DEU"
    assert suggested("Frnce")[0] == "FRA"
    assert suggested("Frnce", "ru")[0] == "FRA"
    assert suggested("Германя", "ru")[0] == "DEU"
    assert suggested("Росия", "ru")[0] == "RUS"
    assert suggested("Swizerland")[0] == "CHE"


def test_a_name_two_countries_share_suggests_both() -> None:
    assert set(suggested("Korea")) == {"KOR", "PRK"}
    assert set(suggested("Virgin Islands", "ru")) == {"VGB", "VIR"}
    assert set(suggested("Виргинские острова", "ru")) == {"VGB", "VIR"}
    assert set(suggested("Saint Martin", "de")) == {"MAF", "SXM"}


@pytest.mark.parametrize(
    "text", ["Atlantis", "Rusia", "Korea", "a", "", "   ", "Guinea Bisau", "x" * 10_000, "🙂"]
)
@pytest.mark.parametrize("locale", LOCALES)
def test_suggestions_are_at_most_three_distinct_known_codes(text: str, locale: str) -> None:
    check_suggestions(refusal(text, locale).params["suggestions"])


def test_nothing_close_suggests_nothing() -> None:
    assert suggested("") == ()
    assert suggested("qqqqqqqqqqqqqqqq") == ()


def test_the_value_is_the_cleaned_text_truncated() -> None:
    assert refusal("  Atlantis \n").params["value"] == "Atlantis"
    assert refusal("Atlantis " * 20).params["value"] == ("Atlantis " * 20)[:60]


# --- names shown -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha3", "locale", "name"),
    [
        ("DEU", "en", "Germany"),
        ("DEU", "de", "Deutschland"),
        ("DEU", "ru", "Германия"),
        ("RUS", "en", "Russia"),
        ("RUS", "de", "Russland"),
        ("RUS", "ru", "Россия"),
        ("USA", "en", "United States"),
        ("USA", "de", "Vereinigte Staaten"),
        ("USA", "ru", "США"),
        ("GBR", "ru", "Великобритания"),
        ("KOR", "en", "South Korea"),
        ("KOR", "de", "Südkorea"),
        ("KOR", "ru", "Южная Корея"),
        ("DEU", "de-CH", "Deutschland"),
        ("DEU", "xx", "Germany"),
    ],
)
def test_country_name_in_the_merchants_language(alpha3: str, locale: str, name: str) -> None:
    assert country_name(alpha3, locale) == name


def test_country_name_keeps_its_old_call() -> None:
    assert country_name("FRA") == "France"
    assert country_name("XXX") == "XXX"
    assert country_name("XXX", "ru") == "XXX"


# --- every country ------------------------------------------------------------------------------


def _names(country: pycountry.db.Country) -> list[str]:
    fields = ("name", "common_name", "official_name")
    return [str(getattr(country, field)) for field in fields if hasattr(country, field)]


@pytest.mark.parametrize("locale", LOCALES)
def test_every_country_reads_back_by_code_and_every_name(locale: str) -> None:
    """Exhaustive: codes, English names, translated names, and the name shown, in each locale."""
    catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, [locale], fallback=True)
    for country in COUNTRIES:
        alpha3 = str(country.alpha_3)
        texts = [str(country.alpha_2), alpha3, str(country.alpha_2).lower(), alpha3.lower()]
        texts += [str(country.numeric)]
        for name in _names(country):
            texts += [name, catalog.gettext(name), catalog.gettext(name).lower()]
        texts.append(country_name(alpha3, locale))
        for text in texts:
            assert parse_country(text, locale) == alpha3, (locale, text)


@given(
    st.sampled_from(COUNTRIES),
    st.sampled_from(LOCALES),
    st.sampled_from(("alpha_2", "alpha_3", "name", "local", "shown")),
    st.lists(st.booleans(), min_size=1, max_size=8),
    st.sampled_from(("", " ", "\t", "\u00a0", "\u200f", "\ufeff", " \n ", "  ")),
)
@settings(max_examples=300, deadline=None)
def test_any_country_in_any_case_and_padding(
    country: pycountry.db.Country, locale: str, field: str, upper: list[bool], pad: str
) -> None:
    if field == "local":
        catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, [locale], fallback=True)
        value = catalog.gettext(str(country.name))
    elif field == "shown":
        value = country_name(str(country.alpha_3), locale)
    else:
        value = str(getattr(country, field))
    mixed = "".join(
        ch.upper() if upper[i % len(upper)] else ch.lower() for i, ch in enumerate(value)
    )
    assert parse_country(pad + mixed + pad, locale) == country.alpha_3


@given(
    st.sampled_from(COUNTRIES),
    st.sampled_from(LOCALES),
    st.sampled_from(("name", "local")),
    st.floats(min_value=0.25, max_value=0.75),
)
@settings(max_examples=150, deadline=None)
def test_one_letter_dropped_from_a_long_name_suggests_it(
    country: pycountry.db.Country, locale: str, field: str, where: float
) -> None:
    catalog = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, [locale], fallback=True)
    name = str(country.name) if field == "name" else catalog.gettext(str(country.name))
    letters = [i for i, ch in enumerate(name) if ch.isalpha()]
    if len(letters) < 6:
        return
    cut = letters[int(where * len(letters))]
    typo = name[:cut] + name[cut + 1 :]
    try:
        assert parse_country(typo, locale) == country.alpha_3
    except InputError as exc:
        assert country.alpha_3 in check_suggestions(exc.params["suggestions"]), typo


@given(st.text(max_size=80), st.sampled_from((*LOCALES, "fr", "de-AT", "", "zz!")))
@settings(max_examples=250, deadline=None)
@example("ßß", "de")
@example("\u200fDE\u200e", "ru")
@example("x" * 10_000, "en")
@example("Korea", "en")
@example("\x00", "ru")
def test_any_text_gives_a_code_or_an_input_error(text: str, locale: str) -> None:
    try:
        got = parse_country(text, locale)
    except InputError as exc:
        assert exc.key == "error-country-unknown"
        assert len(str(exc.params["value"])) <= 60
        check_suggestions(exc.params["suggestions"])
        return
    assert got in ALPHA3
    assert parse_country(got, locale) == got
