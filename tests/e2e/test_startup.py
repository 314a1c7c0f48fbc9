"""The operator's first run: `python -m bot` as a real process, against fakes on loopback.

Every start-up failure must be one readable line per problem and exit code 2, with no
traceback and no secret in the output; a start that succeeds must print only the bot's own
lines and stop cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.preflight import StartupError, check_telegram, describe_failure
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
# Shaped like a real token, so the log redactor's token pattern would catch it as well.
TOKEN = "7000001:AAH-startup-test-token-abcdefghijklmnop"
OTHER_TOKEN = "7000001:AAH-revoked-token-0123456789abcdefgh"
CC_KEY, CC_SHOP, CC_SECRET = "cc-startup-api-key-0123456789", "cc-shop-7", "cc-startup-secret"
CP_KEY, CP_SECRET = "cp-startup-api-key-0123456789", "cp-startup-secret-0123456789"
SECRETS = (TOKEN, OTHER_TOKEN, TOKEN.partition(":")[2], CC_KEY, CC_SECRET, CP_KEY, CP_SECRET)

START_TIMEOUT = 90.0  # generous: a loaded 2-core machine imports slowly
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR) (\S+): ")


@dataclass
class Result:
    code: int
    out: str  # stdout and stderr together, in order

    @property
    def problems(self) -> list[str]:
        return [
            line.removeprefix("  - ") for line in self.out.splitlines() if line.startswith("  - ")
        ]

    def check_clean(self) -> None:
        assert "Traceback" not in self.out, self.out
        leaked = [secret for secret in SECRETS if secret in self.out]
        assert not leaked, f"secret in the output: {leaked}\n{self.out}"


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def cryptocloud() -> AsyncIterator[FakeCryptoCloud]:
    async with FakeCryptoCloud(api_key=CC_KEY, shop_id=CC_SHOP, secret_key=CC_SECRET) as fake:
        yield fake


@pytest.fixture
async def cryptoprocessing() -> AsyncIterator[FakeCryptoProcessing]:
    async with FakeCryptoProcessing(api_key=CP_KEY, secret_key=CP_SECRET) as fake:
        yield fake


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _closed_url(path: str = "") -> str:
    """A loopback address where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{_free_port()}{path}"


def _env(tmp_path: Path, telegram: FakeTelegram, **values: str) -> dict[str, str]:
    """A clean environment (nothing inherited that could configure the bot) plus `values`."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "TELEGRAM_API_BASE_URL": telegram.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": "0",
        "RECONCILE_INTERVAL_SECONDS": "0",
        "TELEGRAM_STARTUP_RETRY_SECONDS": "1",
    }
    return env | values


def _cloud(fake: FakeCryptoCloud, **values: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "PROVIDER": "cryptocloud",
        "CRYPTOCLOUD_API_KEY": CC_KEY,
        "CRYPTOCLOUD_SHOP_ID": CC_SHOP,
        "CRYPTOCLOUD_SECRET_KEY": CC_SECRET,
        "CRYPTOCLOUD_BASE_URL": fake.base_url,
    } | values


def _processing(fake: FakeCryptoProcessing, **values: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "PROVIDER": "cryptoprocessing",
        "CRYPTOPROCESSING_API_KEY": CP_KEY,
        "CRYPTOPROCESSING_SECRET_KEY": CP_SECRET,
        "CRYPTOPROCESSING_BASE_URL": fake.base_url,
        "INVOICE_URL_SUCCESS": "https://shop.example.com/paid",
        "INVOICE_URL_FAILED": "https://shop.example.com/failed",
    } | values


def _text(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")


async def _spawn(cwd: Path, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=cwd, env=env, stdout=sink, stderr=sink
        )


async def _wait(process: asyncio.subprocess.Process, log: Path, seconds: float) -> int:
    try:
        return await asyncio.wait_for(process.wait(), seconds)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"the bot did not exit within {seconds} s:\n{_text(log)}")


async def run_until_exit(cwd: Path, env: dict[str, str]) -> Result:
    """Run a bot that is expected to refuse to start."""
    log = cwd / "bot.log"
    process = await _spawn(cwd, env, log)
    code = await _wait(process, log, START_TIMEOUT)
    result = Result(code, _text(log))
    result.check_clean()
    return result


async def run_until_healthy(
    cwd: Path, env: dict[str, str], while_running: Callable[[], Awaitable[None]] | None = None
) -> Result:
    """Start a bot, wait until /healthz answers 200, stop it with SIGTERM; expect exit 0."""
    port = _free_port()
    log = cwd / "bot.log"
    process = await _spawn(cwd, env | {"HTTP_PORT": str(port)}, log)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if process.returncode is not None:
                    pytest.fail(f"the bot exited with {process.returncode}:\n{_text(log)}")
                try:
                    if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if loop.time() > deadline:
                    pytest.fail(f"/healthz did not answer 200 in time:\n{_text(log)}")
                await asyncio.sleep(0.1)
        if while_running is not None:
            await while_running()
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
    code = await _wait(process, log, 30.0)
    result = Result(code, _text(log))
    result.check_clean()
    assert result.code == 0, result.out
    return result


def _only_the_bot_s_lines(result: Result) -> None:
    """No library noise: every line is one of the bot's own log lines."""
    assert "alembic" not in result.out.lower(), result.out
    for line in result.out.splitlines():
        match = _LOG_LINE.match(line)
        assert match is not None, f"not a log line of the bot: {line!r}"
        name = match.group(2)
        assert name == "bot" or name.startswith("bot."), f"library noise: {line!r}"


