"""Upgrading a database made by the previous release (revision 0005) seals its personal data.

The previous release kept customers' names, dates of birth and emails in plaintext columns,
found returning customers by an unkeyed SHA-256, and kept personal fields in open drafts'
payloads. Migration 0006 seals all of it with DATA_KEY and re-keys the lookup, so after the
upgrade a returning customer is still recognised (same end_user_reference at the provider),
a conversation in flight finishes, and the file holds no plaintext personal data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from storage.engine import alembic_config, create_engine
from storage.sealing import Sealer, customer_lookup_key
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import confirm
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram

DATA_KEY = "an-operator-chosen-data-key-of-enough-length-0123"
ADA_REFERENCE = "a" * 32
ACME_REFERENCE = "b" * 32
OPEN_DRAFT = "0123456789abcdef"
CLOSED_DRAFT = "fedcba9876543210"
PLAINTEXT = ("Lovelace", "1990-12-10", "payer@example.org", "Acme Widgets", "old@example.org")


def _old_lookup_key(merchant_id: int, *parts: str) -> str:
    """The previous release's lookup key: an unkeyed SHA-256 (services/customers.py, 0005)."""
    normalised = [" ".join(part.casefold().split()) for part in parts]
    data = json.dumps([merchant_id, *normalised], ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def _payload(**fields: object) -> str:
    base: dict[str, object] = {
        "amount": "250.00", "currency": "EUR", "title": "Consulting", "customer_id": None,
        "sender_type": None, "first_name": None, "last_name": None, "date_of_birth": None,
        "legal_name": None, "country_alpha3": None, "email": None, "editing": None,
        "extra": {"locale": "en", "rev": "1"},
    }  # fmt: skip
    return json.dumps(base | fields, ensure_ascii=False)


def _upgrade_to_0005(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "0005")


async def _previous_release_database(url: str) -> None:
    engine = create_engine(url)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1)
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_to_0005)
        customers = [
            {
                "merchant_id": MERCHANT_ID, "reference": ADA_REFERENCE, "sender_type": "natural",
                "lookup_key": _old_lookup_key(MERCHANT_ID, "natural", "Ada", "Lovelace",
                                              "1990-12-10"),
                "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-12-10",
                "legal_name": None, "country_alpha3": None, "email": "payer@example.org",
                "created_at": now, "last_used_at": now,
            },
            {
                "merchant_id": MERCHANT_ID, "reference": ACME_REFERENCE, "sender_type": "legal",
                "lookup_key": _old_lookup_key(MERCHANT_ID, "legal", "Acme Widgets GmbH", "DEU"),
                "first_name": None, "last_name": None, "date_of_birth": None,
                "legal_name": "Acme Widgets GmbH", "country_alpha3": "DEU", "email": None,
                "created_at": now, "last_used_at": now,
            },
        ]  # fmt: skip
        await connection.execute(
            sa.text(
                "INSERT INTO customer (merchant_id, reference, sender_type, lookup_key, "
                "first_name, last_name, date_of_birth, legal_name, country_alpha3, email, "
                "created_at, last_used_at) VALUES (:merchant_id, :reference, :sender_type, "
                ":lookup_key, :first_name, :last_name, :date_of_birth, :legal_name, "
                ":country_alpha3, :email, :created_at, :last_used_at)"
            ),
            customers,
        )
        drafts = [
            {
                # Ada typed in again, up to her email: the upgrade comes mid-conversation.
                "id": OPEN_DRAFT, "state": "open", "step": "email", "scrubbed": False,
                "payload": _payload(sender_type="natural", first_name="Ada",
                                    last_name="Lovelace", date_of_birth="1990-12-10"),
            },
            {
                # Closed by a process that died before scrubbing it.
                "id": CLOSED_DRAFT, "state": "cancelled", "step": "preview", "scrubbed": False,
                "payload": _payload(sender_type="legal", legal_name="Acme Widgets GmbH",
                                    country_alpha3="DEU", email="old@example.org"),
            },
        ]  # fmt: skip
        await connection.execute(
            sa.text(
                "INSERT INTO draft (id, merchant_id, chat_id, state, step, payload, scrubbed, "
                "created_at, updated_at) VALUES (:id, :merchant, :merchant, :state, "
                ":step, :payload, :scrubbed, :now, :now)"
            ),
            [draft | {"now": now, "merchant": MERCHANT_ID} for draft in drafts],
        )
        # Ada's earlier invoice and its history: rows that point at the customer and invoice
        # tables the upgrade rebuilds (SQLite's foreign keys must not stop it).
        await connection.execute(
            sa.text(
                "INSERT INTO invoice (public_id, draft_id, provider, provider_invoice_id, "
                "pay_url, amount, currency, title, customer_id, merchant_id, chat_id, "
                "outcome, status, test_mode, created_at, updated_at) VALUES ('oldinvoice0001', "
                ":draft, 'cryptoprocessing', '42', 'https://pay.example/42', '99.00', 'EUR', "
                "'Old order', 1, :merchant, :merchant, 'created', 'paid', 0, :now, :now)"
            ),
            {"draft": CLOSED_DRAFT, "merchant": MERCHANT_ID, "now": now},
        )
        await connection.execute(
            sa.text(
                "INSERT INTO invoice_event (invoice_id, kind, status, created_at) "
                "VALUES (1, 'status', 'paid', :now)"
            ),
            {"now": now},
        )
    await engine.dispose()


