"""Start-up checks run before the bot is built: Telegram takes the token, the provider the keys.

Every failure becomes one readable line that names what to fix, collected in `StartupError`;
`python -m bot` prints them and exits with code 2. Nothing here prints a traceback or a
secret. What only limits the bot (the provider cannot be reached right now, an address
payment providers cannot call back) is logged as a warning and the bot starts anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import logging
import re
import socket
import warnings
from urllib.parse import urlsplit

import httpx
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from telegram import Bot
from telegram.error import InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import HTTPXRequest

from bot.config import ProviderName, Settings, TelegramMode
from bot.domain import StartupRefused
from bot.providers import build_provider
from bot.providers.base import ProviderAuthError, ProviderError

logger = logging.getLogger(__name__)

PROVIDER_LABELS = {
    ProviderName.CRYPTOPROCESSING: "CryptoProcessing",
    ProviderName.CRYPTOCLOUD: "CryptoCloud",
}
_FIRST_RETRY_DELAY = 0.5
_MAX_RETRY_DELAY = 8.0
_MAX_DETAIL = 200


class StartupError(Exception):
    """The bot must not start: one readable line per problem, no secret in any of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL: enough to say where, never a path that could hold a key."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _detail(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 3] + "..."


def settings_warnings(settings: Settings) -> list[str]:
    """Settings the bot runs with but should tell the operator about."""
    found: list[str] = []
    if settings.public_base_url is not None and not settings.public_base_url_is_public:
        found.append(
            f"PUBLIC_BASE_URL {settings.public_base_url} is not a public https address: "
            "payment providers cannot reach it, so their payment callbacks will not arrive"
        )
    if settings.provider is ProviderName.CRYPTOCLOUD and settings.cryptocloud_secret_key is None:
        polling = (
            f"; open invoices are still checked every {settings.reconcile_interval_seconds:g} s"
            if settings.reconcile_interval_seconds > 0
            else ""
        )
        found.append(
            "CRYPTOCLOUD_SECRET_KEY is not set: CryptoCloud payment notifications (postbacks) "
            f"will be refused until it is set{polling}"
        )
    return found


# --------------------------------------------------------------------------- Telegram


def _telegram_reason(exc: TelegramError) -> str:
    if isinstance(exc, TimedOut):
        return "no answer in time"
    return _detail(exc.message.removeprefix("httpx."))


def _retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB warns about the value's future type
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def _token_refused(settings: Settings, exc: InvalidToken) -> str:
    # Bot.initialize re-raises with the token in the message; the original has only
    # Telegram's description ("Unauthorized" or "Not Found").
    original = exc.__cause__ if isinstance(exc.__cause__, TelegramError) else None
    description = _detail(original.message) if original is not None else "refused"
    if "not found" in description.lower():
        return (
            f"TELEGRAM_BOT_TOKEN: the Bot API at {_origin(settings.telegram_api_base_url)} "
            f"does not know this token ({description}); copy it again from @BotFather "
            "(/mybots, API Token), and check that TELEGRAM_API_BASE_URL ends in /bot"
        )
    return (
        f"TELEGRAM_BOT_TOKEN: Telegram refused this token ({description}); copy it again "
        "from @BotFather (/mybots, API Token): a revoked token stops working"
    )


def _unreachable(settings: Settings, reason: str, attempts: int, seconds: float) -> str:
    where = _origin(settings.telegram_api_base_url)
    advice = (
        "check this machine's internet connection, DNS, proxy and firewall "
        "(outgoing https to api.telegram.org)"
        if settings.telegram_api_is_official
        else "check that your Bot API server is running and that TELEGRAM_API_BASE_URL is right"
    )
    tried = f"tried {attempts} time{'s' if attempts != 1 else ''} in {seconds:.0f} s"
    return (
        f"TELEGRAM_API_BASE_URL: cannot reach the Bot API at {where} ({reason}; {tried}); {advice}"
    )


