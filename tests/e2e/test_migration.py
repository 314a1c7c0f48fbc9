"""Conversations in flight survive the upgrade to the step table (migration 0004).

The database is made the way the previous release left it: the schema at revision 0003, drafts
written with the old drafts service's payload format (Decimal as text, dates ISO, sender type
"natural"/"legal", `editing`, `extra.step`), the positional states of PTB's
ConversationHandler in `conversation_state` (key `[chat_id, user_id]`, state 0..11), and the
messages that release had sent to the merchants still in their chats. Then the real bot starts
on it (start-up migrates to head) and each merchant carries on from where they were.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import BotRuntime
from storage.engine import alembic_config, create_engine
from storage.sealing import Sealer
from tests.conftest import MERCHANT_ID, OTHER_MERCHANT_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, current
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram

THIRD_MERCHANT_ID = 1003
MERCHANTS = f"{MERCHANT_ID},{OTHER_MERCHANT_ID},{THIRD_MERCHANT_ID}"
GROUP_CHAT_ID = -1001234567890  # a group where OTHER_MERCHANT_ID had started an invoice
STRANGER_CHAT_ID = 1004  # someone with a conversation state but no draft

# The old ConversationHandler's states, in their positional order (HEAD~3 new_invoice.py).
OLD_STATES = (
    "amount", "currency", "title", "customer", "sender_type", "first_name", "last_name",
    "birth_date", "legal_name", "country", "email", "preview",
)  # fmt: skip
STALE_BUTTON = "This button belongs to an older message."


def _state(name: str) -> str:
    """A state as the old persistence stored it: the JSON of its position."""
    return json.dumps(OLD_STATES.index(name))


def _key(chat_id: int, user_id: int) -> str:
    """A conversation key as the old persistence stored it: `[chat_id, user_id]`."""
    return json.dumps([chat_id, user_id], separators=(",", ":"))


def _old_payload(**fields: Any) -> str:
    """A draft's payload as the old drafts service wrote it (every slot, in slot order)."""
    data: dict[str, Any] = {
        "amount": None, "currency": None, "title": None, "customer_id": None,
        "sender_type": None, "first_name": None, "last_name": None, "date_of_birth": None,
        "legal_name": None, "country_alpha3": None, "email": None, "editing": False,
        "extra": {},
    }  # fmt: skip
    unknown = fields.keys() - data.keys()
    assert not unknown, unknown
    data |= fields
    return json.dumps(data, ensure_ascii=False)


