"""Every text exists in every language, with the same placeholders, and users get their language."""

from __future__ import annotations

import pytest

from bot.i18n import Catalog
from tests.conftest import MERCHANT_ID, BotStarter
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.telegram_api import FakeTelegram

CATALOG = Catalog.load()


def test_english_german_and_russian_are_shipped() -> None:
    assert set(CATALOG.locales) >= {"en", "de", "ru"}


@pytest.mark.parametrize("locale", [loc for loc in CATALOG.locales if loc != "en"])
def test_every_key_exists_in_every_locale_with_the_same_placeholders(locale: str) -> None:
    english = CATALOG.keys("en")
    assert CATALOG.keys(locale) == english, sorted(CATALOG.keys(locale) ^ english)
    for key in english:
        assert CATALOG.placeholders(locale, key) == CATALOG.placeholders("en", key), key


def test_language_is_chosen_from_the_telegram_code_with_a_fallback() -> None:
    assert CATALOG.pick("ru") == "ru"
    assert CATALOG.pick("de-AT") == "de"
    assert CATALOG.pick("pt-br") == "en"
    assert CATALOG.pick(None) == "en"
    assert Catalog.load(default="de").pick("xx") == "de"


def test_values_are_escaped_for_telegram_html() -> None:
    t = CATALOG.texts("en")
    assert t("field-title", title="<b>&") == "<b>Title:</b> &lt;b&gt;&amp;"


async def test_a_russian_speaking_merchant_is_answered_in_russian(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID, "Мира", language_code="ru")
    question = await merchant.reply("/new")
    assert CATALOG.texts("ru")("ask-amount")[:5] in question.text
    wrong = await merchant.reply("сто")
    assert CATALOG.raw("ru", "error-amount-format")[:10] in wrong.html  # type: ignore[operator]
