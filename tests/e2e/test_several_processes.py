"""Several bot processes, one bot, one PostgreSQL: what a merchant sees when a process dies.

Polling: one process polls, the other stands by and takes over within seconds of a SIGKILL,
and the conversation goes on with every answer taken once. Webhook: every process takes
deliveries, and one chat's updates are handled in order whichever process got them. Payment
callbacks and reconciliation on both processes tell the merchant once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa

from bench.crash import BotProcess, bot_environment, free_port
from bot.app import BotRuntime
from bot.cluster import Coordinator, InboxDispatcher, asyncpg_connect_args
from storage.coordination import ProcessRegistry, UpdateInbox
from storage.engine import create_engine, create_session_factory, migrate
from tests.conftest import MERCHANT_ID, POSTGRES_DATA_KEY, BotStarter
from tests.e2e.flows import confirm, current, fill_basics
from tests.e2e.payments import bot_url, cc_invoice_card, cc_token, post_cc
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram

pytestmark = pytest.mark.postgres(only=True)

SECRET = "webhook-secret-0123456789"
QUESTIONS = ("first name?", "last name?", "date of birth?", "email?")


async def _health(client: httpx.AsyncClient, port: int) -> dict[str, Any]:
    response = await client.get(f"http://127.0.0.1:{port}/healthz")
    data: dict[str, Any] = response.json()
    return data


def _asked_once(telegram: FakeTelegram) -> None:
    """Each of the payer's questions was asked exactly once: no answer taken twice."""
    texts = [m.text for m in telegram.chat_messages(MERCHANT_ID)]
    for question in QUESTIONS:
        assert sum(question in text for text in texts) == 1, (question, texts)


async def test_the_standby_takes_over_polling_when_the_poller_is_killed(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    database_url: str,
) -> None:
    bots = []
    for name in ("a", "b"):
        workdir, port = tmp_path / name, free_port()
        workdir.mkdir()
        env = bot_environment(telegram, cryptoprocessing, workdir, port, [MERCHANT_ID])
        env |= {"DATABASE_URL": database_url, "DATA_KEY": POSTGRES_DATA_KEY,
                "RECONCILE_INTERVAL_SECONDS": "0"}  # fmt: skip
        bots.append(BotProcess("exec", env, workdir, port))
    first, second = bots
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2) as client:
            await first.start()
            await first.wait_ready()
            assert (await _health(client, first.port))["role"] == "poller"
            await second.start()
            await second.wait_ready()
            assert (await _health(client, second.port))["role"] == "standby"

            merchant = telegram.user(MERCHANT_ID)
            question = await fill_basics(merchant, "10", "EUR", "Failover")
            await merchant.click(question, "Natural person")
            # The poller dies with an answer just sent: stored or not, handled or not.
            await merchant.send("Ada")
            first.kill()
            killed = time.monotonic()
            await first.reap()

            async def polling() -> bool | None:
                return (await _health(client, second.port))["role"] == "poller" or None

            for _ in range(200):
                if await polling():
                    break
                await asyncio.sleep(0.05)
            takeover = time.monotonic() - killed
            print(f"standby took over polling {takeover:.2f} s after the SIGKILL")  # noqa: T201
            assert takeover < 10, f"takeover took {takeover:.1f} s"

            await telegram.wait_for(
                lambda: [m for m in merchant_messages(telegram) if "last name?" in m.text] or None,
                timeout=15,
            )
            await merchant.reply("Lovelace")
            await merchant.reply("1990-12-10")
            preview = await merchant.reply("payer@example.org")
            card = await confirm(telegram, merchant, preview)
    finally:
        for bot in bots:
            await bot.close()

    assert "A. L…ce" in card.text and len(cryptoprocessing.invoices) == 1
    _asked_once(telegram)


def merchant_messages(telegram: FakeTelegram) -> list[BotMessage]:
    return telegram.chat_messages(MERCHANT_ID)


async def _deliver(client: httpx.AsyncClient, bot: BotRuntime, update: dict[str, Any]) -> None:
    response = await client.post(
        f"{bot_url(bot)}/telegram",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
    )
    assert response.status_code == 200


