"""What storage guarantees on each database: exact money, aware UTC times, 64-bit ids, and the
partial unique indexes and compare-and-sets that make invoice creation exactly-once.

Marked `postgres`: run on SQLite, and on a fresh PostgreSQL database when TEST_DATABASE_URL is
set, where the concurrent writers really are concurrent (SQLite's one connection queues them).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import create_engine, create_session_factory, migrate
from storage.models import DraftRow, InvoiceRow
from storage.repositories import DraftRepository, InvoiceRepository, LiveAttemptExists

pytestmark = pytest.mark.postgres

TOKYO = dt.timezone(dt.timedelta(hours=9))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        await migrate(engine)
        await migrate(engine)  # a no-op the second time: the bot migrates on every start
        yield engine
    finally:
        await engine.dispose()


def _attempt(
    draft_id: str,
    public_id: str,
    amount: Decimal = Decimal(1),
    *,
    merchant_id: int = 1,
    chat_id: int = 1,
) -> InvoiceRow:
    return InvoiceRow(
        public_id=public_id, draft_id=draft_id, provider="x", amount=amount, currency="BTC",
        title="t", merchant_id=merchant_id, chat_id=chat_id,
    )  # fmt: skip


async def _scalars(engine: AsyncEngine, sql: str) -> list[object]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql))).scalars())


async def test_money_is_exact_text_times_are_aware_utc_and_ids_are_64_bit(
    engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(engine)
    await DraftRepository(sessions).start(DraftRow(id="d1", merchant_id=1, chat_id=1))
    invoices = InvoiceRepository(sessions)
    amount = Decimal("0.1") + Decimal("0.2") + Decimal("1234567890.12345678")
    row = await invoices.begin_attempt(
        _attempt("d1", "p1", amount, merchant_id=2**40, chat_id=-(2**40))
    )
    assert row.id is not None
    expires = dt.datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=TOKYO)
    await invoices.record(row.id, event="created", outcome="created", expires_at=expires)

    stored = await invoices.get(row.id)
    assert stored is not None
    assert stored.amount == Decimal("1234567890.42345678")
    assert (stored.merchant_id, stored.chat_id) == (2**40, -(2**40))  # Telegram ids > 32 bits
    assert stored.expires_at == expires  # the same instant, to the microsecond
    assert stored.expires_at is not None and stored.expires_at.tzinfo is dt.UTC
    assert stored.created_at.tzinfo is dt.UTC
    assert await _scalars(engine, "SELECT amount FROM invoice") == ["1234567890.42345678"]

    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            columns = await connection.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_name = 'invoice'"
                )
            )
            types = {name: kind for name, kind in columns}
        assert types["amount"] == "character varying"  # exact text, never a float
        for name in ("created_at", "updated_at", "expires_at", "settle_after", "flagged_at"):
            assert types[name] == "timestamp with time zone", name
        assert types["merchant_id"] == types["chat_id"] == "bigint"


async def test_times_do_not_depend_on_the_server_s_time_zone(engine: AsyncEngine) -> None:
    if engine.dialect.name == "postgresql":
        # Every new session of this database now runs in Tokyo time.
        async with engine.connect() as connection:
            name = (await connection.execute(text("SELECT current_database()"))).scalar_one()
            await connection.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'Asia/Tokyo'"))
            await connection.commit()
        await engine.dispose()
    sessions = create_session_factory(engine)
    drafts = DraftRepository(sessions)
    await drafts.start(DraftRow(id="d1", merchant_id=1, chat_id=1))
    invoices = InvoiceRepository(sessions)
    row = await invoices.begin_attempt(_attempt("d1", "p1"))
    assert row.id is not None
    now = dt.datetime.now(dt.UTC)
    due = now.astimezone(TOKYO)  # the same instant, written with an offset
    await invoices.record(row.id, event="lost", outcome="unknown", settle_after=due)

    assert [r.id for r in await invoices.unknown_attempts(due_by=now)] == [row.id]
    assert await invoices.unknown_attempts(due_by=now - dt.timedelta(microseconds=1)) == []
    assert [d.id for d in await drafts.idle_open(now + dt.timedelta(seconds=5))] == ["d1"]
    assert await drafts.idle_open(now - dt.timedelta(minutes=5)) == []
    if engine.dialect.name == "postgresql":
        zone = await _scalars(engine, "SHOW timezone")
        assert zone == ["Asia/Tokyo"]


async def test_one_live_attempt_per_draft_and_one_open_draft_per_chat(
    engine: AsyncEngine,
) -> None:
    sessions = create_session_factory(engine)
    drafts, invoices = DraftRepository(sessions), InvoiceRepository(sessions)
    await drafts.start(DraftRow(id="d1", merchant_id=1, chat_id=1))

    first = await invoices.begin_attempt(_attempt("d1", "p1"))
    assert first.id is not None
    with pytest.raises(LiveAttemptExists):
        await invoices.begin_attempt(_attempt("d1", "p2"))
    await invoices.record(first.id, event="failed", outcome="failed")
    second = await invoices.begin_attempt(_attempt("d1", "p3"))  # a failure blocks no retry
    assert second.id is not None
    await invoices.record(second.id, event="lost", outcome="unknown")
    with pytest.raises(LiveAttemptExists):  # an unknown outcome still may be payable
        await invoices.begin_attempt(_attempt("d1", "p4"))

    # A new draft closes the open one: closed drafts of a chat are many, open ones one.
    await drafts.start(DraftRow(id="d2", merchant_id=1, chat_id=1))
    assert await drafts.transition("d2", "open", "submitted")
    await drafts.start(DraftRow(id="d3", merchant_id=1, chat_id=1))
    open_now = await drafts.open_for(1, 1)
    assert open_now is not None and open_now.id == "d3"
    async with engine.connect() as connection:
        with pytest.raises(IntegrityError):
            await connection.execute(
                text(
                    "INSERT INTO draft (id, merchant_id, chat_id, state, step, payload, scrubbed, "
                    "created_at, updated_at) VALUES ('d4', 1, 1, 'open', 'amount', '{}', false, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
    states = await _scalars(engine, "SELECT state FROM draft ORDER BY id")
    assert states == ["cancelled", "submitted", "open"]


async def test_concurrent_writers_of_one_row_one_wins(engine: AsyncEngine) -> None:
    sessions = create_session_factory(engine)
    drafts, invoices = DraftRepository(sessions), InvoiceRepository(sessions)
    await drafts.start(DraftRow(id="d1", merchant_id=1, chat_id=1))

    attempts = await asyncio.gather(
        *(invoices.begin_attempt(_attempt("d1", f"p{i}")) for i in range(10)),
        return_exceptions=True,
    )
    made = [a for a in attempts if isinstance(a, InvoiceRow)]
    assert len(made) == 1, attempts
    assert all(isinstance(a, LiveAttemptExists) for a in attempts if a is not made[0])
    assert made[0].id is not None
    invoice_id = made[0].id

    await invoices.record(invoice_id, event="lost", outcome="unknown")
    now = dt.datetime.now(dt.UTC)
    claims = await asyncio.gather(
        *(invoices.claim_settle(invoice_id, now, now + dt.timedelta(minutes=1)) for _ in range(10))
    )
    assert claims.count(True) == 1  # one settler holds the lease

    moves = await asyncio.gather(
        *(drafts.transition("d1", "open", state) for state in ["submitted", "cancelled"] * 5)
    )
    assert moves.count(True) == 1  # compare-and-set: the draft closes once
    assert await _scalars(engine, "SELECT count(*) FROM invoice") == [1]
