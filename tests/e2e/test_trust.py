"""Trust with real money: a lost answer is settled at once and never leaves two payable
invoices for one order; "paid" is said only when what arrived covers the invoice; a report
for an invoice the bot does not know is kept for the admins, not lost."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
import jwt
import pytest

from bot.app import BotRuntime
from storage.engine import create_session_factory
from storage.models import DraftRow, InvoiceRow
from storage.repositories import DraftRepository, InvoiceRepository
from tests.conftest import ADMIN_ID, MERCHANT_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, current, fill_basics
from tests.e2e.payments import bot_url, cc_invoice_card, cp_invoice_card, post_cc, send_cp
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

# Also on PostgreSQL when TEST_DATABASE_URL is set (tests/conftest.py).
pytestmark = pytest.mark.postgres

Provider = FakeCryptoProcessing | FakeCryptoCloud


@pytest.fixture(params=["cryptoprocessing", "cryptocloud"])
def fake(
    request: pytest.FixtureRequest,
    cryptoprocessing: FakeCryptoProcessing,
    cryptocloud: FakeCryptoCloud,
) -> Provider:
    """Each provider in turn, for what must hold with both."""
    return cryptoprocessing if request.param == "cryptoprocessing" else cryptocloud


@pytest.fixture(autouse=True)
def admin_chat(telegram: FakeTelegram) -> FakeUser:
    """The admin has a chat with the bot, so alerts can reach them."""
    return telegram.user(ADMIN_ID, "Root")


def payable(fake: Provider) -> list[dict[str, Any]]:
    """Invoices a customer could still pay at the fake provider."""
    dead = "failed" if isinstance(fake, FakeCryptoProcessing) else "canceled"
    return [invoice for invoice in fake.invoices.values() if invoice["status"] != dead]


async def preview_for(fake: Provider, merchant: FakeUser, title: str = "Widgets") -> BotMessage:
    """The same order typed in: 99.90 EUR, the title, and (CryptoProcessing) Ada Lovelace."""
    question = await fill_basics(merchant, "99.90", "EUR", title)
    if isinstance(fake, FakeCryptoCloud):
        return merchant.newest("Check the invoice")  # no sender data: this is the preview
    await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    # The newest preview, not the newest message: a settle notice about an earlier attempt
    # may arrive just after it.
    return merchant.newest("Check the invoice")


async def lost_by_timeout(
    telegram: FakeTelegram, fake: Provider, start_bot: BotStarter
) -> tuple[FakeUser, BotMessage]:
    """A merchant's Confirm whose create was made at the provider but never answered."""
    await start_bot(fake, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(fake, merchant)
    fake.delay_next(3.0, create_anyway=True)
    return merchant, await confirm(telegram, merchant, preview)


def chat_texts(telegram: FakeTelegram, user: FakeUser) -> list[str]:
    return [m.text for m in telegram.chat_messages(user.chat_id)]


def admin_texts(telegram: FakeTelegram) -> list[str]:
    return [m.text for m in telegram.chat_messages(ADMIN_ID)]


# --- lost answers ---------------------------------------------------------------------------


async def test_cryptoprocessing_500_with_an_invoice_made_then_retry_at_once(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.fail_next(500, "<html>oops</html>", create_anyway=True)

    card = await confirm(telegram, merchant, preview)

    # Answered, so not in flight: cancelled by foreign_id before the merchant saw a word.
    assert "nothing payable was left" in card.text
    [first] = cryptoprocessing.invoices.values()
    assert first["status"] == "failed"
    started = time.monotonic()
    card = await confirm(telegram, merchant, card)  # Retry at once: no waiting window
    assert time.monotonic() - started < 5
    [invoice] = payable(cryptoprocessing)
    assert card.button("pay link").url == invoice["url"]


async def test_cryptocloud_500_with_an_invoice_made_gives_its_link_at_once(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptocloud, merchant, "Lamp")
    cryptocloud.fail_next(500, {"detail": "Internal error"}, create_anyway=True)
    started = time.monotonic()

    card = await confirm(telegram, merchant, preview)

    assert time.monotonic() - started < 5
    [invoice] = cryptocloud.invoices.values()  # found by order_id, not made twice
    assert card.button("pay link").url == invoice["link"]
    # A recovered invoice gets the same message to forward as a fresh one.
    await telegram.wait_for(
        lambda: any(t.startswith("Invoice: Lamp") and invoice["link"] in t
                    for t in chat_texts(telegram, merchant)) or None
    )  # fmt: skip


async def test_a_timeout_then_new_for_the_same_order_leaves_one_payable_invoice(
    telegram: FakeTelegram, fake: Provider, start_bot: BotStarter
) -> None:
    merchant, card = await lost_by_timeout(telegram, fake, start_bot)
    assert "did not answer in time" in card.text and "in 2 s" in card.text

    # The merchant gives up on it and types the same order again.
    card = await confirm(telegram, merchant, await preview_for(fake, merchant))
    assert card.button("pay link")
    assert any("settles it in the background" in t for t in chat_texts(telegram, merchant))

    await telegram.wait_for(lambda: len(payable(fake)) == 1 or None, timeout=10)
    [left] = payable(fake)
    assert card.button("pay link").url == left.get("url", left.get("link"))
    await telegram.wait_for(
        lambda: any(t.startswith("✅ Settled") for t in chat_texts(telegram, merchant)) or None
    )


async def test_cancel_with_an_unsettled_attempt_never_says_nothing_was_created(
    telegram: FakeTelegram, fake: Provider, start_bot: BotStarter
) -> None:
    merchant, _ = await lost_by_timeout(telegram, fake, start_bot)

    answer = await merchant.reply("/cancel")

    assert "Nothing was created" not in answer.text
    assert "still being checked" in answer.text
    told = await telegram.wait_for(
        lambda: [t for t in chat_texts(telegram, merchant) if t.startswith("✅ Settled")] or None,
        timeout=8,
    )
    assert "no payable invoice" in told[0]
    assert payable(fake) == []


async def test_edit_after_a_timeout_cancels_the_old_attempt_in_the_background(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptocloud, merchant, "Old title")
    cryptocloud.delay_next(3.0, create_anyway=True)
    card = await confirm(telegram, merchant, preview)
    [old] = cryptocloud.invoices.values()

    menu = await merchant.click(card, "Edit")
    await merchant.click(menu, "Title")
    await merchant.reply("New title")

    # Not the order the merchant wants any more: cancelled at the provider once settled.
    await telegram.wait_for(lambda: old["status"] == "canceled" or None, timeout=8)


@pytest.mark.parametrize("remove_keys", [False, True])
async def test_switching_provider_settles_old_attempts_where_they_were_made(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    cryptocloud: FakeCryptoCloud,
    start_bot: BotStarter,
    remove_keys: bool,
) -> None:
    first = await start_bot(cryptoprocessing, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.delay_next(3.0, create_anyway=True)
    await confirm(telegram, merchant, preview)
    await merchant.reply("/cancel")
    await first.stop()

    # The operator moves to CryptoCloud; the CryptoProcessing keys stay (or are removed).
    keep = {} if remove_keys else {
        "cryptoprocessing_api_key": cryptoprocessing.api_key,
        "cryptoprocessing_secret_key": cryptoprocessing.secret_key,
        "cryptoprocessing_base_url": cryptoprocessing.base_url,
    }  # fmt: skip
    await start_bot(cryptocloud, provider_timeout_seconds=1.0, **keep)

    if remove_keys:
        alert = await telegram.wait_for(
            lambda: [t for t in admin_texts(telegram) if "no longer configured" in t] or None,
            timeout=8,
        )
        assert "Check invoice #1" in alert[0]
        assert len(payable(cryptoprocessing)) == 1  # left for a person, not guessed at
    else:
        await telegram.wait_for(lambda: not payable(cryptoprocessing) or None, timeout=8)
    assert not [r for r in cryptocloud.requests if "list" in r.path]  # never asked the wrong one


@pytest.mark.parametrize("unknown_status", [400, 404])
async def test_cryptoprocessing_cancel_of_a_never_made_invoice_counts_as_absent(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    unknown_status: int,
) -> None:
    cryptoprocessing.cancel_unknown_status = unknown_status  # 400 foreign_id "is invalid"
    runtime = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.fail_next(502, "<html>Bad Gateway</html>")  # nothing was made

    card = await confirm(telegram, merchant, preview)
    assert "nothing payable was left" in card.text

    card = await confirm(telegram, merchant, card)
    assert card.button("pay link")
    rows, _ = await InvoiceRepository(create_session_factory(runtime.engine)).recent(limit=5)
    assert [row.outcome for row in reversed(rows)] == ["voided", "created"]


async def test_refused_keys_later_alert_the_admins_once(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    bad_key = {"error": "Bad key header", "code": "bad_header_key"}
    cryptoprocessing.fail_next(403, bad_key, times=2)
    card = await confirm(telegram, merchant, await preview_for(cryptoprocessing, merchant))
    assert "refused the bot's credentials" in card.text
    answered = len(merchant.answers())
    await merchant.press(card.button("Retry"), card)  # refused again: the same card stays
    await telegram.wait_for(lambda: cryptoprocessing.create_calls == 2 or None)
    await telegram.wait_for(lambda: len(merchant.answers()) > answered or None)

    alerts = await telegram.wait_for(
        lambda: [t for t in admin_texts(telegram) if "refuses the bot's API keys" in t] or None
    )
    await confirm(telegram, merchant, card)  # works again
    assert len(alerts) == 1


# --- paid means paid --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "why"),
    [(("50.00000000", "EUR"), "received 50.00000000 of 100"), (("0.002", "BTC"), "BTC")],
)
async def test_a_short_or_foreign_currency_confirmed_is_never_paid(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    received: tuple[str, str],
    why: str,
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)

    assert (
        await send_cp(bot, cryptoprocessing, invoice, "confirmed", received=received)
    ).is_success

    notice = await telegram.wait_for(
        lambda: [t for t in chat_texts(telegram, merchant) if "NOT paid" in t] or None
    )
    assert "Partly paid" in notice[0]
    alert = await telegram.wait_for(
        lambda: [t for t in admin_texts(telegram) if "reported paid but" in t] or None
    )
    assert why in alert[0]
    assert not [t for t in chat_texts(telegram, merchant) if t.startswith("✅")]
    assert "partly paid" in current(telegram, card).text


async def test_a_test_mode_paid_is_not_money_unless_the_operator_allows_it(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    cryptocloud.test_mode = True  # a new CryptoCloud project starts in test mode
    bot = await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)
    cryptocloud.set_status(invoice["uuid"], "paid")  # "confirm without payment" in the dashboard

    token = jwt.encode(
        {"id": invoice["uuid"].removeprefix("INV-"), "exp": int(time.time()) + 300},
        cryptocloud.secret_key,
        algorithm="HS256",
    )
    response = await post_cc(bot, invoice, token, claimed_status="paid", form=False)

    assert response.status_code == 200
    alert = await telegram.wait_for(
        lambda: [t for t in admin_texts(telegram) if "not counted" in t] or None
    )
    assert "ALLOW_TEST_PAYMENTS" in alert[0]
    assert "waiting for payment" in current(telegram, card).text
    assert not [t for t in chat_texts(telegram, merchant) if t.startswith("✅")]


# --- reports the bot cannot place ------------------------------------------------------------


async def test_a_report_for_an_unknown_invoice_is_kept_listed_and_applies_once_known(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    stranger_invoice = {
        "id": 777001, "foreign_id": "feedfeedfeedfeed", "end_user_reference": "r",
        "currency": "EUR", "amount": "10.00000000",
    }  # fmt: skip

    response = await send_cp(bot, cryptoprocessing, stranger_invoice, "confirmed")

    assert response.status_code == 200  # stored: the provider need not retry
    alert = await telegram.wait_for(
        lambda: [t for t in admin_texts(telegram) if "does not know" in t] or None
    )
    assert "777001" in alert[0] and "feedfeedfeedfeed" in alert[0]
    listing = await telegram.user(ADMIN_ID).reply("/unmatched")
    assert "777001" in listing.text and "10.00\u00a0EUR" in listing.text
    refused = await telegram.user(MERCHANT_ID).reply("/unmatched")
    assert "for admins" in refused.text

    # The invoice turns out to be ours (e.g. a database restored from a backup); the
    # dashboard's re-send of the same callback is applied, not swallowed as a duplicate.
    await _known_invoice(bot, "feedfeedfeedfeed", "777001")
    assert (await send_cp(bot, cryptoprocessing, stranger_invoice, "confirmed")).is_success
    found = await bot.services.invoices.find("feedfeedfeedfeed", merchant_id=None)
    assert found is not None and found.status == "paid"


async def _known_invoice(bot: BotRuntime, public_id: str, provider_id: str) -> None:
    sessions = create_session_factory(bot.engine)
    draft = await DraftRepository(sessions).start(
        DraftRow(id="ab" * 8, merchant_id=MERCHANT_ID, chat_id=MERCHANT_ID, state="submitted"),
        scrub=lambda row: row.payload,
    )
    invoices = InvoiceRepository(sessions)
    row = await invoices.begin_attempt(
        InvoiceRow(public_id=public_id, draft_id=draft.id, provider="cryptoprocessing",
                   amount=Decimal("10"), currency="EUR", title="Restored",
                   merchant_id=MERCHANT_ID, chat_id=MERCHANT_ID)
    )  # fmt: skip
    assert row.id is not None
    await invoices.record(
        row.id, event="created", outcome="created", status="created",
        provider_invoice_id=provider_id, pay_url="https://invoices.example.com/x",
        notified_status="created",
    )  # fmt: skip


async def test_a_callback_landing_while_the_create_is_answered_is_not_undone(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, provider_timeout_seconds=5.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.delay_next(1.5, create_anyway=True)  # made, answered 1.5 s later
    await merchant.press(preview.button("Confirm"), preview)
    invoice = await telegram.wait_for(lambda: next(iter(cryptoprocessing.invoices.values()), None))

    # The payer is fast: a payment is seen before the bot has recorded the create.
    assert (await send_cp(bot, cryptoprocessing, invoice, "processing", tx_ids=(1,))).is_success

    card = await telegram.wait_for(
        lambda: current(telegram, preview) if "Invoice" in current(telegram, preview).text
        else None
    )  # fmt: skip
    await telegram.wait_for(lambda: "payment seen" in current(telegram, card).text or None)
    found = await bot.services.invoices.find(invoice["foreign_id"], merchant_id=None)
    assert found is not None and found.status == "processing"  # not reset to "created"


async def test_a_payment_on_a_voided_attempt_is_announced_and_flagged(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.fail_next(500, "<html>oops</html>", create_anyway=True)
    await confirm(telegram, merchant, preview)  # voided: cancelled at the provider
    [voided] = cryptoprocessing.invoices.values()

    # The payer had paid just before the cancel landed; the provider confirms it anyway.
    assert (await send_cp(bot, cryptoprocessing, voided, "confirmed")).is_success

    told = await telegram.wait_for(
        lambda: [t for t in chat_texts(telegram, merchant) if t.startswith("✅ Paid")] or None
    )
    assert "marked voided" in told[0]
    await telegram.wait_for(
        lambda: [t for t in admin_texts(telegram) if "on a voided attempt" in t] or None
    )


@pytest.mark.parametrize("form", [False, True])
async def test_cryptocloud_postback_with_a_numeric_id_claim_and_a_loose_form(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter, form: bool
) -> None:
    bot = await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)
    cryptocloud.set_status(invoice["uuid"], "paid")
    # The docs' own sample token decodes to {"id": 13}: an internal number.
    token = jwt.encode({"id": 13, "exp": int(time.time()) + 300}, cryptocloud.secret_key,
                       algorithm="HS256")  # fmt: skip

    if form:
        body = (
            f"status=success&&invoice_id={invoice['uuid'].removeprefix('INV-')}&token={token}"
            f"&order_id={invoice['order_id']}&"
        )
        async with httpx.AsyncClient() as client:
            response = await client.post(
                f"{bot_url(bot)}/callbacks/cryptocloud", content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )  # fmt: skip
    else:
        response = await post_cc(bot, invoice, token, claimed_status="paid", form=False)

    assert response.status_code == 200
    await telegram.wait_for(lambda: "Status: paid" in current(telegram, card).text or None)


async def test_a_settle_cut_off_after_its_cancel_is_not_mistaken_for_a_paid_invoice(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    """The bot cancelled the lost attempt, then died before writing it down; the next cancel
    is answered "invalid state" (already cancelled): voided, not handed to the admins."""
    first = await start_bot(cryptoprocessing, provider_timeout_seconds=1.0)
    merchant = telegram.user(MERCHANT_ID)
    preview = await preview_for(cryptoprocessing, merchant)
    cryptoprocessing.delay_next(3.0, create_anyway=True)
    await confirm(telegram, merchant, preview)
    [lost] = cryptoprocessing.invoices.values()
    await first.stop()
    # What the dead process managed: it noted the settle and the provider cancelled it.
    sessions = create_session_factory(first.engine)
    row = await InvoiceRepository(sessions).get_by_public_id(lost["foreign_id"])
    assert row is not None and row.id is not None
    await InvoiceRepository(sessions).record(row.id, event="settling")
    lost["status"] = "failed"
    await first.engine.dispose()

    await start_bot(cryptoprocessing, provider_timeout_seconds=1.0)
    card = await telegram.wait_for(
        lambda: current(telegram, preview) if "nothing payable" in current(telegram, preview).text
        else None, timeout=8,
    )  # fmt: skip
    card = await confirm(telegram, merchant, card)
    assert card.button("pay link")
    assert not [t for t in admin_texts(telegram) if "Check invoice" in t]