def _sql_time(moment: dt.datetime) -> str:
    """A UTCDateTime as SQLAlchemy's SQLite dialect stores it: naive UTC text."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


@dataclass(frozen=True)
class OldRelease:
    """What the previous release left behind."""

    last_name: str  # (a) natural person, first name given, asked for the last name
    payer_kind: str  # (b) no extra.step, only the conversation state: sender_type
    preview: str  # (c) at the preview, `editing` still true, preview revision 3
    cancelled: str  # (d) an older draft of (a)'s merchant, cancelled
    group: str  # an open draft in a group chat, no extra.step, state title
    group_kind: str  # an open draft in a group chat, extra.step = "sender_type"
    preview_rev: str = "3"


def _upgrade_to_0003(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "0003")


async def build_previous_release_database(database_url: str) -> OldRelease:
    """Schema at 0003 plus rows written with plain SQL as the previous release wrote them."""
    old = OldRelease(
        last_name=secrets.token_hex(8),
        payer_kind=secrets.token_hex(8),
        preview=secrets.token_hex(8),
        cancelled=secrets.token_hex(8),
        group=secrets.token_hex(8),
        group_kind=secrets.token_hex(8),
    )
    now = dt.datetime.now(dt.UTC)
    minutes_ago = _sql_time(now - dt.timedelta(minutes=2))
    drafts = [
        {
            "id": old.cancelled, "merchant_id": MERCHANT_ID, "chat_id": MERCHANT_ID,
            "state": "cancelled",
            "payload": _old_payload(
                amount="5", extra={"locale": "en", "step": "currency"}
            ),
            "created_at": _sql_time(now - dt.timedelta(hours=3)),
            "updated_at": _sql_time(now - dt.timedelta(hours=2)),
        },
        {
            "id": old.last_name, "merchant_id": MERCHANT_ID, "chat_id": MERCHANT_ID,
            "state": "open",
            "payload": _old_payload(
                amount="250.00", currency="EUR", title="Consulting", sender_type="natural",
                first_name="Ada", extra={"locale": "en", "step": "last_name"},
            ),
            "created_at": minutes_ago, "updated_at": minutes_ago,
        },
        {
            # Written before `extra.step` existed: only the conversation state says where.
            "id": old.payer_kind, "merchant_id": OTHER_MERCHANT_ID, "chat_id": OTHER_MERCHANT_ID,
            "state": "open",
            "payload": _old_payload(
                amount="1234.5", currency="USD", title="Hosting", extra={"locale": "en"}
            ),
            "created_at": minutes_ago, "updated_at": minutes_ago,
        },
        {
            "id": old.group, "merchant_id": OTHER_MERCHANT_ID, "chat_id": GROUP_CHAT_ID,
            "state": "open",
            "payload": _old_payload(amount="10", currency="EUR", extra={"locale": "en"}),
            "created_at": minutes_ago, "updated_at": minutes_ago,
        },
        {
            "id": old.group_kind, "merchant_id": THIRD_MERCHANT_ID, "chat_id": GROUP_CHAT_ID,
            "state": "open",
            "payload": _old_payload(
                amount="20", currency="USD", title="Support",
                extra={"locale": "en", "step": "sender_type"},
            ),
            "created_at": minutes_ago, "updated_at": minutes_ago,
        },
        {
            # The merchant chose Edit → a field, then the preview came back after a crash:
            # `editing` was left true.
            "id": old.preview, "merchant_id": THIRD_MERCHANT_ID, "chat_id": THIRD_MERCHANT_ID,
            "state": "open",
            "payload": _old_payload(
                amount="99.90", currency="EUR", title="Annual licence", sender_type="natural",
                first_name="Friedrich", last_name="Müller", date_of_birth="1995-08-17",
                email="friedrich@example.com", editing=True,
                extra={"locale": "en", "step": "preview", "rev": old.preview_rev},
            ),
            "created_at": minutes_ago, "updated_at": minutes_ago,
        },
    ]  # fmt: skip
    states = [
        (_key(MERCHANT_ID, MERCHANT_ID), _state("last_name")),
        (_key(OTHER_MERCHANT_ID, OTHER_MERCHANT_ID), _state("sender_type")),
        (_key(GROUP_CHAT_ID, OTHER_MERCHANT_ID), _state("title")),
        (_key(GROUP_CHAT_ID, THIRD_MERCHANT_ID), _state("sender_type")),
        (_key(THIRD_MERCHANT_ID, THIRD_MERCHANT_ID), _state("preview")),
        (_key(STRANGER_CHAT_ID, STRANGER_CHAT_ID), _state("title")),  # no draft at all
        (_key(-100999, MERCHANT_ID), _state("currency")),  # a group of (a)'s merchant, no draft
    ]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade_to_0003)
            await connection.execute(
                sa.text(
                    "INSERT INTO draft (id, merchant_id, chat_id, state, payload, created_at, "
                    "updated_at) VALUES (:id, :merchant_id, :chat_id, :state, :payload, "
                    ":created_at, :updated_at)"
                ),
                drafts,
            )
            await connection.execute(
                sa.text(
                    "INSERT INTO conversation_state (name, key, state, updated_at) "
                    "VALUES ('new_invoice', :key, :state, :updated_at)"
                ),
                [{"key": key, "state": state, "updated_at": minutes_ago} for key, state in states],
            )
        async with engine.connect() as connection:
            version = await connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert version.scalar_one() == "0003"
    finally:
        await engine.dispose()
    return old


async def send_as_previous_release(
    telegram: FakeTelegram, chat_id: int, text: str, buttons: list[list[tuple[str, str]]]
) -> BotMessage:
    """A message the previous release sent (over the Bot API), still in the merchant's chat."""
    markup = {
        "inline_keyboard": [
            [{"text": label, "callback_data": data} for label, data in row] for row in buttons
        ]
    }
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{telegram.base_url}{telegram.token}/sendMessage",
            json={"chat_id": chat_id, "text": text, "parse_mode": "HTML", "reply_markup": markup},
        )
    body = response.json()
    assert body["ok"], body
    message_id = body["result"]["message_id"]
    return next(m for m in telegram.chat_messages(chat_id) if m.message_id == message_id)


