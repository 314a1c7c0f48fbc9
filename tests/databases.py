"""The databases tests run the bot on: SQLite files, and fresh PostgreSQL databases.

Tests marked `postgres` run twice: on SQLite, and on a new database of the PostgreSQL server
named by TEST_DATABASE_URL, created for the one test and dropped after it (so no test sees
another's rows). The database in that URL is only connected to, to create and drop them.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

BACKENDS = ("sqlite", "postgresql")
EXAMPLE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
HOW_TO_ENABLE = (
    f"PostgreSQL variant: set TEST_DATABASE_URL={EXAMPLE_URL} (a running server where that "
    "user may create databases) to run it"
)


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'bot.sqlite3'}"


def postgres_server() -> URL | None:
    """The server of TEST_DATABASE_URL, with the asyncpg driver; None when it is not set."""
    value = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not value:
        return None
    url = make_url(value)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"TEST_DATABASE_URL must be a PostgreSQL URL, like {EXAMPLE_URL}")
    return url.set(drivername="postgresql+asyncpg")


def database_param(backend: str) -> object:
    """A `database_url` parameter; the PostgreSQL one is skipped, saying how to enable it,
    when TEST_DATABASE_URL is not set."""
    if backend == "postgresql" and postgres_server() is None:
        return pytest.param(backend, marks=pytest.mark.skip(reason=HOW_TO_ENABLE))
    return backend


@asynccontextmanager
async def fresh_postgres_database(server: URL, prefix: str = "test") -> AsyncIterator[str]:
    """A new, empty database on `server` for one test (or bench), dropped afterwards;
    yields its URL."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(6)}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            # template0 and an explicit UTF-8: the same clean database whatever the server's
            # template1 or default locale holds.
            await connection.exec_driver_sql(
                f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                # FORCE: connections a test left open (an engine not disposed) are closed.
                await connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.dispose()
