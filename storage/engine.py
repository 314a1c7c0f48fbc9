"""Engine with SQLite pragmas, session factory and start-up migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers (admin lists) run beside the writer; busy_timeout turns
    # "database is locked" into a short wait; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    is_sqlite = url.startswith("sqlite")
    # A file database has no server to drop connections, so no pre-ping round trip.
    # hide_parameters: SQL errors would otherwise quote drafts and customers (personal data).
    engine = create_async_engine(
        url,
        pool_pre_ping=not is_sqlite,
        hide_parameters=True,
        # SQLite has one writer: queueing for a single connection in asyncio is far cheaper
        # than several connections sleeping in SQLite's busy handler (seen in bench/).
        **({"pool_size": 1, "max_overflow": 0, "pool_timeout": 30} if is_sqlite else {}),
    )
    if is_sqlite:
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def _upgrade(connection: Connection, data_key: str | None) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    # Migrations that seal or re-key personal data (0006) need the key in use.
    config.attributes["data_key"] = data_key
    command.upgrade(config, "head")


class MigrationError(RuntimeError):
    pass


async def migrate(engine: AsyncEngine, data_key: str | None = None) -> None:
    """Bring the schema to the newest revision; runs on every start and is a no-op when current.

    On SQLite a migration that rebuilds a table (Alembic's batch mode: copy, drop, rename)
    must run with foreign keys off, or dropping a table that other rows point to fails; and
    Python's sqlite3 runs DDL outside any transaction unless one is begun explicitly, so a
    failure would leave a half-migrated schema. So: keys off, an explicit BEGIN, the keys
    checked before COMMIT, keys on again. PostgreSQL's DDL is transactional by itself.
    """
    if engine.dialect.name != "sqlite":
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, data_key)
        return
    async with engine.connect() as connection:
        await connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # outside a transaction
        await connection.exec_driver_sql("BEGIN")
        try:
            await connection.run_sync(_upgrade, data_key)
            broken = (await connection.exec_driver_sql("PRAGMA foreign_key_check")).all()
            if broken:
                raise MigrationError(f"the migration broke {len(broken)} reference(s)")
            await connection.commit()
        except BaseException:
            await connection.rollback()
            raise
        finally:
            await connection.exec_driver_sql("PRAGMA foreign_keys=ON")