async def old_sender_type_question(telegram: FakeTelegram, draft_id: str) -> BotMessage:
    """The old release's SENDER_TYPE question (render.sender_type_keyboard, `st` buttons)."""
    return await send_as_previous_release(
        telegram,
        OTHER_MERCHANT_ID,
        "👤 Is the payer a natural person or a legal entity?",
        [[("Natural person", f"{draft_id}|st|natural"), ("Legal entity", f"{draft_id}|st|legal")]],
    )


async def old_preview(telegram: FakeTelegram, old: OldRelease) -> BotMessage:
    """The old release's preview card of draft (c), Confirm bound to revision 3."""
    return await send_as_previous_release(
        telegram,
        THIRD_MERCHANT_ID,
        "<b>Check the invoice</b>\n\n<b>Amount:</b> 99.90 EUR\n<b>Title:</b> Annual licence\n"
        "<b>Customer:</b>\nFriedrich Müller, born 1995-08-17\n"
        "<b>Email:</b> friedrich@example.com\n\nConfirm to create it at the payment provider.",
        [
            [("✅ Confirm", f"{old.preview}|confirm|{old.preview_rev}")],
            [("✏️ Edit", f"{old.preview}|edit|"), ("✖️ Cancel", f"{old.preview}|cancel|")],
        ],
    )


