"""Payers' personal data: kept in a draft only while it is open, masked on every card."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from bot.app import BotRuntime
from storage.engine import create_session_factory
from storage.models import DraftRow
from storage.repositories import DraftRepository
from tests.conftest import ADMIN_ID, MERCHANT_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, fill_basics
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
    assert state == "open" and "Lovelace" in payload  # needed while the draft is open

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
