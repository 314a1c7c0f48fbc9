"""The invoice card in the customer's own chat: posted by the merchant through inline mode
(one query, one tap), or as the merchant through Telegram Business; kept live either way."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.conftest import ADMIN_ID, MERCHANT_ID, OTHER_MERCHANT_ID, STRANGER_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm
from tests.e2e.payments import cc_invoice_card, cp_invoice_card, send_cp
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram

CUSTOMER_ID = 7002  # the customer's chat with the merchant, where the card is posted


def _newest(fake: FakeCryptoProcessing) -> dict[str, Any]:
    return fake.invoices[max(fake.invoices, key=lambda key: fake.invoices[key]["id"])]


async def _live(telegram: FakeTelegram, posted: BotMessage, words: str) -> BotMessage:
    """The posted card once it reads `words` (it is edited in place)."""
    assert posted.inline_message_id is not None
    inline_id = posted.inline_message_id
    return await telegram.wait_for(
        lambda: card if words in (card := telegram.inline_message(inline_id)).text else None
    )


async def test_one_query_and_one_tap_post_a_live_invoice_for_a_known_customer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, shop_name="Atelier Nord")
    merchant = telegram.user(MERCHANT_ID)
    _, first = await cp_invoice_card(telegram, merchant, cryptoprocessing)  # Ada is known now

    answer = await merchant.ask_inline("150 EUR Consulting")  # input 1: the query
    result = answer.result("Ada Lovelace")
    assert result["title"] == "150.00\u00a0EUR · Consulting → Ada Lovelace · 1990"
    assert answer.button is not None and answer.button["start_parameter"] == "add"
    posted = await merchant.choose_inline(answer, result["id"], CUSTOMER_ID)  # input 2: a tap

    card = await _live(telegram, posted, "waiting for payment")
    created = _newest(cryptoprocessing)
    assert len(cryptoprocessing.invoices) == 2 and Decimal(created["amount"]) == 150
    assert created["end_user_reference"] == first["end_user_reference"]  # the same customer
    assert "Invoice from Atelier Nord: Consulting" in card.text
    assert card.button("Pay").url == created["url"]
    assert "t.me/invoice_test_bot?start=" in str(card.button("Payment status").url)

    await send_cp(bot, cryptoprocessing, created, "processing", tx_ids=(4,))
    await _live(telegram, posted, "payment seen")
    await send_cp(bot, cryptoprocessing, created, "confirmed", tx_ids=(4,))
    paid = await _live(telegram, posted, "Status: paid")
    assert not paid.buttons() or not [b for b in paid.buttons() if b.text == "💳 Pay"]
    # The merchant is told once, in their own chat; the customer saw it where they paid.
    told = await telegram.wait_for(
        lambda: (
            [m for m in telegram.chat_messages(MERCHANT_ID) if "✅ Paid: invoice #2" in m.text]
            or None
        )
    )
    assert len(told) == 1


async def test_a_partly_paid_and_an_expired_inline_card_say_so(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await cp_invoice_card(telegram, merchant, cryptoprocessing)
    cards = []
    for title in ("Part", "Late"):
        answer = await merchant.ask_inline(f"100 EUR {title}")
        posted = await merchant.choose_inline(answer, answer.result("Ada")["id"], CUSTOMER_ID)
        await _live(telegram, posted, "waiting for payment")
        cards.append((posted, _newest(cryptoprocessing)))

    (part, part_invoice), (late, late_invoice) = cards
    await send_cp(bot, cryptoprocessing, part_invoice, "confirmed", tx_ids=(8,),
                  received=("30", "EUR"))  # fmt: skip
    partial = await _live(telegram, part, "partly paid")
    assert "Still to pay: 70.00\u00a0EUR" in partial.text and partial.button("Pay")
    # CryptoProcessing reports an unpaid timer as failed, "not paid".
    await send_cp(bot, cryptoprocessing, late_invoice, "failed", error="Invoice was not paid")
    expired = await _live(telegram, late, "expired")
    assert not expired.buttons()


async def test_a_new_payer_is_added_in_the_bot_then_the_invoice_is_shared(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    answer = await merchant.ask_inline("99 EUR Lessons")
    assert answer.results == []  # nobody known yet: only the button to add the payer
    assert answer.button is not None and answer.button["start_parameter"] == "add"

    question = await merchant.reply("/start add")  # what the button opens
    assert "natural person or a legal entity" in question.text  # 99 EUR Lessons already taken
    preview = await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    assert "99.00\u00a0EUR" in preview.text and "Lessons" in preview.text
    card = await confirm(telegram, merchant, preview)
    share = card.button("Share")
    assert share.switch_inline_query == "#1"  # back to a chat, with the invoice picked

    answer = await merchant.ask_inline("#1")
    [result] = answer.results
    posted = await merchant.choose_inline(answer, result["id"], CUSTOMER_ID)
    assert posted.button("Pay").url == _newest(cryptoprocessing)["url"]
    assert len(cryptoprocessing.invoices) == 1  # sharing creates nothing


async def test_only_the_invoice_owner_may_share_it_and_strangers_get_nothing(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await cp_invoice_card(telegram, merchant, cryptoprocessing)

    assert (await telegram.user(OTHER_MERCHANT_ID).ask_inline("#1")).results == []
    stranger = await telegram.user(STRANGER_ID).ask_inline("150 EUR Consulting")
    assert stranger.results == [] and stranger.button is None
    assert (await telegram.user(STRANGER_ID).ask_inline("#1")).results == []
    assert len((await telegram.user(ADMIN_ID).ask_inline("#1")).results) == 1
    assert len((await merchant.ask_inline("#1")).results) == 1


async def test_without_sender_data_one_result_creates_the_invoice(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    answer = await merchant.ask_inline("25 USD Lamp")
    [result] = answer.results
    posted = await merchant.choose_inline(answer, result["id"], CUSTOMER_ID)
    card = await _live(telegram, posted, "waiting for payment")
    [invoice] = cryptocloud.invoices.values()
    assert card.button("Pay").url == invoice["link"]


async def test_a_business_card_is_posted_as_the_merchant_and_kept_live(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    connection = telegram.connect_business(merchant, can_reply=True)
    await telegram.wait_for(
        lambda: (
            [m for m in telegram.chat_messages(MERCHANT_ID) if "Business connected" in m.text]
            or None
        )
    )
    customer = telegram.user(CUSTOMER_ID, "Pia")
    await customer.write_business(merchant, "Hi! Can I pay for the widgets here?")
    await merchant.write_business_as_owner(customer, "Sure, one moment")

    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    pick = await merchant.click(card, "Send in a Business chat")
    assert "in which chat" in pick.text and [b.text for b in pick.buttons()] == ["Pia"]
    done = await merchant.click(pick, "Pia")
    assert "posted in your chat with Pia" in done.text

    [posted] = telegram.business_messages(connection, CUSTOMER_ID)
    assert "Widgets" in posted.text and posted.button("Pay").url == invoice["url"]
    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(6,))

    def sent() -> list[BotMessage]:
        return telegram.business_messages(connection, CUSTOMER_ID)

    await telegram.wait_for(lambda: "Status: paid" in sent()[0].text or None)
    receipt = await telegram.wait_for(lambda: [m for m in sent() if "Receipt" in m.text] or None)
    assert len(receipt) == 1


async def test_business_posting_respects_telegrams_24_hour_window(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    connection = telegram.connect_business(merchant, can_reply=True)
    customer = telegram.user(CUSTOMER_ID, "Pia")
    await customer.write_business(merchant, "Hello")
    card, _ = await cc_invoice_card(telegram, merchant, cryptocloud)
    pick = await merchant.click(card, "Send in a Business chat")

    telegram.age_business_chat(connection, CUSTOMER_ID, hours=25)  # Telegram's view moved on
    refused = await merchant.click(pick, "Pia")
    assert "Telegram refused to post" in refused.text
    assert telegram.business_messages(connection, CUSTOMER_ID) == []