async def test_the_upgrade_seals_and_rekeys_and_customers_are_still_recognised(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    await _previous_release_database(url)

    bot = await start_bot(cryptoprocessing, data_key=DATA_KEY)  # start-up migrates to head

    sealer = Sealer(DATA_KEY)
    async with bot.engine.connect() as connection:
        columns = {
            row[1] for row in await connection.execute(sa.text("PRAGMA table_info(customer)"))
        }
        rows = (
            await connection.execute(
                sa.text("SELECT reference, lookup_key, sealed FROM customer ORDER BY id")
            )
        ).all()
        payloads: dict[str, str] = dict(
            (await connection.execute(sa.text("SELECT id, payload FROM draft"))).all()
        )
    assert not columns & {"first_name", "last_name", "date_of_birth", "legal_name", "email"}
    (ada_ref, ada_key, ada_sealed), (acme_ref, acme_key, acme_sealed) = rows
    assert ada_key == customer_lookup_key(
        sealer, MERCHANT_ID, "natural", ["Ada", "Lovelace", "1990-12-10"]
    )
    assert acme_key == customer_lookup_key(
        sealer, MERCHANT_ID, "legal", ["Acme Widgets GmbH", "DEU"]
    )
    assert sealer.open(ada_sealed, f"customer:{ada_ref}") == {
        "first_name": "Ada", "last_name": "Lovelace", "date_of_birth": "1990-12-10",
        "email": "payer@example.org",
    }  # fmt: skip
    assert sealer.open(acme_sealed, f"customer:{acme_ref}")["legal_name"] == "Acme Widgets GmbH"
    closed = json.loads(payloads[CLOSED_DRAFT])
    assert "legal_name" not in closed and "sealed" not in closed and closed["title"]
    assert json.loads(payloads[OPEN_DRAFT])["sealed"].startswith("v1.")

    # The conversation in flight finishes, and Ada is the same customer as before.
    merchant = telegram.user(MERCHANT_ID)
    preview = await merchant.reply("payer@example.org")
    assert "Ada Lovelace, born 1990-12-10" in preview.text  # the owner's own chat
    card = await confirm(telegram, merchant, preview)
    assert "A. L…ce, born 1990" in card.text and "Invoice #2" in card.text
    [sent] = cryptoprocessing.invoices.values()
    assert sent["end_user_reference"] == ADA_REFERENCE
    history = await merchant.reply("/invoice 1")  # the old invoice kept its customer
    assert "Old order" in history.text and "A. L…ce, born 1990" in history.text
    async with bot.engine.connect() as connection:
        count = (await connection.execute(sa.text("SELECT count(*) FROM customer"))).scalar()
    assert count == 2

    await bot.stop()
    path = tmp_path / "bot.sqlite3"
    stored = b"".join(
        p.read_bytes() for p in (path, path.with_name("bot.sqlite3-wal")) if p.exists()
    )
    assert b"Consulting" in stored
    assert not [value for value in PLAINTEXT if value.encode() in stored]