async def test_webhook_processes_keep_each_chats_order(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    a = await start_bot(cryptoprocessing, telegram_mode="webhook", telegram_webhook_secret=SECRET)
    b = await start_bot(cryptoprocessing, telegram_mode="webhook", telegram_webhook_secret=SECRET)
    merchant = telegram.user(MERCHANT_ID)
    async with httpx.AsyncClient(timeout=5) as client:
        health = [(await client.get(f"{bot_url(bot)}/healthz")).json() for bot in (a, b)]
        assert [h["role"] for h in health] == ["webhook", "webhook"]

        async def burst(*texts: str) -> None:
            """Texts delivered back to back, alternately to each process, without waiting."""
            for i, text in enumerate(texts):
                await _deliver(client, (a, b)[i % 2], telegram.update(await merchant.send(text)))

        async def press(message: BotMessage, label: str, bot: BotRuntime) -> None:
            update_id = await merchant.press(message.button(label), message)
            await _deliver(client, bot, telegram.update(update_id))

        def asked(word: str) -> BotMessage | None:
            """The bot's last message, once it is the question containing `word`."""
            messages = telegram.chat_messages(MERCHANT_ID)
            return messages[-1] if messages and word in messages[-1].text else None

        await burst("/new", "250")
        currency = await telegram.wait_for(lambda: asked("Which currency?"))
        await press(currency, "EUR", a)
        await telegram.wait_for(lambda: asked("Title the customer will see"))
        await burst("Consulting")
        customer = await telegram.wait_for(lambda: asked("natural person or a legal entity"))
        await press(customer, "Natural person", b)
        await telegram.wait_for(lambda: asked("first name?"))
        await burst("Ada", "Lovelace", "1990-12-10", "payer@example.org")
        preview = await telegram.wait_for(lambda: asked("Check the invoice"))
        # Order kept across processes: each answer went to its own question.
        assert "Ada Lovelace, born 1990-12-10" in preview.text
        assert "payer@example.org" in preview.text
        _asked_once(telegram)

        # Confirm pressed twice, each press to another process at once: one invoice.
        first = await merchant.press(preview.buttons()[0], preview)
        second = await merchant.press(preview.buttons()[0], preview)
        await asyncio.gather(
            _deliver(client, a, telegram.update(first)),
            _deliver(client, b, telegram.update(second)),
        )
        card = await telegram.wait_for(
            lambda: card if "Invoice #1" in (card := current(telegram, preview)).text else None
        )
    assert len(cryptoprocessing.invoices) == 1
    assert "Invoice #1" in card.text

    # What the merchant typed (a payer's name, their date of birth) does not stay in the
    # inbox once handled: only the update ids do, to recognise a re-send.
    async def kept() -> int:
        async with a.engine.connect() as connection:
            query = sa.text("SELECT count(*) FROM telegram_update WHERE payload <> ''")
            return int((await connection.execute(query)).scalar() or 0)

    for _ in range(50):
        if await kept() == 0:
            break
        await asyncio.sleep(0.1)
    assert await kept() == 0


async def test_callbacks_and_reconciliation_on_two_processes_are_told_once(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    a = await start_bot(cryptocloud, reconcile_interval_seconds=0.3)
    b = await start_bot(cryptocloud, reconcile_interval_seconds=0.3)
    merchant = telegram.user(MERCHANT_ID)
    card, invoice = await cc_invoice_card(telegram, merchant, cryptocloud)

    # The provider reports the payment to both processes, and reconciliation on the leader
    # sees it too.
    cryptocloud.set_status(invoice["uuid"], "paid")
    token = cc_token(cryptocloud.secret_key, invoice["uuid"])
    responses = await asyncio.gather(
        post_cc(a, invoice, token, claimed_status="paid", form=False),
        post_cc(b, invoice, token, claimed_status="paid", form=False),
    )
    assert [r.status_code for r in responses] == [200, 200]
    await telegram.wait_for(lambda: "Status: paid" in current(telegram, card).text or None)

    def paid() -> list[BotMessage]:
        return [m for m in telegram.chat_messages(MERCHANT_ID) if m.text.startswith("✅ Paid")]

    await telegram.wait_for(lambda: paid() or None)
    await asyncio.sleep(1.0)  # several reconciliation rounds and sweeps of both processes
    assert len(paid()) == 1

    async with a.engine.connect() as connection:
        leaders = (
            await connection.execute(sa.text("SELECT count(*) FROM bot_process WHERE leader"))
        ).scalar()
    assert leaders == 1


async def test_a_chat_is_never_handled_twice_at_once_when_a_coordination_link_drops(
    database_url: str,
) -> None:
    """Process A is in the middle of an update (a slow provider call) when PostgreSQL drops
    its coordination connection, and with it A's chat lock. B, still seeing A heartbeat,
    leaves the update alone until A finishes it: it is handled once."""
    engine = create_engine(database_url)
    await migrate(engine, POSTGRES_DATA_KEY)
    sessions = create_session_factory(engine)
    inbox, registry = UpdateInbox(sessions, notify=True), ProcessRegistry(sessions)
    await inbox.store(1, 42, json.dumps({"update_id": 1}))
    runs: list[tuple[str, int]] = []
    running: list[str] = []
    overlaps: list[str] = []

    def handler(name: str) -> Callable[[dict[str, Any]], Awaitable[None]]:
        async def handle(payload: dict[str, Any]) -> None:
            overlaps.extend(running)
            running.append(name)
            runs.append((name, payload["update_id"]))
            await asyncio.sleep(3)  # a provider call
            running.remove(name)

        return handle

    async def heartbeats() -> None:
        while True:
            for name in ("A", "B"):
                await registry.beat(name, "webhook", False)
            await asyncio.sleep(1)

    async def no_leadership(_leader: bool) -> None:
        return None

    beating = asyncio.create_task(heartbeats())
    a = Coordinator(database_url, on_notification=lambda _: None, on_leadership=no_leadership)
    b = Coordinator(database_url, on_notification=lambda _: None, on_leadership=no_leadership)
    dispatchers = []
    try:
        await a.start()
        dispatchers.append(InboxDispatcher(inbox, a, handler("A"), "A"))
        dispatchers[-1].start()
        await asyncio.sleep(0.5)
        assert runs == [("A", 1)]
        await b.start()
        dispatchers.append(InboxDispatcher(inbox, b, handler("B"), "B"))
        dispatchers[-1].start()
        dsn, extra = asyncpg_connect_args(database_url)
        admin = await asyncpg.connect(dsn, **extra)
        assert a.server_pid is not None
        await admin.execute("SELECT pg_terminate_backend($1)", a.server_pid)
        await admin.close()
        await asyncio.sleep(5)
    finally:
        for dispatcher in dispatchers:
            await dispatcher.stop()
        await a.stop()
        await b.stop()
        beating.cancel()
        await engine.dispose()
    assert runs == [("A", 1)] and overlaps == []
