"""The payer's side: the deep link in the message they get, their live card, the receipt,
what is missing after a partial payment, one reminder, QR codes; and the merchant's
reminders. Payers are strangers to the bot: they see only the invoice whose link they hold.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import zxingcpp
from PIL import Image
from sqlmodel import col, update

from bot.app import BotRuntime
from storage.models import InvoiceRow
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import current
from tests.e2e.payments import cp_invoice_card, send_cp
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

PAYER_ID = 7001
LINK = re.compile(r"https://t\.me/invoice_test_bot\?start=([A-Za-z0-9_-]{32})")


async def _token(telegram: FakeTelegram) -> str:
    """The token in the message the merchant forwards to the customer."""

    def found() -> str | None:
        for message in telegram.chat_messages(MERCHANT_ID):
            if match := LINK.search(message.text):
                return match[1]
        return None

    return await telegram.wait_for(found)


async def _open(telegram: FakeTelegram, payer: FakeUser, token: str) -> BotMessage:
    return await payer.reply(f"/start {token}")


async def _expires_in(bot: BotRuntime, minutes: float) -> None:
    """Move the invoice's expiry (the data, not the bot's clock)."""
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    async with bot.engine.begin() as connection:
        await connection.execute(
            update(InvoiceRow).where(col(InvoiceRow.id) == 1).values(expires_at=moment)
        )


def _decode(png: bytes) -> str:
    [found] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(found.text)


async def test_the_payer_opens_the_link_and_follows_the_payment_live(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, shop_name="Atelier Nord")
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    token = await _token(telegram)
    assert str(invoice["foreign_id"]) not in token  # never the invoice's id

    payer = telegram.user(PAYER_ID, "Pia", "de")
    shown = await _open(telegram, payer, token)
    assert "Rechnung von Atelier Nord: Widgets" in shown.text
    assert "100,00\u00a0€" in shown.text or "100,00\u00a0EUR" in shown.text
    assert "Status:" in shown.text
    assert shown.button("Bezahlen").url == invoice["url"]
    assert not [m for m in telegram.chat_messages(PAYER_ID) if "Lovelace" in m.text]

    await send_cp(bot, cryptoprocessing, invoice, "processing", tx_ids=(5,))
    await telegram.wait_for(lambda: "bestätigt" in current(telegram, shown).text or None)
    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(5,))
    receipt = await telegram.wait_for(
        lambda: next((m for m in telegram.chat_messages(PAYER_ID) if "Beleg" in m.text), None)
    )
    assert "Widgets" in receipt.text and "Atelier Nord" in receipt.text
    assert "bezahlt" in current(telegram, shown).text
    assert not current(telegram, shown).buttons()  # nothing left to pay
    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(5,))  # a repeat
    await bot.keeper.flush()
    assert len([m for m in telegram.chat_messages(PAYER_ID) if "Beleg" in m.text]) == 1
    # And the merchant's card moved too (the notifier, a loop of its own).
    await telegram.wait_for(lambda: "Status: paid" in current(telegram, card).text or None)


async def test_a_partial_payment_tells_the_payer_what_is_missing(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    payer = telegram.user(PAYER_ID, "Pat")
    card = await _open(telegram, payer, await _token(telegram))

    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(9,), received=("60", "EUR"))

    notice = await telegram.wait_for(
        lambda: next((m for m in telegram.chat_messages(PAYER_ID) if "in part" in m.text), None)
    )
    assert "received 60.00\u00a0EUR" in notice.text and "still to pay 40.00\u00a0EUR" in notice.text
    assert notice.button("Pay").url == invoice["url"]  # the pay link again
    assert "Still to pay: 40.00\u00a0EUR" in current(telegram, card).text
    assert "Paid" not in current(telegram, card).text.split("Status:")[1]


async def test_a_wrong_or_expired_link_gets_the_same_answer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await cp_invoice_card(telegram, merchant, cryptoprocessing)
    token = await _token(telegram)
    payer = telegram.user(PAYER_ID, "Pat")

    wrong = await _open(telegram, payer, token[:-1] + ("A" if token[-1] != "A" else "B"))
    await _expires_in(bot, -1)
    expired = await _open(telegram, payer, token)
    assert wrong.text == expired.text
    assert "not valid" in wrong.text and not wrong.buttons()
    # Nothing else of the bot is open to a payer.
    refused = await payer.reply("/invoices")
    assert "Widgets" not in refused.text


async def test_payers_are_rate_limited(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    payer = telegram.user(PAYER_ID, "Guesser")
    answers = [(await _open(telegram, payer, f"guess{i:027d}")).text for i in range(7)]
    assert all("not valid" in text for text in answers[:6])
    assert "Too many requests" in answers[6]


async def test_the_qr_code_decodes_to_the_pay_link(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)

    photo = await merchant.click(card, "QR code")
    assert photo.photo is not None and _decode(photo.photo) == invoice["url"]
    assert "100.00\u00a0EUR · Widgets" in photo.text

    payer = telegram.user(PAYER_ID, "Pat")
    payer_card = await _open(telegram, payer, await _token(telegram))
    payer_photo = await payer.click(payer_card, "QR code")
    assert payer_photo.photo is not None and _decode(payer_photo.photo) == invoice["url"]


async def test_one_reminder_before_expiry_and_none_once_paid(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, payer_reminder_minutes=60)
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    payer = telegram.user(PAYER_ID, "Pat")
    await _open(telegram, payer, await _token(telegram))

    def reminders() -> list[BotMessage]:
        return [m for m in telegram.chat_messages(PAYER_ID) if "Reminder" in m.text]

    await _expires_in(bot, 90)
    await bot.keeper.flush()
    assert reminders() == []  # not yet within the hour
    await _expires_in(bot, 30)
    await bot.keeper.flush()
    await bot.keeper.flush()
    [reminder] = reminders()
    assert "Widgets" in reminder.text and reminder.button("Pay").url == invoice["url"]

    # The merchant's list: once, saying the customer was reminded (nothing left to press).
    listing = await telegram.wait_for(
        lambda: next(
            (m for m in telegram.chat_messages(MERCHANT_ID) if "needing attention" in m.text), None
        )
    )
    assert "#1" in listing.text and "unpaid, expires" in listing.text
    assert "reminded automatically" in listing.text and not listing.buttons()
    await bot.keeper.flush()
    assert len([m for m in telegram.chat_messages(MERCHANT_ID) if "needing" in m.text]) == 1

    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(3,))
    await telegram.wait_for(
        lambda: [m for m in telegram.chat_messages(PAYER_ID) if "Receipt" in m.text] or None
    )
    await bot.keeper.flush()
    assert len(reminders()) == 1


async def test_the_merchant_reminds_a_customer_who_opened_the_link(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, payer_reminder_minutes=0)
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    await _expires_in(bot, 20)
    await bot.keeper.flush()
    listing = next(m for m in telegram.chat_messages(MERCHANT_ID) if "needing" in m.text)

    # Before the customer opened anything, there is nowhere to remind them: the merchant is
    # told so and gets the message to forward again.
    answer = await merchant.click(listing, "Remind the customer of #1")
    assert "has not opened it through the bot" in telegram.chat_messages(MERCHANT_ID)[-2].text
    assert LINK.search(answer.text)

    payer = telegram.user(PAYER_ID, "Pat")
    await _open(telegram, payer, await _token(telegram))
    answer = await merchant.click(listing, "Remind the customer of #1")
    assert "Reminder for invoice #1 sent: in their chat with the bot" in answer.text

    def reminders() -> list[BotMessage]:
        return [m for m in telegram.chat_messages(PAYER_ID) if "Reminder" in m.text]

    assert len(reminders()) == 1
    answer = await merchant.click(listing, "Remind the customer of #1")  # once only
    assert "already reminded" in answer.text and len(reminders()) == 1

    # Never once it is paid.
    await send_cp(bot, cryptoprocessing, invoice, "confirmed", tx_ids=(3,))
    await telegram.wait_for(
        lambda: [m for m in telegram.chat_messages(MERCHANT_ID) if "✅ Paid" in m.text] or None
    )
    answer = await merchant.click(listing, "Remind the customer of #1")
    assert "needs no reminder" in answer.text and len(reminders()) == 1
