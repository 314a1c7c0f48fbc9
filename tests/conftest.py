"""Fixtures: fake Telegram and provider servers on loopback, and the real bot between them."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotRuntime, build_runtime
from bot.config import Settings
from bot.logging_setup import quiet_noisy_loggers
from bot.services.conversation import STEPS, Step
from tests.databases import (
    BACKENDS,
    database_param,
    fresh_postgres_database,
    postgres_server,
    sqlite_url,
)
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram

MERCHANT_ID = 1001
OTHER_MERCHANT_ID = 1002
ADMIN_ID = 9001
STRANGER_ID = 5555

# Personal data the tests type in: none of it may ever reach a log line.
PERSONAL_DATA = (
    "Friedrich", "Müller", "1995-08-17", "17.08.1995", "Acme Widgets GmbH", "Ada", "Lovelace",
    "1990-12-10", "payer@example.org", "friedrich@example.com",
)  # fmt: skip


class LogCapture(logging.Handler):
    """Collects every formatted record, with no redaction, to prove nothing leaks at source."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(autouse=True)
def log_capture() -> Iterator[LogCapture]:
    root = logging.getLogger()
    capture = LogCapture()
    previous = root.level
    root.setLevel(logging.DEBUG)
    quiet_noisy_loggers()
    root.addHandler(capture)
    yield capture
    root.removeHandler(capture)
    root.setLevel(previous)


@pytest.fixture(autouse=True)
def _no_secret_or_personal_data_in_logs(
    log_capture: LogCapture, request: pytest.FixtureRequest
) -> Iterator[None]:
    yield
    forbidden = [*PERSONAL_DATA, *request.node.stash.get(SECRETS_KEY, [])]
    leaks = [
        (value, line)
        for line in log_capture.lines
        for value in forbidden
        if value and value in line
    ]
    assert not leaks, f"secret or personal data in logs: {leaks[:3]}"


SECRETS_KEY = pytest.StashKey[list[str]]()
POSTGRES_DATA_KEY = secrets.token_urlsafe(32)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres(only=False): runs on SQLite and again on a fresh database of the PostgreSQL "
        "server in TEST_DATABASE_URL (skipped when it is not set); only=True: PostgreSQL alone",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked `postgres` get one run per database (ids [sqlite] and [postgresql]);
    `postgres(only=True)`, the PostgreSQL run alone."""
    marker = metafunc.definition.get_closest_marker("postgres")
    if marker is not None and "database_url" in metafunc.fixturenames:
        backends = ["postgresql"] if marker.kwargs.get("only") else BACKENDS
        metafunc.parametrize("database_url", [database_param(name) for name in backends],
                             indirect=True)  # fmt: skip


@pytest.fixture
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The bot's DATABASE_URL: a SQLite file in the test's directory, or, for the PostgreSQL
    run of a test marked `postgres`, a fresh database of its own, dropped after the test."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield sqlite_url(tmp_path)
        return
    server = postgres_server()
    assert server is not None  # database_param skips the PostgreSQL runs without one
    async with fresh_postgres_database(server) as url:
        yield url


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def cryptoprocessing() -> AsyncIterator[FakeCryptoProcessing]:
    async with FakeCryptoProcessing() as fake:
        yield fake


@pytest.fixture
async def cryptocloud() -> AsyncIterator[FakeCryptoCloud]:
    # A project secret as long as HS256 wants (PyJWT warns below 32 bytes).
    async with FakeCryptoCloud(
        secret_key="cc-test-secret-0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    ) as fake:
        # A project in production; tests about test mode switch it back on.
        fake.test_mode = False
        yield fake


def settings_for(
    tmp_path: Path,
    telegram: FakeTelegram,
    provider: FakeCryptoProcessing | FakeCryptoCloud,
    **overrides: Any,
) -> Settings:
    """Settings exactly as an operator would write them, pointed at the fakes."""
    values: dict[str, Any] = {
        "telegram_bot_token": telegram.token,
        "telegram_api_base_url": telegram.base_url,
        "database_url": sqlite_url(tmp_path),
        "merchant_ids": f"{MERCHANT_ID},{OTHER_MERCHANT_ID}",
        "admin_ids": str(ADMIN_ID),
        "provider_timeout_seconds": 2.0,
        "conversation_timeout_seconds": 600,
        "http_host": "127.0.0.1",
        "http_port": 0,
        "public_base_url": "https://bot.example.com",
        # Off unless a test is about it, so the job never races a test's own steps.
        "reconcile_interval_seconds": 0,
    }
    if isinstance(provider, FakeCryptoProcessing):
        values |= {
            "provider": "cryptoprocessing",
            "cryptoprocessing_api_key": provider.api_key,
            "cryptoprocessing_secret_key": provider.secret_key,
            "cryptoprocessing_base_url": provider.base_url,
            "invoice_url_success": "https://shop.example.com/paid",
            "invoice_url_failed": "https://shop.example.com/failed",
        }
    else:
        values |= {
            "provider": "cryptocloud",
            "cryptocloud_api_key": provider.api_key,
            "cryptocloud_shop_id": provider.shop_id,
            "cryptocloud_secret_key": provider.secret_key,
            "cryptocloud_base_url": provider.base_url,
        }
    values |= overrides
    return Settings(_env_file=None, **values)


BotStarter = Callable[..., Awaitable[BotRuntime]]


@pytest.fixture
async def start_bot(
    tmp_path: Path, telegram: FakeTelegram, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[BotStarter]:
    """Start the real bot against the fakes, on `database_url`; every bot started is stopped
    at teardown."""
    running: list[BotRuntime] = []

    async def start(
        provider: FakeCryptoProcessing | FakeCryptoCloud,
        *,
        steps: Sequence[Step] = STEPS,
        **overrides: Any,
    ) -> BotRuntime:
        # A PostgreSQL database has no key file beside it: the processes share DATA_KEY.
        shared_key = {} if database_url.startswith("sqlite") else {"data_key": POSTGRES_DATA_KEY}
        overrides = {"database_url": database_url} | shared_key | overrides
        settings = settings_for(tmp_path, telegram, provider, **overrides)
        request.node.stash[SECRETS_KEY] = [
            secret.get_secret_value()
            for secret in (
                settings.telegram_bot_token,
                settings.cryptoprocessing_api_key,
                settings.cryptoprocessing_secret_key,
                settings.cryptocloud_api_key,
                settings.cryptocloud_secret_key,
            )
            if secret is not None
        ]
        runtime = build_runtime(settings, steps=steps)
        await runtime.start(poll_timeout=1)
        running.append(runtime)
        return runtime

    yield start
    for runtime in reversed(running):
        await runtime.stop()
