"""Money stays exact in SQLite, datetimes stay UTC, migrations are safe to run on every start."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from storage.engine import create_engine, create_session_factory, migrate
from storage.models import DraftRow, InvoiceRow
from storage.repositories import DraftRepository, InvoiceRepository, LiveAttemptExists


async def test_exact_money_utc_times_and_one_live_attempt_per_draft(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(engine)
    await migrate(engine)  # idempotent: the bot migrates on every start
    sessions = create_session_factory(engine)
    await DraftRepository(sessions).start(DraftRow(id="d" * 16, merchant_id=1, chat_id=1))
    invoices = InvoiceRepository(sessions)

    amount = Decimal("0.1") + Decimal("0.2") + Decimal("1234567890.12345678")
    row = await invoices.begin_attempt(
        InvoiceRow(public_id="p1", draft_id="d" * 16, provider="x", amount=amount,
                   currency="BTC", title="t", merchant_id=2**40, chat_id=-(2**40))
    )  # fmt: skip
    with pytest.raises(LiveAttemptExists):
        await invoices.begin_attempt(
            InvoiceRow(public_id="p2", draft_id="d" * 16, provider="x", amount=Decimal(1),
                       currency="BTC", title="t", merchant_id=1, chat_id=1)
        )  # fmt: skip

    assert row.id is not None
    stored = await invoices.get(row.id)
    assert stored is not None
    assert stored.amount == Decimal("1234567890.42345678")
    assert stored.merchant_id == 2**40  # Telegram ids exceed 32 bits
    assert stored.created_at.tzinfo is dt.UTC
    async with engine.connect() as connection:
        raw = (await connection.execute(text("SELECT amount FROM invoice"))).scalar_one()
        mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
    assert raw == "1234567890.42345678"  # text, never a float
    assert mode == "wal"

    await invoices.record(row.id, event="failed", outcome="failed")
    second = await invoices.begin_attempt(
        InvoiceRow(public_id="p3", draft_id="d" * 16, provider="x", amount=Decimal(1),
                   currency="BTC", title="t", merchant_id=1, chat_id=1)
    )  # fmt: skip
    assert second.id is not None  # a failed attempt no longer blocks a retry
    await engine.dispose()