def _example_with(values: dict[str, str]) -> str:
    """`.env.example` with the given lines filled in, as an operator edits it."""
    lines, filled = [], set()
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        name = line.partition("=")[0]
        if not line.startswith("#") and "=" in line and name in values:
            line = f"{name}={values[name]}"
            filled.add(name)
        lines.append(line)
    assert filled == set(values), f"no line in .env.example for {set(values) - filled}"
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- starts


async def test_the_example_file_with_the_required_cryptocloud_values_starts(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    required = {"TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "cryptocloud",
                "CRYPTOCLOUD_API_KEY": CC_KEY, "CRYPTOCLOUD_SHOP_ID": CC_SHOP}  # fmt: skip
    (tmp_path / ".env").write_text(_example_with(required), encoding="utf-8")
    # Only where the fakes are comes from the environment; the database is the default one.
    env = _env(tmp_path, telegram, CRYPTOCLOUD_BASE_URL=cryptocloud.base_url)
    del env["DATABASE_URL"]

    result = await run_until_healthy(tmp_path, env)

    _only_the_bot_s_lines(result)
    assert "Telegram accepted the token: this is @invoice_test_bot" in result.out
    assert "CryptoCloud accepted the keys" in result.out
    warning = [line for line in result.out.splitlines() if "CRYPTOCLOUD_SECRET_KEY" in line]
    assert len(warning) == 1 and " WARNING " in warning[0], result.out
    assert "postbacks) will be refused until it is set" in warning[0]
    assert (tmp_path / "data" / "bot.sqlite3").exists()
    assert telegram.calls_to("getMe")


async def test_the_example_file_with_the_required_cryptoprocessing_values_starts(
    tmp_path: Path, telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing
) -> None:
    required = {
        "TELEGRAM_BOT_TOKEN": TOKEN, "PROVIDER": "cryptoprocessing",
        "CRYPTOPROCESSING_API_KEY": CP_KEY, "CRYPTOPROCESSING_SECRET_KEY": CP_SECRET,
        "INVOICE_URL_SUCCESS": "https://shop.example.com/paid",
        "INVOICE_URL_FAILED": "https://shop.example.com/failed",
    }  # fmt: skip
    (tmp_path / ".env").write_text(_example_with(required), encoding="utf-8")
    env = _env(tmp_path, telegram, CRYPTOPROCESSING_BASE_URL=cryptoprocessing.base_url)

    result = await run_until_healthy(tmp_path, env)

    _only_the_bot_s_lines(result)
    assert "CryptoProcessing accepted the keys" in result.out
    assert "CRYPTOCLOUD_SECRET_KEY" not in result.out


async def test_an_unreachable_provider_lets_the_bot_start_with_a_warning(
    tmp_path: Path, telegram: FakeTelegram
) -> None:
    env = _env(tmp_path, telegram, TELEGRAM_BOT_TOKEN=TOKEN, PROVIDER="cryptocloud",
               CRYPTOCLOUD_API_KEY=CC_KEY, CRYPTOCLOUD_SHOP_ID=CC_SHOP,
               CRYPTOCLOUD_SECRET_KEY=CC_SECRET, CRYPTOCLOUD_BASE_URL=_closed_url())  # fmt: skip

    result = await run_until_healthy(tmp_path, env)

    assert "cannot check the CryptoCloud keys now (cryptocloud is unreachable)" in result.out
    assert "starting anyway" in result.out


async def test_a_self_hosted_bot_api_accepts_an_http_public_url_with_a_warning(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    # The fake's http://127.0.0.1 address is a self-hosted Bot API server for the bot.
    env = _env(tmp_path, telegram, **_cloud(cryptocloud, PUBLIC_BASE_URL="http://10.0.0.5:8080"))

    result = await run_until_healthy(tmp_path, env)

    warning = [line for line in result.out.splitlines() if "PUBLIC_BASE_URL http://" in line]
    assert len(warning) == 1 and " WARNING " in warning[0], result.out
    assert "payment providers cannot reach it" in warning[0]


async def test_telegram_answering_late_is_retried_until_it_answers(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    telegram.fail_next("getMe", "Bad Gateway", 502)
    telegram.fail_next("getMe", "Bad Gateway", 502)
    env = _env(tmp_path, telegram, TELEGRAM_STARTUP_RETRY_SECONDS="20", **_cloud(cryptocloud))

    result = await run_until_healthy(tmp_path, env)

    assert len(telegram.calls_to("getMe")) >= 3
    assert "cannot reach the Telegram Bot API" in result.out and "retrying" in result.out


# --------------------------------------------------------------------------- refusals


async def test_a_blank_token_is_one_line(tmp_path: Path, telegram: FakeTelegram) -> None:
    env = _env(tmp_path, telegram, TELEGRAM_BOT_TOKEN="", PROVIDER="cryptocloud",
               CRYPTOCLOUD_API_KEY=CC_KEY, CRYPTOCLOUD_SHOP_ID=CC_SHOP)  # fmt: skip
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert result.problems == [
        "TELEGRAM_BOT_TOKEN: is required but not set: the token @BotFather gave you"
    ]


async def test_a_malformed_token_is_one_line_without_the_value(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    bad = TOKEN.replace(":", " ")
    env = _env(tmp_path, telegram, **_cloud(cryptocloud, TELEGRAM_BOT_TOKEN=bad))
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert len(result.problems) == 1, result.out
    assert result.problems[0].startswith("TELEGRAM_BOT_TOKEN: is not a bot token")
    assert bad not in result.out


async def test_a_token_telegram_refuses_is_one_line_without_the_token(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    env = _env(tmp_path, telegram, **_cloud(cryptocloud, TELEGRAM_BOT_TOKEN=OTHER_TOKEN))
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert len(result.problems) == 1, result.out
    assert result.problems[0].startswith(
        "TELEGRAM_BOT_TOKEN: Telegram refused this token (Unauthorized)"
    )
    assert "@BotFather" in result.problems[0]


async def test_an_unreachable_telegram_is_retried_then_one_line(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    env = _env(tmp_path, telegram, TELEGRAM_API_BASE_URL=_closed_url("/bot"), **_cloud(cryptocloud))
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert len(result.problems) == 1, result.out
    problem = result.problems[0]
    assert problem.startswith(
        "TELEGRAM_API_BASE_URL: cannot reach the Bot API at http://127.0.0.1:"
    )
    tries = re.search(r"tried (\d+) times", problem)
    assert tries is not None and int(tries.group(1)) >= 2, problem


async def test_ids_that_are_not_numbers_say_how_to_find_yours(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    env = _env(tmp_path, telegram, **_cloud(cryptocloud, ADMIN_IDS="@ada"))
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert len(result.problems) == 1, result.out
    assert result.problems[0].startswith("ADMIN_IDS: '@ada' is not a numeric Telegram user id")
    assert "send it /start" in result.problems[0]
    assert "Input should be" not in result.out


async def test_blank_keys_are_named_not_an_assertion_error(
    tmp_path: Path, telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing
) -> None:
    env = _env(
        tmp_path,
        telegram,
        **_processing(
            cryptoprocessing, CRYPTOPROCESSING_API_KEY="", CRYPTOPROCESSING_SECRET_KEY=" "
        ),
    )
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert result.problems == [
        "CRYPTOPROCESSING_API_KEY: is required with PROVIDER=cryptoprocessing but not set",
        "CRYPTOPROCESSING_SECRET_KEY: is required with PROVIDER=cryptoprocessing but not set",
    ]
    assert "AssertionError" not in result.out


async def test_every_settings_problem_is_one_line_at_once(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    env = _env(tmp_path, telegram, **_cloud(
        cryptocloud, CRYPTOCLOUD_API_KEY="", MERCHANT_IDS="12,bob", NOTIFY_CHAT_ID="@shop",
        ALLOW_TEST_PAYMENTS="maybe", TELEGRAM_WEBHOOK_SECRET="", PUBLIC_BASE_URL="",
    ))  # fmt: skip
    result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert [problem.partition(":")[0] for problem in result.problems] == [
        "CRYPTOCLOUD_API_KEY",
        "ALLOW_TEST_PAYMENTS",
        "MERCHANT_IDS",
        "NOTIFY_CHAT_ID",
    ], result.out
    assert "ALLOW_TEST_PAYMENTS: must be true or false" in result.problems


@pytest.mark.parametrize("provider", ["cryptocloud", "cryptoprocessing"])
async def test_keys_the_provider_refuses_stop_the_bot_with_one_line(
    tmp_path: Path,
    telegram: FakeTelegram,
    cryptocloud: FakeCryptoCloud,
    cryptoprocessing: FakeCryptoProcessing,
    provider: str,
) -> None:
    if provider == "cryptocloud":
        values = _cloud(cryptocloud, CRYPTOCLOUD_API_KEY=CP_KEY)  # someone else's key
        expected = "CRYPTOCLOUD_API_KEY: CryptoCloud refused the API key (HTTP 401)"
    else:
        values = _processing(cryptoprocessing, CRYPTOPROCESSING_SECRET_KEY=CC_SECRET)
        expected = (
            "CRYPTOPROCESSING_API_KEY, CRYPTOPROCESSING_SECRET_KEY: CryptoProcessing refused "
            "the key pair (the secret key does not belong to the API key)"
        )
    result = await run_until_exit(tmp_path, _env(tmp_path, telegram, **values))
    assert result.code == 2
    assert len(result.problems) == 1, result.out
    assert result.problems[0].startswith(expected), result.problems[0]


async def test_a_refused_token_and_refused_keys_are_both_reported(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    values = _cloud(cryptocloud, TELEGRAM_BOT_TOKEN=OTHER_TOKEN, CRYPTOCLOUD_API_KEY=CP_KEY)
    result = await run_until_exit(tmp_path, _env(tmp_path, telegram, **values))
    assert result.code == 2
    assert [problem.partition(":")[0] for problem in result.problems] == [
        "TELEGRAM_BOT_TOKEN",
        "CRYPTOCLOUD_API_KEY",
    ], result.out


async def test_a_failure_while_starting_is_one_line_not_a_traceback(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _env(tmp_path, telegram, HTTP_PORT=str(port), **_cloud(cryptocloud))
        result = await run_until_exit(tmp_path, env)
    assert result.code == 2
    assert result.problems == [
        f"HTTP_PORT: port {port} on 127.0.0.1 is already in use; stop the program that uses it "
        "or choose another HTTP_PORT"
    ], result.out


# --------------------------------------------------------------------------- in process


def _settings(telegram_url: str, **values: Any) -> Settings:
    return Settings(
        _env_file=None, telegram_bot_token=TOKEN, telegram_api_base_url=telegram_url,
        provider="cryptocloud", cryptocloud_api_key=CC_KEY, cryptocloud_shop_id=CC_SHOP,
        **values,
    )  # fmt: skip


async def test_the_telegram_check_backs_off_within_its_budget() -> None:
    settings = _settings(_closed_url("/bot"))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(StartupError) as caught:
        await check_telegram(settings, retry_seconds=1.2)
    elapsed = loop.time() - started
    # 0.5 s, then 0.7 s (what is left of the budget): three attempts, about 1.2 s in all.
    assert 1.1 <= elapsed < 10, elapsed
    tries = re.search(r"tried (\d+) times", caught.value.problems[0])
    assert tries is not None and int(tries.group(1)) >= 3, caught.value.problems


async def test_the_telegram_check_names_the_bot(telegram: FakeTelegram) -> None:
    assert await check_telegram(_settings(telegram.base_url), retry_seconds=0) == "invoice_test_bot"


def test_failures_escaping_start_up_are_described_in_one_line() -> None:
    settings = _settings("http://127.0.0.1:1/bot")
    described = describe_failure(KeyError("command-new"), settings)
    assert described == "start-up failed: KeyError: 'command-new'"
    lines = describe_failure(RuntimeError("first line\nsecond line"), settings)
    assert lines == "start-up failed: RuntimeError: first line"
    denied = describe_failure(PermissionError(13, "Permission denied", "/data"), settings)
    assert denied == "cannot use /data: Permission denied"


async def test_a_second_process_on_the_same_sqlite_file_is_refused(
    tmp_path: Path, telegram: FakeTelegram, cryptocloud: FakeCryptoCloud
) -> None:
    env = _env(tmp_path, telegram, **_cloud(cryptocloud))
    second = tmp_path / "second"
    second.mkdir()

    async def start_another() -> None:
        result = await run_until_exit(second, env)
        assert result.code == 2
        assert "another bot process is already using" in result.out
        assert "use PostgreSQL" in result.out

    first = await run_until_healthy(tmp_path, env, start_another)
    assert "Generated a data key" in first.out  # the first start made data.key, once

    again = await run_until_healthy(tmp_path, env)  # once the first is gone, a restart runs
    assert "Generated a data key" not in again.out
