"""A merchant creates CryptoProcessing invoices from the chat, end to end over loopback HTTP."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import ADMIN_ID, MERCHANT_ID, BotStarter
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram


async def test_natural_person_invoice_gives_the_merchant_a_pay_link(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID, "Mira")

    assert "amount" in (await merchant.reply("/new")).text.lower()
    currency_question = await merchant.reply("1 234,56")
    assert "currency" in currency_question.text.lower()
    assert "EUR" in [b.text for b in currency_question.buttons()]

    title_question = await merchant.click(currency_question, "EUR")
    assert "title" in title_question.text.lower()
    sender_question = await merchant.reply("Order 42: blue widgets")
    assert "natural person" in sender_question.text.lower()

    await merchant.click(sender_question, "Natural person")
    await merchant.reply("Friedrich")
    await merchant.reply("Müller")
    email_question = await merchant.reply("17.08.1995")
    assert "email" in email_question.text.lower()
    preview = await merchant.reply("friedrich@example.com")

    assert "1,234.56\u00a0EUR" in preview.text
    assert "Order 42: blue widgets" in preview.text
    assert "Friedrich Müller, born 1995-08-17" in preview.text
    assert cryptoprocessing.create_calls == 0

    await merchant.click(preview, "Confirm")
    await telegram.wait_for(
        lambda: (
            any(m.text.startswith("Invoice:") for m in telegram.chat_messages(merchant.chat_id))
            or None
        )
    )

    assert cryptoprocessing.create_calls == 1
    [invoice] = cryptoprocessing.invoices.values()
    sent = invoice["request"]
    assert sent["amount"] == Decimal("1234.56")
    assert b'"amount":1234.56' in invoice["raw_body"]
    assert sent["currency"] == "EUR" and sent["title"] == "Order 42: blue widgets"
    assert sent["sender_type"] == "natural"
    assert sent["sender_data"] == {
        "first_name": "Friedrich", "last_name": "Müller", "date_of_birth": "1995-08-17",
    }  # fmt: skip
    assert sent["email_user"] == "friedrich@example.com"
    assert sent["url_success"] == "https://shop.example.com/paid"
    reference = sent["end_user_reference"]
    assert reference and "friedrich" not in reference.lower() and "müller" not in reference.lower()

    pay_url = invoice["url"] if "url" in invoice else invoice["response"]["url"]
    messages = telegram.chat_messages(merchant.chat_id)
    card = next(m for m in messages if m.message_id == preview.message_id)
    assert "waiting for payment" in card.text
    assert card.button("pay link").url == pay_url
    assert any(m.text.startswith("Invoice: Order 42") and pay_url in m.text for m in messages)

    admin = telegram.user(ADMIN_ID, "Root")
    listing = await admin.reply("/invoices")
    assert "1,234.56\u00a0EUR" in listing.text and "Order 42: blue widgets" in listing.text
    assert f"merchant {MERCHANT_ID}" in listing.text
