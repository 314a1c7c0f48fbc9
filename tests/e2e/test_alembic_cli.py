"""The alembic CLI, as an operator runs it: `alembic -c alembic.ini upgrade head` migrates the
database in DATABASE_URL (environment or .env), on SQLite and on PostgreSQL, with every
guarantee the bot's own start-up migration gives (partial unique indexes, timestamptz)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.engine import alembic_config, create_engine
from storage.sealing import KEY_FILE_NAME, Sealer

ROOT = Path(__file__).resolve().parents[2]
ALEMBIC_INI = ROOT / "alembic.ini"
DATA_KEY = "alembic-cli-test-key-0123456789abcdefghijklmnop"
# The partial unique indexes creation's exactly-once rests on, and what each must exclude.
PARTIAL_INDEXES = {"ux_draft_open_per_chat": "open", "ux_invoice_live_per_draft": "unknown"}


async def alembic(
    cwd: Path, *args: str, database_url: str | None = None, data_key: str | None = DATA_KEY
) -> str:
    """Run the alembic CLI in `cwd` with DATABASE_URL and DATA_KEY (each unset when None) in
    its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_KEY")}
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    if data_key is not None:
        env["DATA_KEY"] = data_key
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alembic", "-c", str(ALEMBIC_INI), *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    text = output.decode(errors="replace")
    assert process.returncode == 0, f"alembic {' '.join(args)} failed:\n{text}"
    return text


async def _execute(database_url: str, sql: str) -> None:
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text(sql))
    finally:
        await engine.dispose()


async def rows(database_url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in await connection.execute(sa.text(sql), params)]
    finally:
        await engine.dispose()


def head() -> str:
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty working directory: no .env, no data/ (the CLI must not need the checkout)."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


@pytest.mark.postgres
async def test_the_cli_migrates_the_database_in_database_url(
    database_url: str, elsewhere: Path
) -> None:
    await alembic(elsewhere, "upgrade", "head", database_url=database_url)

    assert await rows(database_url, "SELECT version_num FROM alembic_version") == [(head(),)]
    if database_url.startswith("postgresql"):
        tables = await rows(
            database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        )
        indexes = await rows(
            database_url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)",
            names=list(PARTIAL_INDEXES),
        )
        times = await rows(
            database_url,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type LIKE 'timestamp%'",
        )
        assert times and all(kind == "timestamp with time zone" for *_, kind in times), times
    else:
        tables = await rows(database_url, "SELECT name FROM sqlite_master WHERE type = 'table'")
        indexes = await rows(
            database_url,
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND name IN "
            "('ux_draft_open_per_chat', 'ux_invoice_live_per_draft')",
        )
    assert {name for (name,) in tables} == set(SQLModel.metadata.tables) | {"alembic_version"}
    definitions = dict(indexes)
    assert definitions.keys() == PARTIAL_INDEXES.keys()
    for name, excluded in PARTIAL_INDEXES.items():
        definition = definitions[name]
        assert "UNIQUE" in definition and "WHERE" in definition, definition
        assert excluded in definition.split("WHERE", 1)[1], definition

    # Current already: a second run changes nothing.
    await alembic(elsewhere, "upgrade", "head", database_url=database_url)
    assert await rows(database_url, "SELECT version_num FROM alembic_version") == [(head(),)]


async def test_the_cli_reads_database_url_like_the_bot(elsewhere: Path) -> None:
    def url(path: Path) -> str:
        return f"sqlite+aiosqlite:///{path}"

    async def version(path: Path) -> list[tuple[Any, ...]]:
        return await rows(url(path), "SELECT version_num FROM alembic_version")

    # From .env in the working directory, as the bot reads it.
    from_dotenv = elsewhere / "from-dotenv.sqlite3"
    (elsewhere / ".env").write_text(
        f"TELEGRAM_BOT_TOKEN=123:abc\nDATABASE_URL={url(from_dotenv)}\n"
    )
    await alembic(elsewhere, "upgrade", "head")
    assert await version(from_dotenv) == [(head(),)]

    # The environment wins over .env (the file's directory is made, as the bot makes it) ...
    from_environment = elsewhere / "made" / "bot.sqlite3"
    await alembic(elsewhere, "upgrade", "0003", database_url=url(from_environment))
    assert await version(from_environment) == [("0003",)]
    # ... and -x database_url over both.
    named = elsewhere / "named.sqlite3"
    await alembic(elsewhere, "-x", f"database_url={url(named)}", "upgrade", "0002",
                  database_url=url(from_environment))  # fmt: skip
    assert await version(named) == [("0002",)]
    assert await version(from_environment) == [("0003",)]

    # Nothing set anywhere: the bot's default file, ./data/bot.sqlite3.
    (elsewhere / ".env").unlink()
    await alembic(elsewhere, "upgrade", "head")
    assert await version(elsewhere / "data" / "bot.sqlite3") == [(head(),)]


