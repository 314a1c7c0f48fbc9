"""Payers' personal data: sealed at rest, kept only while needed, masked wherever it is shown,
erased on request (/forget) or after the retention period."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from sqlalchemy import text
from sqlmodel import col, update

from bot.app import BotRuntime
from bot.handlers.callback_data import CustomerButton
from bot.services.customers import DataKeyMismatch
from storage.engine import create_engine, create_session_factory
from storage.models import CustomerRow, DraftRow, InvoiceRow
from storage.repositories import DraftRepository
from tests.conftest import ADMIN_ID, MERCHANT_ID, OTHER_MERCHANT_ID, STRANGER_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, current, fill_basics
from tests.e2e.payments import send_cp
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

PERSONAL = ("Ada", "Lovelace", "1990-12-10", "payer@example.org")


async def _draft_payloads(bot: BotRuntime) -> dict[str, tuple[str, str]]:
    async with bot.engine.connect() as connection:
        rows = await connection.execute(text("SELECT id, state, payload FROM draft"))
        return {row[0]: (row[1], row[2]) for row in rows}


async def _preview(merchant: FakeUser) -> BotMessage:
    question = await fill_basics(merchant, "10", "EUR", "Lessons")
    return await add_natural_person(merchant, question, *PERSONAL)


@pytest.mark.parametrize("how", ["submit", "cancel", "new", "timeout"])
async def test_a_closed_draft_keeps_no_personal_data(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter, how: str
) -> None:
    timeout = 1 if how == "timeout" else 600
    bot = await start_bot(cryptoprocessing, conversation_timeout_seconds=timeout)
    merchant = telegram.user(MERCHANT_ID)
    preview = await _preview(merchant)
    [(state, payload)] = (await _draft_payloads(bot)).values()
    assert state == "open" and json.loads(payload)["sealed"].startswith("v1.")  # kept, sealed
    assert not [value for value in PERSONAL if value in payload]

    if how == "submit":
        await confirm(telegram, merchant, preview)
    elif how == "cancel":
        await merchant.reply("/cancel")
    elif how == "new":
        await merchant.reply("/new")
    else:
        await telegram.wait_for(lambda: "long pause" in merchant.last_message().text or None)

    closed = [p for s, p in (await _draft_payloads(bot)).values() if s != "open"]
    assert len(closed) == 1
    assert not [value for value in PERSONAL if value in closed[0]], closed[0]
    assert json.loads(closed[0])["title"] == "Lessons"  # the order itself stays


async def test_the_sweep_scrubs_drafts_closed_by_an_older_version(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    payload = json.dumps({"first_name": "Ada", "last_name": "Lovelace", "title": "Old"})
    await DraftRepository(create_session_factory(bot.engine)).start(
        DraftRow(id="c" * 16, merchant_id=MERCHANT_ID, chat_id=7, state="submitted",
                 payload=payload),
        scrub=lambda row: row.payload,
    )  # fmt: skip

    assert await bot.services.drafts.sweep_closed() == 1

    [(_, stored)] = (await _draft_payloads(bot)).values()
    assert "Lovelace" not in stored and "Old" in stored
    assert await bot.services.drafts.sweep_closed() == 0  # once


async def test_cards_and_details_show_a_masked_payer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant, admin = telegram.user(MERCHANT_ID), telegram.user(ADMIN_ID)
    card = await confirm(telegram, merchant, await _preview(merchant))

    details = await admin.reply("/invoice 1")
    for shown in (card.text, details.text):
        assert "A. L…ce, born 1990" in shown
        assert "Lovelace" not in shown and "1990-12-10" not in shown


# What must never be found in the database file as plaintext (long enough not to turn up by
# chance in random sealed bytes).
PLAINTEXT = ("Lovelace", "1990-12-10", "payer@example.org", "Babbage", "1815-12-10")


def _database_bytes(bot: BotRuntime) -> bytes:
    path = bot.settings.sqlite_path
    assert path is not None
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
    return b"".join(file.read_bytes() for file in files if file.exists())


async def _customer_rows(bot: BotRuntime) -> list[dict[str, object]]:
    async with bot.engine.connect() as connection:
        rows = await connection.execute(text("SELECT * FROM customer ORDER BY id"))
        return [dict(row._mapping) for row in rows]


async def test_the_database_file_holds_no_plaintext_personal_data(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    card = await confirm(telegram, merchant, await _preview(merchant))
    assert "A. L…ce" in card.text
    # The provider got the real data: sealing is for the disk, not for the provider.
    [sent] = cryptoprocessing.invoices.values()
    assert "Lovelace" in repr(sent)
    # A second invoice for the same payer while the first draft is closed.
    await confirm(telegram, merchant, await _preview(merchant))
    [row] = await _customer_rows(bot)  # recognised again: one customer, one reference
    assert str(row["sealed"]).startswith("v1.") and len(str(row["lookup_key"])) == 64

    await bot.stop()  # the last connection closing folds the write-ahead log into the file
    stored = _database_bytes(bot)
    assert b"Lessons" in stored  # the scan does see what is stored in plaintext
    found = [value for value in PLAINTEXT if value.encode() in stored]
    assert not found, f"plaintext personal data in the database file: {found}"

    key_file = bot.settings.sqlite_path.parent / "data.key"  # type: ignore[union-attr]
    assert key_file.stat().st_mode & 0o777 == 0o600


async def test_the_generated_key_is_kept_and_a_wrong_key_is_refused(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await confirm(telegram, merchant, await _preview(merchant))
    await bot.stop()

    again = await start_bot(cryptoprocessing)  # the same data.key: the customer is known
    picker = await fill_basics(merchant, "5", "EUR", "More lessons")
    assert any("Ada Lovelace · 1990" in b.text for b in picker.buttons())  # the owner's chat
    await again.stop()

    with pytest.raises(DataKeyMismatch, match="not the key"):
        await start_bot(cryptoprocessing, data_key="another-key-" + "x" * 32)


async def test_cards_lists_and_notices_show_a_masked_payer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing, notify_chat_id=ADMIN_ID)
    merchant, admin = telegram.user(MERCHANT_ID), telegram.user(ADMIN_ID)
    card = await confirm(telegram, merchant, await _preview(merchant))
    [invoice] = cryptoprocessing.invoices.values()
    response = await send_cp(
        bot, cryptoprocessing, invoice, "confirmed", received=("10", "EUR"), tx_ids=(1,)
    )
    assert response.status_code == 200
    await telegram.wait_for(lambda: "Received:" in current(telegram, card).text or None)

    shown = [
        current(telegram, card).text,
        (await merchant.reply("/invoices")).text,
        (await admin.reply("/invoices")).text,
        (await admin.reply("/invoice 1")).text,
        (await merchant.reply("/customers")).text,
        (await admin.reply("/customers")).text,
        *(m.text for m in telegram.chat_messages(ADMIN_ID)),  # NOTIFY_CHAT_ID copies too
        *(m.text for m in telegram.chat_messages(MERCHANT_ID) if "Paid" in m.text),
    ]
    assert "A. L…ce, born 1990" in shown[0] and "A. L…ce, born 1990" in shown[4]
    for message in shown:
        assert "Lovelace" not in message and "1990-12-10" not in message, message
        assert "payer@example.org" not in message, message


async def test_a_merchant_erases_a_customer_after_confirming(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await confirm(telegram, merchant, await _preview(merchant))

    listing = await merchant.reply("/customers")
    assert "#1 · A. L…ce, born 1990 · invoices: 1" in listing.text

    question = await merchant.reply("/forget 1")
    assert "Erase the data of customer #1 (A. L…ce, born 1990)?" in question.text
    kept = await merchant.click(question, "Keep it")
    assert "Nothing was erased" in kept.text
    assert (await _customer_rows(bot))[0]["sealed"] is not None

    question = await merchant.reply("/forget #1")
    done = await merchant.click(question, "Erase the data")
    assert "Erased: customer #1" in done.text
    [row] = await _customer_rows(bot)
    assert row["sealed"] is None and row["erased_at"] is not None
    assert str(row["lookup_key"]).startswith("erased:") and row["reference"]

    # Never offered again; the invoice log stays, without the payer.
    question = await fill_basics(merchant, "5", "EUR", "Again")
    assert "Natural person" in question.text or question.button("Natural person")
    assert not [b for b in question.buttons() if "Lovelace" in b.text]
    details = await merchant.reply("/invoice 1")
    assert "Lessons" in details.text and "L…ce" not in details.text
    assert "No customers yet" in (await merchant.reply("/customers")).text
    # A second press on the old button, or /forget again: already erased, said so.
    assert "already erased" in (await merchant.reply("/forget 1")).text
    anchor = await merchant.reply("/help")
    await merchant.press_data(CustomerButton("forget", 1).build(), anchor)
    await telegram.wait_for(lambda: "already erased" in current(telegram, anchor).text or None)


async def test_only_the_owner_or_an_admin_may_erase_a_customer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant, other = telegram.user(MERCHANT_ID), telegram.user(OTHER_MERCHANT_ID)
    stranger, admin = telegram.user(STRANGER_ID), telegram.user(ADMIN_ID)
    await confirm(telegram, merchant, await _preview(merchant))

    # Another merchant: the customer does not exist for them, by command or forged button.
    assert "No customer #1" in (await other.reply("/forget 1")).text
    assert "No customers yet" in (await other.reply("/customers")).text
    anchor = await other.reply("/help")
    await other.press_data(CustomerButton("forget", 1).build(), anchor)
    await telegram.wait_for(lambda: "No customer #1" in current(telegram, anchor).text or None)
    # Someone who is not configured at all is refused before anything is looked up.
    refused = await stranger.reply("/forget 1")
    assert "not allowed" in refused.text.lower() or str(STRANGER_ID) in refused.text
    assert (await _customer_rows(bot))[0]["sealed"] is not None

    # An admin sees every merchant's customers and may erase any of them.
    listing = await admin.reply("/customers")
    assert "#1 · A. L…ce, born 1990" in listing.text and str(MERCHANT_ID) in listing.text
    done = await admin.click(await admin.reply("/forget 1"), "Erase the data")
    assert "Erased: customer #1" in done.text
    assert (await _customer_rows(bot))[0]["sealed"] is None


async def test_the_retention_job_erases_customers_unused_for_that_long(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    bot = await start_bot(cryptoprocessing)
    merchant = telegram.user(MERCHANT_ID)
    await confirm(telegram, merchant, await _preview(merchant))  # customer 1: Ada
    question = await fill_basics(merchant, "7", "EUR", "Recent")
    preview = await add_natural_person(
        merchant, question, "Charles", "Babbage", "1985-12-26", "cb@example.org"
    )
    await confirm(telegram, merchant, preview)  # customer 2: recent, stays
    await bot.stop()
    # Move Ada's last invoice 40 days back (the data, not the bot's clock).
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    async with create_engine(bot.settings.database_url).begin() as connection:
        await connection.execute(
            update(CustomerRow).where(col(CustomerRow.id) == 1).values(last_used_at=past)
        )
        await connection.execute(
            update(InvoiceRow).where(col(InvoiceRow.customer_id) == 1).values(created_at=past)
        )

    bot = await start_bot(cryptoprocessing, personal_data_retention_days=30)

    async def erased() -> bool | None:
        rows = await _customer_rows(bot)
        return True if rows[0]["sealed"] is None else None

    for _ in range(100):  # the job's first run is two seconds after start
        if await erased():
            break
        await asyncio.sleep(0.1)
    rows = await _customer_rows(bot)
    assert rows[0]["sealed"] is None and rows[0]["erased_at"] is not None
    assert rows[1]["sealed"] is not None and rows[1]["erased_at"] is None
    listing = await merchant.reply("/customers")
    assert "#2 · C. B…ge, born 1985" in listing.text and "#1" not in listing.text
