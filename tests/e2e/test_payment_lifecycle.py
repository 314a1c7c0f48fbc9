"""After the pay link: the merchant sees every payment outcome in the chat, told once, and no
forged, replayed or stale callback changes anything."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json

import httpx
import pytest

from tests.conftest import ADMIN_ID, MERCHANT_ID, BotStarter
from tests.e2e.flows import current
from tests.e2e.payments import (
    age_invoice,
    bot_url,
    cc_invoice_card,
    cc_token,
    cp_callback,
    cp_invoice_card,
    post_cc,
    post_cp,
    send_cp,
)
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

# Also on PostgreSQL when TEST_DATABASE_URL is set (tests/conftest.py).
pytestmark = pytest.mark.postgres


def notifications(telegram: FakeTelegram, user: FakeUser, word: str) -> list[BotMessage]:
    return [m for m in telegram.chat_messages(user.chat_id) if m.text.startswith(word)]


async def test_cryptoprocessing_paid_invoice_moves_forward_and_is_told_once(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, notify_chat_id=ADMIN_ID)
    merchant, admin = telegram.user(MERCHANT_ID), telegram.user(ADMIN_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)

    async def send(status: str, tx: tuple[int, ...] = ()) -> httpx.Response:
        return await send_cp(bot, cryptoprocessing, invoice, status, tx_ids=tx)

    assert (await send("pending")).status_code == 200
    assert (await send("processing", (77,))).status_code == 200
    await telegram.wait_for(lambda: "payment seen" in current(telegram, card).text or None)
    assert (await send("confirmed", (77,))).status_code == 200
    await telegram.wait_for(lambda: notifications(telegram, merchant, "✅ Paid") or None)

    # The provider retries and reorders: nothing changes, nobody is told again.
    assert (await send("confirmed", (77,))).status_code == 200
    assert (await send("processing", (77,))).status_code == 200
    assert (await send("failed")).status_code == 200
    await bot.notifier.flush()

    final = current(telegram, card)
    assert "Status: paid" in final.text and "Received: 100.00\u00a0EUR" in final.text
    # No pay link or cancel once paid; only a new invoice for the same customer.
    assert [b.callback_data for b in final.buttons()] == ["inv|again|1"]
    assert len(notifications(telegram, merchant, "✅ Paid")) == 1
    assert len(notifications(telegram, admin, "✅ Paid")) == 1  # NOTIFY_CHAT_ID gets it too
    details = await admin.reply(f"/invoice {invoice['foreign_id']}")
    # The exact repeats were dropped as duplicates; the late "failed" is kept, not applied.
    assert details.text.count("· Status: paid") == 1
    assert details.text.count("· Older news ignored: failed") == 1


@pytest.mark.parametrize(
    ("error", "word", "status"),
    [
        ("Timer expired. User paid less than requested.", "❌ Failed", "failed"),
        ("Timer expired. User not paid.", "⌛ Expired", "expired"),
    ],
)
async def test_cryptoprocessing_failed_and_expired_invoices(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    error: str,
    word: str,
    status: str,
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    response = await send_cp(bot, cryptoprocessing, invoice, "failed", error=error)

    assert response.status_code == 200
    await telegram.wait_for(lambda: notifications(telegram, merchant, word) or None)
    assert f"Status: {status}" in current(telegram, card).text


async def test_forged_and_malformed_cryptoprocessing_callbacks_change_nothing(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    paid = cp_callback(invoice, "confirmed")
    key, good = cryptoprocessing.api_key, cryptoprocessing.sign(paid)
    forged = hmac.new(b"guessed-secret", paid, hashlib.sha512).hexdigest()
    garbage = b"{not json"
    huge = b'{"pad":"' + b"x" * 70_000 + b'"}'

    answers = [
        (await post_cp(bot, paid, key=key, signature=forged)).status_code,
        (await post_cp(bot, paid, key="someone-else", signature=good)).status_code,
        (await post_cp(bot, paid, key=key, signature=None)).status_code,
        (await post_cp(bot, paid, key=None, signature=good)).status_code,
        (await post_cp(bot, paid + b" ", key=key, signature=good)).status_code,
        (
            await post_cp(bot, garbage, key=key, signature=cryptoprocessing.sign(garbage))
        ).status_code,
        (await post_cp(bot, huge, key=key, signature=cryptoprocessing.sign(huge))).status_code,
    ]

    assert answers == [403, 403, 403, 403, 403, 400, 413]
    await bot.notifier.flush()
    assert "waiting for payment" in current(telegram, card).text
    assert not notifications(telegram, merchant, "✅")
    async with httpx.AsyncClient() as client:
        wrong_provider = await client.post(f"{bot_url(bot)}/callbacks/cryptocloud", json={})
    assert wrong_provider.status_code == 404


@pytest.mark.parametrize("form", [False, True], ids=["json", "form"])
async def test_cryptocloud_postback_is_trusted_only_after_rereading_the_invoice(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter, form: bool
) -> None:
    bot = await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)
    token = cc_token(cryptocloud.secret_key, invoice["uuid"])

    # The body claims "paid" but the provider still says "created": nothing changes.
    lie = await post_cc(bot, invoice, token, claimed_status="paid", form=form)
    assert lie.status_code == 200
    await bot.notifier.flush()
    assert "waiting for payment" in current(telegram, card).text
    assert not notifications(telegram, merchant, "✅")

    cryptocloud.set_status(invoice["uuid"], "paid")
    truth = await post_cc(bot, invoice, token, claimed_status="paid", form=form)
    assert truth.status_code == 200
    await telegram.wait_for(lambda: notifications(telegram, merchant, "✅ Paid") or None)
    await post_cc(bot, invoice, token, claimed_status="paid", form=form)  # a duplicate
    await bot.notifier.flush()
    assert len(notifications(telegram, merchant, "✅ Paid")) == 1
    assert "Status: paid" in current(telegram, card).text


async def test_cryptocloud_partial_payment_is_never_shown_as_paid(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)
    cryptocloud.set_status(invoice["uuid"], "partial")

    token = cc_token(cryptocloud.secret_key, invoice["uuid"])
    response = await post_cc(bot, invoice, token, claimed_status="paid", form=False)

    assert response.status_code == 200
    [told] = await telegram.wait_for(lambda: notifications(telegram, merchant, "⚠️") or None)
    assert "NOT paid yet" in told.text
    shown = current(telegram, card).text
    assert "Status: partly paid" in shown and "Status: paid" not in shown
    assert card.button("pay link")  # the customer can still top up
    await merchant.reply(f"/invoice {invoice['order_id']}")
    # The details, not whatever came last: the list of invoices needing attention (a partly
    # paid one is listed to its merchant) may arrive just after them.
    details = merchant.newest("· Status:")
    assert "· Status: partly paid" in details.text


async def test_forged_cryptocloud_tokens_are_refused(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud, "First")
    _, other = await cc_invoice_card(telegram, merchant, cryptocloud, "Second")
    cryptocloud.set_status(invoice["uuid"], "paid")
    secret = cryptocloud.secret_key

    tokens = {
        "wrong secret": cc_token("not-the-secret-key-0123456789abcdef0123456789", invoice["uuid"]),
        "expired": cc_token(secret, invoice["uuid"], expires_in=-60),
        "other invoice": cc_token(secret, other["uuid"]),
        "alg swapped": cc_token(secret, invoice["uuid"], algorithm="HS512"),
        "alg none": cc_token_none(invoice["uuid"]),
    }
    answers = {
        name: (await post_cc(bot, invoice, token, claimed_status="paid", form=False)).status_code
        for name, token in tokens.items()
    }

    assert answers == dict.fromkeys(tokens, 401)
    async with httpx.AsyncClient() as client:
        malformed = await client.post(
            f"{bot_url(bot)}/callbacks/cryptocloud",
            content=b"\xff\xfe",
            headers={"Content-Type": "application/json"},
        )
    assert malformed.status_code == 400
    await bot.notifier.flush()
    assert "waiting for payment" in current(telegram, card).text


def cc_token_none(invoice_id: str) -> str:
    """An unsigned token ("alg": "none") that a lax verifier would accept."""

    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return (
        f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({'id': invoice_id[4:], 'exp': 9999999999})}."
    )


async def test_missed_cryptocloud_postback_is_caught_by_reconciliation(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud, reconcile_interval_seconds=0.3)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)

    cryptocloud.set_status(invoice["uuid"], "overpaid")  # and the postback never arrives

    await telegram.wait_for(lambda: notifications(telegram, merchant, "✅ Paid with more") or None)
    assert "Status: overpaid" in current(telegram, card).text
    info_calls = [r for r in cryptocloud.requests if r.path == "/v2/invoice/merchant/info"]
    assert all(len(r.json()["uuids"]) <= 100 for r in info_calls)


async def test_cancel_button_and_command_follow_the_rules(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud, "To cancel")

    asked = await merchant.click(card, "Cancel invoice")  # asks first: the link dies for good
    assert [b.text for b in asked.buttons()] == ["✖️ Yes, cancel it", "↩️ Keep it"]
    kept = await merchant.click(asked, "Keep it")
    assert kept.button("Cancel invoice")  # nothing happened, the card is as it was
    assert cryptocloud.invoices[invoice["uuid"]]["status"] == "created"
    asked = await merchant.click(kept, "Cancel invoice")
    await merchant.press(asked.button("Yes, cancel it"), asked)
    await telegram.wait_for(lambda: "Status: cancelled" in current(telegram, card).text or None)
    assert cryptocloud.invoices[invoice["uuid"]]["status"] == "canceled"
    assert [b.text for b in current(telegram, card).buttons()] == [
        "🔁 New invoice for this customer"
    ]
    assert any("cancelled" in (a.get("text") or "") for a in merchant.answers())

    card2, paid = await cc_invoice_card(telegram, merchant, cryptocloud, "Already paid")
    cryptocloud.set_status(paid["uuid"], "partial")
    question = await merchant.reply(f"/cancel_invoice {paid['order_id']}")
    assert "Cancel invoice #2" in question.text
    answered = len(merchant.answers())
    await merchant.press(question.button("Yes, cancel it"), question)
    await telegram.wait_for(lambda: len(merchant.answers()) > answered or None)
    assert "refused to cancel" in (merchant.answers()[-1].get("text") or "")
    assert cryptocloud.invoices[paid["uuid"]]["status"] == "partial"
    await merchant.send(f"/refresh {paid['order_id']}")
    await telegram.wait_for(
        lambda: (
            any(
                "Updated from the provider" in m.text
                for m in telegram.chat_messages(merchant.chat_id)
            )
            or None
        )
    )
    await telegram.wait_for(lambda: "partly paid" in current(telegram, card2).text or None)


async def test_cryptoprocessing_cannot_be_refreshed_but_stale_timers_are_flagged(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(
        cryptoprocessing, cryptoprocessing_invoice_timer=True, reconcile_interval_seconds=0.2
    )
    merchant, admin = telegram.user(MERCHANT_ID), telegram.user(ADMIN_ID)
    card, invoice = await cp_invoice_card(telegram, merchant, cryptoprocessing)
    answer = await merchant.reply(f"/refresh {invoice['foreign_id']}")
    assert "cannot be asked" in answer.text

    # Its 15-minute timer ran out long ago and no final callback came.
    await age_invoice(bot, invoice["foreign_id"], minutes=60)

    def alerts() -> list[BotMessage]:
        return [m for m in telegram.chat_messages(admin.chat_id) if "timer passed" in m.text]

    await telegram.wait_for(lambda: alerts() or None)
    await asyncio.sleep(1.0)  # several more reconciliation rounds
    assert len(alerts()) == 1  # flagged once
    assert "waiting for payment" in current(telegram, card).text  # not silently failed
    details = await admin.reply(f"/invoice {invoice['foreign_id']}")
    assert "Flagged for an admin" in details.text and "Needs a check: timer passed" in details.text
