"""The awkward orders of events: concurrent reports, late card draws, failing chats, test mode."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bot.app import BotRuntime
from bot.domain import PaymentStatus, StatusReport
from storage.models import InvoiceRow
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import current
from tests.e2e.payments import (
    age_invoice,
    bot_url,
    cc_invoice_card,
    cp_invoice_card,
    post_cp,
    send_cp,
)
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

# Also on PostgreSQL when TEST_DATABASE_URL is set (tests/conftest.py).
pytestmark = pytest.mark.postgres


def paid_messages(telegram: FakeTelegram, user: FakeUser) -> list[BotMessage]:
    return [m for m in telegram.chat_messages(user.chat_id) if m.text.startswith("✅ Paid")]


async def test_reports_applied_at_once_never_move_an_invoice_backwards(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)

    def report(status: PaymentStatus, n: int) -> StatusReport:
        return StatusReport(str(invoice["id"]), invoice["foreign_id"], status, status.value,
                            dedupe_key=f"race:{status}:{n}", amount_received=invoice["amount"],
                            received_currency=invoice["currency"])  # fmt: skip

    payments = bot.services.payments
    for round_ in range(10):
        await asyncio.gather(
            payments.apply(
                "cryptoprocessing", [report(PaymentStatus.PROCESSING, round_)], source="t"
            ),
            payments.apply("cryptoprocessing", [report(PaymentStatus.PAID, round_)], source="t"),
            payments.apply("cryptoprocessing", [report(PaymentStatus.PENDING, round_)], source="t"),
        )
        found = await bot.services.invoices.find(invoice["foreign_id"], merchant_id=None)
        assert found is not None and found.status == "paid", (
            f"round {round_}: {found.status if found else None}"
        )


async def test_a_card_drawn_late_is_redrawn_without_a_second_message(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    await send_cp(bot, cryptoprocessing, invoice, "confirmed")
    await telegram.wait_for(lambda: paid_messages(telegram, merchant) or None)

    # The Confirm handler drawing its older snapshot after the callback was handled:
    found = await bot.services.invoices.find(invoice["foreign_id"], merchant_id=None)
    assert found is not None and found.id is not None
    await bot.services.invoices.mark_card(found.id, card.message_id, "created")
    await bot.notifier.flush()

    assert "Status: paid" in current(telegram, card).text
    assert len(paid_messages(telegram, merchant)) == 1


async def test_an_unreachable_notify_chat_does_not_repeat_the_merchant_s_message(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, notify_chat_id=-100999)  # the bot is not in it
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    await send_cp(bot, cryptoprocessing, invoice, "confirmed")
    await telegram.wait_for(lambda: paid_messages(telegram, merchant) or None)

    for _ in range(3):
        await bot.notifier.flush()

    assert len(paid_messages(telegram, merchant)) == 1


async def test_cryptocloud_test_mode_allowed_by_the_operator_is_said_out_loud(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    cryptocloud.test_mode = True  # a new project, and the operator allows test payments
    bot = await start_bot(cryptocloud, allow_test_payments=True)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)
    cryptocloud.set_status(invoice["uuid"], "paid")

    # The dashboard's "confirm without payment"; a refresh (or the reconciliation job,
    # whichever comes first) brings it in.
    await bot.services.payments.refresh(await _row(bot, invoice["order_id"]))
    [told] = await telegram.wait_for(lambda: paid_messages(telegram, merchant) or None)
    assert "no real money moved" in told.text
    await telegram.wait_for(lambda: "Test mode" in current(telegram, card).text or None)


async def test_deeply_nested_json_is_a_400_not_a_crash(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    body = b"[" * 5000
    response = await post_cp(
        bot, body, key=cryptoprocessing.api_key, signature=cryptoprocessing.sign(body)
    )
    assert response.status_code == 400
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{bot_url(bot)}/healthz")).status_code == 200


async def test_stuck_cryptoprocessing_payment_without_a_timer_is_flagged_after_a_day(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    _, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    await send_cp(bot, cryptoprocessing, invoice, "processing", tx_ids=(5,))
    assert not (await bot.services.payments.reconcile()).flagged  # a fresh payment: fine

    await age_invoice(bot, invoice["foreign_id"], minutes=25 * 60)

    assert len((await bot.services.payments.reconcile()).flagged) == 1
    assert not (await bot.services.payments.reconcile()).flagged  # once


async def _row(bot: BotRuntime, public_id: str) -> InvoiceRow:
    row = await bot.services.invoices.find(public_id, merchant_id=None)
    assert row is not None
    return row