async def check_telegram(settings: Settings, *, retry_seconds: float | None = None) -> str:
    """Ask Telegram who the bot is with the configured token; returns its @username.

    Network failures and 5xx answers are retried with exponential backoff for
    `retry_seconds` (default TELEGRAM_STARTUP_RETRY_SECONDS) in all; a refused token is not.
    """
    budget = settings.telegram_startup_retry_seconds if retry_seconds is None else retry_seconds
    bot = Bot(
        settings.telegram_bot_token.get_secret_value(),
        base_url=settings.telegram_api_base_url,
        request=HTTPXRequest(connection_pool_size=1, connect_timeout=5.0, read_timeout=10.0),
        get_updates_request=HTTPXRequest(connection_pool_size=1),
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    delay = _FIRST_RETRY_DELAY
    attempts = 0
    try:
        while True:
            attempts += 1
            try:
                await bot.initialize()
                return bot.username
            except InvalidToken as exc:
                raise StartupError([_token_refused(settings, exc)]) from None
            except RetryAfter as exc:
                wait, reason = _retry_after_seconds(exc), "Telegram asked to wait"
            except NetworkError as exc:  # also timeouts and 5xx answers
                wait, reason = delay, _telegram_reason(exc)
            except TelegramError as exc:
                raise StartupError(
                    [
                        f"TELEGRAM_API_BASE_URL: {_origin(settings.telegram_api_base_url)} did "
                        f"not answer like a Bot API server ({_telegram_reason(exc)})"
                    ]
                ) from None
            remaining = started + budget - loop.time()
            if remaining <= 0:
                raise StartupError(
                    [_unreachable(settings, reason, attempts, loop.time() - started)]
                )
            if attempts == 1:
                logger.warning(
                    "cannot reach the Telegram Bot API at %s (%s); retrying for up to %.0f s",
                    _origin(settings.telegram_api_base_url),
                    reason,
                    budget,
                )
            await asyncio.sleep(min(wait, remaining))
            delay = min(delay * 2, _MAX_RETRY_DELAY)
    finally:
        with contextlib.suppress(Exception):
            await bot.shutdown()


# --------------------------------------------------------------------------- provider


def _keys_refused(settings: Settings, exc: ProviderAuthError) -> str:
    label = PROVIDER_LABELS[settings.provider]
    status = f"HTTP {exc.http_status}" if exc.http_status else "refused"
    if settings.provider is ProviderName.CRYPTOPROCESSING:
        code = re.search(r"\((bad_header_\w+)\)", str(exc))
        which = {
            "bad_header_key": "the API key is not known",
            "bad_header_signature": "the secret key does not belong to the API key",
        }.get(code.group(1) if code else "", status)
        return (
            f"CRYPTOPROCESSING_API_KEY, CRYPTOPROCESSING_SECRET_KEY: {label} refused the key "
            f"pair ({which}); copy both halves of the key again, and check that "
            "CRYPTOPROCESSING_BASE_URL is the one they were made for (sandbox and production "
            "keys differ) and the key's IP whitelist"
        )
    return (
        f"CRYPTOCLOUD_API_KEY: {label} refused the API key ({status}); copy the API key "
        "again from the project's settings (it is neither the secret key nor the shop id)"
    )


async def check_provider(
    settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """A harmless authenticated read: refused keys stop the bot, an unreachable provider not."""
    label = PROVIDER_LABELS[settings.provider]
    provider = build_provider(settings, transport)
    try:
        await provider.check_credentials()
    except ProviderAuthError as exc:
        raise StartupError([_keys_refused(settings, exc)]) from None
    except ProviderError as exc:
        logger.warning(
            "cannot check the %s keys now (%s): starting anyway; invoices cannot be created "
            "until %s answers",
            label,
            _detail(str(exc)),
            label,
        )
    except Exception as exc:  # the check is advice: the bot can run without it
        logger.warning(
            "cannot check the %s keys now (%s): starting anyway", label, type(exc).__name__
        )
    else:
        logger.info("%s accepted the keys", label)
    finally:
        await provider.aclose()


async def run_checks(
    settings: Settings,
    *,
    telegram_retry_seconds: float | None = None,
    provider_transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Warn about limiting settings, then check Telegram and the provider side by side."""
    for line in settings_warnings(settings):
        logger.warning("%s", line)
    telegram, provider = await asyncio.gather(
        check_telegram(settings, retry_seconds=telegram_retry_seconds),
        check_provider(settings, transport=provider_transport),
        return_exceptions=True,
    )
    problems: list[str] = []
    for result in (telegram, provider):
        if isinstance(result, StartupError):
            problems.extend(result.problems)
        elif isinstance(result, BaseException):
            raise result
    if problems:
        raise StartupError(problems)
    logger.info("Telegram accepted the token: this is @%s", telegram)


# --------------------------------------------------------------------------- later failures


def describe_failure(exc: BaseException, settings: Settings) -> str:
    """One line for an exception that escaped building or starting the bot.

    The caller masks secrets in it; the wording names the setting to look at when there
    is one.
    """
    name = type(exc).__name__
    if isinstance(exc, StartupRefused):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return (
            f"HTTP_PORT: port {settings.http_port} on {settings.http_host} is already in use; "
            "stop the program that uses it or choose another HTTP_PORT"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL:
        return f"HTTP_HOST: {settings.http_host} is not an address of this machine"
    if isinstance(exc, socket.gaierror):
        return f"HTTP_HOST: {settings.http_host} cannot be resolved ({_detail(str(exc))})"
    if isinstance(exc, PermissionError) and exc.filename is None:
        return (
            f"HTTP_PORT: not allowed to listen on port {settings.http_port} "
            "(ports below 1024 need privileges)"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"cannot use {exc.filename}: {exc.strerror or name}"
    if isinstance(exc, DBAPIError):
        return f"DATABASE_URL: the database cannot be used ({_detail(str(exc.orig))})"
    if isinstance(exc, SQLAlchemyError):
        return f"DATABASE_URL: the database cannot be used ({name}: {_detail(str(exc))})"
    if isinstance(exc, TelegramError):
        hint = (
            " (check PUBLIC_BASE_URL and TELEGRAM_WEBHOOK_SECRET)"
            if settings.telegram_mode is TelegramMode.WEBHOOK
            else ""
        )
        return f"Telegram refused a start-up request{hint}: {name}: {_detail(exc.message)}"
    if isinstance(exc, ProviderError):
        label = PROVIDER_LABELS[settings.provider]
        return f"{label} failed during start-up: {name}: {_detail(str(exc))}"
    return f"start-up failed: {name}: {_detail(str(exc))}"
