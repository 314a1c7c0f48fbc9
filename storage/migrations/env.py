"""Alembic environment: the app's connection at start-up, or the operator's database from the CLI.

From the CLI (`alembic -c alembic.ini upgrade head`) the database is the first of:
`-x database_url=...`; DATABASE_URL from the environment or `.env`, read as the bot reads
it; a `sqlalchemy.url` in the config; the bot's default SQLite file. DATA_KEY is read the
same way, so a migration that seals personal data uses the key the bot will use.
"""

# No `from __future__ import annotations`: alembic loads this file outside any package, where
# pydantic could not resolve the settings' annotations later.
import asyncio
from pathlib import Path
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from pydantic import SecretStr
from pydantic_settings import BaseSettings
from sqlalchemy.engine import Connection, make_url
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from bot.config import SETTINGS_SOURCES

target_metadata = SQLModel.metadata


class DatabaseSettings(BaseSettings):
    """DATABASE_URL and DATA_KEY, read like the bot's Settings (which needs a bot token too)."""

    model_config = SETTINGS_SOURCES

    database_url: str | None = None
    data_key: SecretStr | None = None


# The bot's default (bot/config.py), so the CLI and `make run` use the same file.
DEFAULT_URL = "sqlite+aiosqlite:///./data/bot.sqlite3"


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render SQLModel's AutoString as plain sa.String, so migrations need no sqlmodel import."""
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    from storage.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _cli_url(settings: DatabaseSettings) -> str:
    url = (
        context.get_x_argument(as_dictionary=True).get("database_url")
        or settings.database_url
        or context.config.get_main_option("sqlalchemy.url")
        or DEFAULT_URL
    ).strip()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)  # as `make run` does
    return url


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    cli_settings = DatabaseSettings()
    if cli_settings.data_key is not None and not context.config.attributes.get("data_key"):
        context.config.attributes["data_key"] = cli_settings.data_key.get_secret_value()
    asyncio.run(_run_from_url(_cli_url(cli_settings)))
