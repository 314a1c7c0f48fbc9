"""When the provider says no, or says nothing, the merchant is told and can retry safely."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import BotRuntime
from storage.engine import create_session_factory
from storage.repositories import InvoiceRepository
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, current, fill_basics
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

# A timed-out create is settled once the attempt is twice the provider timeout old.
SETTLE_WINDOW_FOR_1S_TIMEOUT = 2.1


async def _preview(telegram: FakeTelegram, merchant: FakeUser) -> BotMessage:
    question = await fill_basics(merchant, "99.90", "EUR", "Widgets")
    return await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )


async def _attempts(runtime: BotRuntime) -> list[tuple[str, str | None]]:
    rows, _ = await InvoiceRepository(create_session_factory(runtime.engine)).recent(limit=50)
    return [(row.outcome, row.error_code) for row in reversed(rows)]


REJECTED_TITLE = {"errors": {"title": "The title is not allowed here."}}
BAD_KEY = {"error": "Bad key header", "code": "bad_header_key"}


@pytest.mark.parametrize(
    ("status", "body", "expected_text", "error_code"),
    [
        (
            400,
            REJECTED_TITLE,
            "rejected the invoice: title: The title is not allowed",
            "validation",
        ),
        (403, BAD_KEY, "refused the bot's credentials", "auth"),
        (500, "<html>Internal Server Error</html>", "nothing payable was left", "unavailable"),
    ],
)
async def test_refusals_are_explained_logged_and_retryable(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    status: int,
    body: dict[str, str] | str,
    expected_text: str,
    error_code: str,
) -> None:
    runtime = await start_bot(cryptoprocessing, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(telegram, merchant)
    cryptoprocessing.fail_next(status, body)

    card = await confirm(telegram, merchant, preview)

    assert expected_text in card.text
    assert card.button("Retry")  # same card, same draft: one tap to try again
    # A 500 may hide a created invoice: it was settled (cancelled by foreign_id) at once.
    assert await _attempts(runtime) == [("failed" if status != 500 else "voided", error_code)]

    card = await confirm(telegram, merchant, card)

    assert "waiting for payment" in card.text
    payable = [i for i in cryptoprocessing.invoices.values() if i["status"] != "failed"]
    assert len(payable) == 1
    assert card.button("pay link").url == payable[0]["url"]


async def test_lost_answer_is_cancelled_at_cryptoprocessing_before_a_retry(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    runtime = await start_bot(cryptoprocessing, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(telegram, merchant)
    cryptoprocessing.delay_next(4.0, create_anyway=True)  # created, but the answer never arrives

    card = await confirm(telegram, merchant, preview)

    assert "did not answer in time" in card.text and "checks with it in 2 s" in card.text
    assert cryptoprocessing.create_calls == 1
    [lost] = cryptoprocessing.invoices.values()

    # Too soon: the provider might still be working on the first request, so no guess.
    card = await confirm(telegram, merchant, card)
    assert "still being checked" in card.text
    assert cryptoprocessing.create_calls == 1

    # The bot settles it by itself once the window has passed, and says so on the card.
    card = await telegram.wait_for(
        lambda: current(telegram, card) if "nothing payable" in current(telegram, card).text
        else None, timeout=SETTLE_WINDOW_FOR_1S_TIMEOUT + 3,
    )  # fmt: skip
    card = await confirm(telegram, merchant, card)

    assert "waiting for payment" in card.text
    assert cryptoprocessing.invoices[lost["foreign_id"]]["status"] == "failed"  # cancelled first
    payable = [i for i in cryptoprocessing.invoices.values() if i["status"] != "failed"]
    assert len(payable) == 1 and card.button("pay link").url == payable[0]["url"]
    assert [outcome for outcome, _ in await _attempts(runtime)] == ["voided", "created"]


async def test_lost_answer_at_cryptocloud_is_found_again_not_created_twice(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    runtime = await start_bot(cryptocloud, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    await merchant.reply("/new")
    question = await merchant.reply("15")
    await merchant.click(question, "EUR")
    preview = await merchant.reply("Lamp")
    cryptocloud.garble_next()  # created, then an unreadable 200

    # An answer arrived, so nothing is in flight: the invoice is looked up at once and the
    # merchant gets its link from the same press, with the message to forward.
    card = await confirm(telegram, merchant, preview)

    [invoice] = cryptocloud.invoices.values()  # no second invoice
    await telegram.wait_for(
        lambda: (
            any(
                m.text.startswith("Invoice: Lamp") for m in telegram.chat_messages(merchant.chat_id)
            )
            or None
        )
    )
    assert cryptocloud.create_calls == 1
    assert card.button("pay link").url == invoice["link"]
    assert [outcome for outcome, _ in await _attempts(runtime)] == ["created"]


async def test_unreachable_provider_creates_nothing_and_keeps_the_draft(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing, cryptoprocessing_base_url="http://127.0.0.1:9/api/v2")
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(telegram, merchant)

    card = await confirm(telegram, merchant, preview)

    assert "could not be reached" in card.text
    assert "Widgets" in current(telegram, card).text  # the draft is intact for the next try


async def test_an_abandoned_lost_answer_is_settled_in_the_background(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    runtime = await start_bot(
        cryptoprocessing, provider_timeout_seconds=1.0, reconcile_interval_seconds=0.3
    )
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(telegram, merchant)
    cryptoprocessing.delay_next(4.0, create_anyway=True)
    card = await confirm(telegram, merchant, preview)
    assert "did not answer in time" in card.text
    [lost] = cryptoprocessing.invoices.values()

    await merchant.reply("/cancel")  # the merchant walks away from it

    # Nobody presses Retry, yet the possibly payable invoice does not stay open.
    for _ in range(80):  # the database is polled: up to 8 s for a few 0.3 s job rounds
        outcomes = [outcome for outcome, _ in await _attempts(runtime)]
        if outcomes == ["voided"]:
            break
        await asyncio.sleep(0.1)
    assert outcomes == ["voided"]
    assert cryptoprocessing.invoices[lost["foreign_id"]]["status"] == "failed"  # cancelled
