"""How the providers talk back: signed callbacks and JWT postbacks, built as the docs show."""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any

import httpx
import jwt
from sqlalchemy import update
from sqlmodel import col

from bot.app import BotRuntime
from storage.models import InvoiceRow
from tests.e2e.flows import add_natural_person, confirm, fill_basics
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser


def bot_url(runtime: BotRuntime) -> str:
    return f"http://127.0.0.1:{runtime.http.port}"


def cp_callback(
    invoice: dict[str, Any],
    status: str,
    *,
    error: str = "",
    tx_ids: tuple[int, ...] = (),
    received: tuple[str, str] | None = None,
) -> bytes:
    """An invoice callback in the current documented shape (flat, type "invoice");
    `received` is (amount, currency) when it differs from the invoice's."""
    amount, currency = received or (invoice["amount"], invoice["currency"])
    body = {
        "id": invoice["id"],
        "foreign_id": invoice["foreign_id"],
        "end_user_reference": invoice["end_user_reference"],
        "type": "invoice",
        "crypto_address": {"id": 1, "currency": "BTC", "address": "tb1qexample", "tag": None},
        "currency_sent": {"currency": "BTC", "amount": "0.00150000", "remaining_amount": "0"},
        "currency_received": {"currency": currency, "amount": amount},
        "transactions": [_transaction(tx) for tx in tx_ids],
        "fees": [],
        "error": error,
        "status": status,
        "fixed_at": int(time.time()),
        "expires_at": int(time.time()) + 900,
    }
    return json.dumps(body).encode()


def _transaction(tx: int) -> dict[str, Any]:
    return {
        "id": tx,
        "currency": "BTC",
        "transaction_type": "blockchain",
        "type": "deposit",
        "address": "tb1qexample",
        "tag": None,
        "amount": "0.0015",
        "txid": f"tx{tx}",
        "confirmations": "1",
    }


async def post_cp(
    runtime: BotRuntime,
    body: bytes,
    *,
    key: str | None,
    signature: str | None,
    content_type: str = "application/json",
) -> httpx.Response:
    headers = {"Content-Type": content_type}
    if key is not None:
        headers["X-Processing-Key"] = key
    if signature is not None:
        headers["X-Processing-Signature"] = signature
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{bot_url(runtime)}/callbacks/cryptoprocessing", content=body, headers=headers
        )


def cc_token(
    secret: str, invoice_id: str, *, expires_in: int = 300, algorithm: str = "HS256"
) -> str:
    """The postback JWT: HS256 with the project secret, `id` claim, 5 minutes' life."""
    claims = {"id": invoice_id.removeprefix("INV-"), "exp": int(time.time()) + expires_in}
    return jwt.encode(claims, secret, algorithm=algorithm)


async def post_cc(
    runtime: BotRuntime, invoice: dict[str, Any], token: str, *, claimed_status: str, form: bool
) -> httpx.Response:
    """A postback whose unsigned fields claim `claimed_status`; only the token is signed."""
    fields = {
        "status": "success",
        "invoice_id": invoice["uuid"].removeprefix("INV-"),
        "amount_crypto": "1.5",
        "currency": "USDT_TRC20",
        "order_id": invoice["order_id"],
        "token": token,
        "invoice_info": json.dumps({"status": claimed_status}),
    }
    async with httpx.AsyncClient() as client:
        url = f"{bot_url(runtime)}/callbacks/cryptocloud"
        if form:
            return await client.post(url, data=fields)
        return await client.post(url, json=fields)


async def cp_invoice_card(
    telegram: FakeTelegram, merchant: FakeUser, fake: FakeCryptoProcessing
) -> tuple[BotMessage, dict[str, Any]]:
    question = await fill_basics(merchant, "100", "EUR", "Widgets")
    preview = await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    card = await confirm(telegram, merchant, preview)
    return card, fake.invoices[max(fake.invoices, key=lambda k: fake.invoices[k]["id"])]


async def cc_invoice_card(
    telegram: FakeTelegram, merchant: FakeUser, fake: FakeCryptoCloud, title: str = "Lamp"
) -> tuple[BotMessage, dict[str, Any]]:
    await merchant.reply("/new")
    question = await merchant.reply("100")
    await merchant.click(question, "USD")
    preview = await merchant.reply(title)
    card = await confirm(telegram, merchant, preview)
    invoice = list(fake.invoices.values())[-1]  # the newest
    assert invoice["link"] in card.text
    return card, invoice


async def age_invoice(bot: BotRuntime, public_id: str, *, minutes: int) -> None:
    """Move an invoice back in time (the test's clock, not the bot's code)."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)
    async with bot.engine.begin() as connection:
        await connection.execute(
            update(InvoiceRow)
            .where(col(InvoiceRow.public_id) == public_id)
            .values(expires_at=past, created_at=past)
        )


async def send_cp(
    bot: BotRuntime,
    fake: FakeCryptoProcessing,
    invoice: dict[str, Any],
    status: str,
    *,
    error: str = "",
    tx_ids: tuple[int, ...] = (),
    received: tuple[str, str] | None = None,
) -> httpx.Response:
    """A correctly signed CryptoProcessing invoice callback, as the provider sends it."""
    body = cp_callback(invoice, status, error=error, tx_ids=tx_ids, received=received)
    return await post_cp(bot, body, key=fake.api_key, signature=fake.sign(body))