async def _start_upgraded(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> tuple[OldRelease, BotRuntime]:
    """The previous release's database, then the new release started on it (it migrates)."""
    old = await build_previous_release_database(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    runtime = await start_bot(cryptoprocessing, merchant_ids=MERCHANTS)
    return old, runtime


async def _rows(engine: AsyncEngine, sql: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        return [tuple(row) for row in await connection.execute(sa.text(sql))]


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


# --- the tests ----------------------------------------------------------------------------------


async def test_the_upgrade_keeps_each_conversations_step(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> None:
    old, runtime = await _start_upgraded(tmp_path, telegram, cryptoprocessing, start_bot)

    [(version,)] = await _rows(runtime.engine, "SELECT version_num FROM alembic_version")
    assert version == _head()
    tables = await _rows(
        runtime.engine, "SELECT name FROM sqlite_master WHERE name = 'conversation_state'"
    )
    assert tables == [], "migration 0004 must drop conversation_state"
    rows = {
        draft_id: (state, step, json.loads(payload))
        for draft_id, state, step, payload in await _rows(
            runtime.engine, "SELECT id, state, step, payload FROM draft"
        )
    }
    steps = {draft_id: (state, step) for draft_id, (state, step, _) in rows.items()}
    assert steps == {
        old.last_name: ("open", "last_name"),  # from extra.step
        old.payer_kind: ("open", "customer"),  # from the positional state 4, renamed
        old.group: ("open", "title"),  # state of key [group chat, merchant]
        old.group_kind: ("open", "customer"),  # extra.step sender_type, renamed
        old.preview: ("open", "preview"),  # from extra.step
        old.cancelled: ("cancelled", "amount"),  # closed drafts are left alone
    }
    preview = rows[old.preview][2]
    assert "editing" not in preview  # the old edit flag is gone with the flow that used it
    assert preview["extra"]["rev"] == old.preview_rev  # so the old preview's Confirm still fits
    assert preview["amount"] == "99.90" and "email" not in preview  # sealed (0006)
    personal = Sealer(runtime.data_key).open(preview["sealed"], f"draft:{old.preview}")
    assert personal["email"] == "friedrich@example.com"
    assert rows[old.cancelled][2]["extra"] == {"locale": "en", "step": "currency"}
    # Nothing was acted on by the start-up itself.
    assert cryptoprocessing.create_calls == 0
    assert await _rows(runtime.engine, "SELECT id FROM invoice") == []


async def test_conversations_in_flight_finish_after_the_upgrade(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> None:
    merchant_a = telegram.user(MERCHANT_ID)
    merchant_b = telegram.user(OTHER_MERCHANT_ID, "Bob")
    merchant_c = telegram.user(THIRD_MERCHANT_ID, "Carol")
    old, runtime = await _start_upgraded(tmp_path, telegram, cryptoprocessing, start_bot)
    old_preview_card = await old_preview(telegram, old)

    # (a) The last name was being asked: typing it goes on to the date of birth.
    question = await merchant_a.reply("Lovelace")
    assert "date of birth" in question.text, question.text
    question = await merchant_a.reply("1990-12-10")
    assert "email" in question.text.lower(), question.text
    preview_a = await merchant_a.reply("payer@example.org")
    assert "Check the invoice" in preview_a.text and "Ada Lovelace" in preview_a.text
    card_a = await confirm(telegram, merchant_a, preview_a)
    assert "waiting for payment" in card_a.text and "Consulting" in card_a.text

    # (b) The payer's kind was being asked: anything typed asks who pays again, with buttons.
    question = await merchant_b.reply("hello?")
    assert "natural person or a legal entity" in question.text, question.text
    preview_b = await add_natural_person(
        merchant_b, question, "Friedrich", "Müller", "17.08.1995", "payer@example.org"
    )
    assert "Check the invoice" in preview_b.text and "Friedrich Müller" in preview_b.text
    card_b = await confirm(telegram, merchant_b, preview_b)
    assert "waiting for payment" in card_b.text and "Hosting" in card_b.text

    # (c) At the preview: the Confirm the previous release sent creates the invoice.
    card_c = await confirm(telegram, merchant_c, old_preview_card)
    assert "waiting for payment" in card_c.text and "Annual licence" in card_c.text

    by_title: dict[str, list[dict[str, Any]]] = {}
    for invoice in cryptoprocessing.invoices.values():
        by_title.setdefault(invoice["request"]["title"], []).append(invoice)
    assert sorted(by_title) == ["Annual licence", "Consulting", "Hosting"]
    assert all(len(invoices) == 1 for invoices in by_title.values()), by_title
    assert cryptoprocessing.create_calls == 3
    [request_a] = [i["request"] for i in by_title["Consulting"]]
    assert (Decimal(str(request_a["amount"])), request_a["currency"]) == (Decimal(250), "EUR")
    assert request_a["sender_data"]["first_name"] == "Ada"
    assert request_a["sender_data"]["last_name"] == "Lovelace"
    [request_b] = [i["request"] for i in by_title["Hosting"]]
    assert (request_b["sender_type"], request_b["currency"]) == ("natural", "USD")
    [request_c] = [i["request"] for i in by_title["Annual licence"]]
    assert request_c["email_user"] == "friedrich@example.com"
    assert request_c["sender_data"]["date_of_birth"] == "1995-08-17"

    invoices = await _rows(
        runtime.engine, "SELECT draft_id, outcome FROM invoice ORDER BY draft_id"
    )
    assert sorted(invoices) == sorted(
        [(old.last_name, "created"), (old.payer_kind, "created"), (old.preview, "created")]
    )
    states = {row[0]: row[1] for row in await _rows(runtime.engine, "SELECT id, state FROM draft")}
    assert states == {
        old.last_name: "submitted", old.payer_kind: "submitted", old.preview: "submitted",
        old.group: "open", old.group_kind: "open", old.cancelled: "cancelled",
    }  # fmt: skip


async def test_a_second_press_on_the_old_preview_makes_no_second_invoice(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> None:
    merchant_c = telegram.user(THIRD_MERCHANT_ID, "Carol")
    old, _ = await _start_upgraded(tmp_path, telegram, cryptoprocessing, start_bot)
    card = await old_preview(telegram, old)
    stale_copy = card  # as the merchant's other device still shows it

    await confirm(telegram, merchant_c, card)
    answered = len(merchant_c.answers())
    await merchant_c.press(stale_copy.button("Confirm"), stale_copy)
    await telegram.wait_for(lambda: len(merchant_c.answers()) > answered)

    assert cryptoprocessing.create_calls == 1
    assert len(cryptoprocessing.invoices) == 1


async def test_the_old_payer_kind_buttons_still_work_after_the_upgrade(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> None:
    merchant_b = telegram.user(OTHER_MERCHANT_ID, "Bob")
    old, _ = await _start_upgraded(tmp_path, telegram, cryptoprocessing, start_bot)
    question = await old_sender_type_question(telegram, old.payer_kind)
    answered = len(merchant_b.answers())

    await merchant_b.press(question.button("Natural person"), question)
    await telegram.wait_for(lambda: len(merchant_b.answers()) > answered)

    # The kind is part of the customer step now; the old button still counts there.
    assert merchant_b.answers()[-1].get("text") != STALE_BUTTON
    asked = await telegram.wait_for(
        lambda: "first name" in current(telegram, question).text.lower() or None
    )
    assert asked
