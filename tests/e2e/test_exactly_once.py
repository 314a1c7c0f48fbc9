"""A double tap, a retry, a stale button or a restart never creates a second invoice."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from bot.domain import InvoiceRequest, NaturalPerson
from bot.services.invoices import SubmitError
from storage.engine import create_session_factory
from storage.models import InvoiceRow
from storage.repositories import InvoiceRepository
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, current, fill_basics
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

# Also on PostgreSQL when TEST_DATABASE_URL is set (tests/conftest.py).
pytestmark = pytest.mark.postgres


async def _preview(merchant: FakeUser, title: str = "Widgets") -> BotMessage:
    question = await fill_basics(merchant, "42", "EUR", title)
    return await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )


def _forwards(telegram: FakeTelegram, merchant: FakeUser) -> list[BotMessage]:
    return [m for m in telegram.chat_messages(merchant.chat_id) if m.text.startswith("Invoice:")]


async def test_pressing_confirm_twice_creates_one_invoice(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(merchant)
    cryptoprocessing.delay_next(0.5)  # a slow provider invites the second tap
    button = preview.button("Confirm")
    answered_before = len(merchant.answers())

    await merchant.press(button, preview)
    await merchant.press(button, preview)
    await telegram.wait_for(lambda: len(merchant.answers()) == answered_before + 2)
    await telegram.wait_for(lambda: len(_forwards(telegram, merchant)) == 1)

    assert cryptoprocessing.create_calls == 1
    assert len(_forwards(telegram, merchant)) == 1
    assert "waiting for payment" in current(telegram, preview).text
    await cryptoprocessing.settle()  # every request the presses made has been answered


async def test_concurrent_submissions_of_one_draft_reach_the_provider_once(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    runtime = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await _preview(merchant)
    draft = await runtime.services.drafts.current(MERCHANT_ID, merchant.chat_id)
    assert draft is not None
    cryptoprocessing.delay_next(0.3)

    results = await asyncio.gather(
        *(runtime.services.invoices.submit(draft.id, MERCHANT_ID) for _ in range(5)),
        return_exceptions=True,
    )

    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, SubmitError)]
    assert len(created) == 1 and len(refused) == 4
    assert {r.key for r in refused} == {"error-submit-in-progress"}
    assert cryptoprocessing.create_calls == 1


async def test_confirm_on_an_old_card_shows_the_invoice_it_already_made(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    first_preview = await _preview(merchant, "First")
    stale_copy = first_preview  # the message as it was, with its Confirm button
    await confirm(telegram, merchant, first_preview)
    await _preview(merchant, "Second")  # a new draft is open now
    answered_before = len(merchant.answers())

    await merchant.press(stale_copy.button("Confirm"), stale_copy)
    await telegram.wait_for(lambda: len(merchant.answers()) > answered_before)
    await telegram.wait_for(lambda: "⏳" not in current(telegram, first_preview).text or None)

    assert cryptoprocessing.create_calls == 1
    card = current(telegram, first_preview)
    assert "First" in card.text and "waiting for payment" in card.text


async def test_stale_draft_buttons_do_not_touch_the_current_draft(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await merchant.reply("/new")
    old_question = await merchant.reply("10")  # currency buttons of draft 1
    await merchant.reply("/new")  # draft 2 starts over
    await merchant.press(old_question.button("USD"), old_question)
    await telegram.wait_for(lambda: merchant.answers())

    assert "older message" in (merchant.answers()[-1].get("text") or "")
    question = await merchant.reply("20")
    assert "currency" in question.text.lower()  # draft 2 still wants its currency


async def test_a_conversation_survives_a_restart(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    first = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await merchant.reply("/new")
    question = await merchant.reply("77.70")
    await merchant.click(question, "EUR")
    await first.stop()

    await start_bot(cryptoprocessing)
    question = await merchant.reply("After restart")  # the title, as the bot had asked
    preview = await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    card = await confirm(telegram, merchant, preview)

    assert "77.70\u00a0EUR" in card.text and "After restart" in card.text
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["title"] == "After restart"


async def test_an_attempt_cut_off_by_a_crash_is_settled_before_any_retry(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    first = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(merchant)
    draft = await first.services.drafts.current(MERCHANT_ID, merchant.chat_id)
    assert draft is not None and draft.amount is not None and draft.currency and draft.title
    # A crash right after the create request left: the row says "creating", the provider
    # has the invoice, and the bot never heard back.
    sessions = create_session_factory(first.engine)
    attempt = await InvoiceRepository(sessions).begin_attempt(
        InvoiceRow(public_id="cafe0000cafe0000", draft_id=draft.id, provider="cryptoprocessing",
                   amount=draft.amount, currency=draft.currency, title=draft.title,
                   merchant_id=MERCHANT_ID, chat_id=merchant.chat_id)
    )  # fmt: skip
    customer = await first.services.customers.find_or_create(
        MERCHANT_ID, NaturalPerson("Ada", "Lovelace", dt.date(1990, 12, 10)), "payer@example.org"
    )
    await first.providers.active.create_invoice(
        InvoiceRequest(attempt.public_id, draft.amount, draft.currency, draft.title, customer)
    )
    await first.stop()

    await start_bot(cryptoprocessing, provider_timeout_seconds=0.25)  # settles after 0.5 s
    await asyncio.sleep(0.6)
    card = await confirm(telegram, merchant, current(telegram, preview))

    assert cryptoprocessing.invoices["cafe0000cafe0000"]["status"] == "failed"  # cancelled
    payable = [i for i in cryptoprocessing.invoices.values() if i["status"] != "failed"]
    assert len(payable) == 1
    assert card.button("pay link").url == payable[0]["url"]