async def test_the_cli_seals_personal_data_with_the_data_key_in_dotenv(elsewhere: Path) -> None:
    """0006 seals the customers' data: from the CLI with DATA_KEY in .env, as the bot would
    read it, not with a newly generated key file the bot would not use."""
    database = elsewhere / "bot.sqlite3"
    url = f"sqlite+aiosqlite:///{database}"
    key = secrets.token_urlsafe(32)
    (elsewhere / ".env").write_text(f"DATABASE_URL={url}\nDATA_KEY={key}\n")
    await alembic(elsewhere, "upgrade", "0005", data_key=None)
    await _execute(
        url,
        "INSERT INTO customer (merchant_id, reference, lookup_key, sender_type, first_name, "
        "last_name, date_of_birth, email, created_at, last_used_at) VALUES (1, 'ref-1', 'x', "
        "'natural', 'Grace', 'Hopper', '1906-12-09', 'grace@example.net', "
        "'2026-11-01 10:00:00.000000', '2026-11-01 10:00:00.000000')",
    )

    await alembic(elsewhere, "upgrade", "head", data_key=None)

    assert not (elsewhere / KEY_FILE_NAME).exists()  # no key of its own beside the database
    [(sealed,)] = await rows(url, "SELECT sealed FROM customer WHERE reference = 'ref-1'")
    opened = Sealer(key).open(sealed, "customer:ref-1")
    assert opened["last_name"] == "Hopper" and opened["email"] == "grace@example.net"


@pytest.mark.postgres(only=True)
async def test_the_step_migration_carries_conversations_over_on_postgresql(
    database_url: str, elsewhere: Path
) -> None:
    """0004 moves each open draft's step out of its payload or the old conversation state:
    raw SQL, run here on PostgreSQL (tests/e2e/test_migration.py runs it on SQLite)."""
    await alembic(elsewhere, "upgrade", "0003", database_url=database_url)
    now = dt.datetime.now(dt.UTC)
    drafts = [
        ("with-step", 1, 1, "open", {"amount": "5", "extra": {"step": "sender_type"}}),
        ("positional", 2, -1001234567890, "open", {"amount": "7", "extra": {}}),
        ("closed", 1, 1, "cancelled", {"amount": "9", "extra": {"step": "currency"}}),
    ]
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO draft (id, merchant_id, chat_id, state, payload, created_at, "
                    "updated_at) VALUES (:id, :merchant, :chat, :state, :payload, :at, :at)"
                ),
                [
                    {"id": id_, "merchant": merchant, "chat": chat, "state": state,
                     "payload": json.dumps(payload), "at": now}
                    for id_, merchant, chat, state, payload in drafts
                ],
            )  # fmt: skip
            await connection.execute(
                sa.text(
                    "INSERT INTO conversation_state (name, key, state, updated_at) "
                    "VALUES ('new_invoice', :key, '2', :at)"  # position 2: the title
                ),
                {"key": json.dumps([-1001234567890, 2]), "at": now},
            )
    finally:
        await engine.dispose()

    await alembic(elsewhere, "upgrade", "head", database_url=database_url)

    steps = await rows(database_url, "SELECT id, state, step FROM draft ORDER BY id")
    assert steps == [
        ("closed", "cancelled", "amount"),
        ("positional", "open", "title"),
        ("with-step", "open", "customer"),  # sender_type is part of the customer step now
    ]
    gone = await rows(database_url, "SELECT to_regclass('conversation_state') IS NULL")
    assert gone == [(True,)]
