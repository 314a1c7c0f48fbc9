"""Both providers, both sender types, and a returning customer keeping its reference."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import MERCHANT_ID, OTHER_MERCHANT_ID, BotStarter
from tests.e2e.flows import add_legal_entity, add_natural_person, confirm, fill_basics
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram


async def test_legal_entity_is_sent_with_an_alpha3_country(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    question = await fill_basics(merchant, "250", "USD", "Consulting, November")
    preview = await add_legal_entity(
        merchant, question, "Acme Widgets GmbH", "Germany", "payer@example.org"
    )
    assert "Acme Widgets GmbH, registered in Germany (DEU)" in preview.text

    card = await confirm(telegram, merchant, preview)

    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["sender_type"] == "legal"
    assert invoice["request"]["sender_data"] == {
        "legal_name": "Acme Widgets GmbH",
        "country_of_registration": "DEU",
    }
    assert invoice["request"]["amount"] == Decimal("250")
    assert card.button("pay link").url == invoice["url"]


async def test_returning_customer_reuses_the_same_reference(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    question = await fill_basics(merchant, "10", "EUR", "First order")
    preview = await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    await confirm(telegram, merchant, preview)

    # Second invoice: the customer is offered as a button and needs no data typed again.
    question = await fill_basics(merchant, "20", "EUR", "Second order")
    assert "recent customer" in question.text.lower()
    preview = await merchant.click(question, "Ada Lovelace")
    assert "Ada Lovelace, born 1990-12-10" in preview.text
    await confirm(telegram, merchant, preview)

    # Third: typed in again as new, still recognised as the same person.
    question = await fill_basics(merchant, "30", "EUR", "Third order")
    preview = await add_natural_person(
        merchant, question, "ada", "LOVELACE", "10.12.1990", "payer@example.org"
    )
    await confirm(telegram, merchant, preview)

    references = {
        inv["request"]["end_user_reference"] for inv in cryptoprocessing.invoices.values()
    }
    assert len(cryptoprocessing.invoices) == 3
    assert len(references) == 1
    [reference] = references
    assert "ada" not in reference.lower() and "1990" not in reference

    # Another merchant's customer list is their own: no button for Ada there.
    other = telegram.user(OTHER_MERCHANT_ID)
    question = await fill_basics(other, "5", "EUR", "Elsewhere")
    assert "Ada" not in " ".join(b.text for b in question.buttons())


async def test_cryptocloud_invoice_uses_token_auth_and_needs_no_sender_data(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud, cryptocloud_time_to_pay_minutes=90)
    merchant = telegram.user(MERCHANT_ID)
    await merchant.reply("/new")
    question = await merchant.reply("1,234.5")
    assert "USD" in [b.text for b in question.buttons()]
    await merchant.click(question, "USD")
    preview = await merchant.reply("Lamp")
    assert "Check the invoice" in preview.text and "1,234.50\u00a0USD" in preview.text

    card = await confirm(telegram, merchant, preview)

    [invoice] = cryptocloud.invoices.values()
    request = invoice["request"]
    assert request["shop_id"] == cryptocloud.shop_id
    assert request["amount"] == Decimal("1234.5") and request["currency"] == "USD"
    assert request["add_fields"] == {"time_to_pay": {"hours": 1, "minutes": 30}}
    assert request["order_id"]  # our own id, minted before the call
    assert card.button("pay link").url == invoice["link"]
    assert "Invoice #1" in card.text  # one id for an invoice everywhere, as in /invoices


async def test_cryptocloud_refuses_currencies_outside_its_fiat_list(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    await merchant.reply("/new")
    await merchant.reply("100")
    refused = await merchant.reply("BTC")
    assert "does not accept BTC" in refused.text
    accepted = await merchant.reply("jpy")
    assert "title" in accepted.text.lower()
