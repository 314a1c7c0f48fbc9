"""Settings read once from the environment and `.env`, validated before the bot starts.

An empty value (`NOTIFY_CHAT_ID=`) means "not set", so `.env.example` can be copied as it is
and only the required values filled in. Every problem is reported with the variable's name,
all at once, by `load_settings`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from storage.sealing import MIN_KEY_LENGTH


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class ProviderName(StrEnum):
    CRYPTOPROCESSING = "cryptoprocessing"
    CRYPTOCLOUD = "cryptocloud"


OFFICIAL_BOT_API_HOST = "api.telegram.org"
# Ports Telegram's own Bot API delivers webhooks to (a self-hosted server takes any).
OFFICIAL_WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})

_TOKEN_RE = re.compile(r"\d+:[A-Za-z0-9_-]+")
_USER_ID_RE = re.compile(r"\d{1,19}")
_CHAT_ID_RE = re.compile(r"-?\d{1,19}")
_FIND_YOUR_ID = (
    "to find yours, leave the list empty, start the bot and send it /start: it answers "
    "anyone it does not know with their id"
)

# Settings that belong to one provider: required only while that provider is the active one.
_PROVIDER_REQUIRED: dict[str, ProviderName] = {
    "cryptoprocessing_api_key": ProviderName.CRYPTOPROCESSING,
    "cryptoprocessing_secret_key": ProviderName.CRYPTOPROCESSING,
    "invoice_url_success": ProviderName.CRYPTOPROCESSING,
    "invoice_url_failed": ProviderName.CRYPTOPROCESSING,
    "cryptocloud_api_key": ProviderName.CRYPTOCLOUD,
    "cryptocloud_shop_id": ProviderName.CRYPTOCLOUD,
}


def _split_list(value: Any) -> Any:
    """Accept `1,2, 3` (or spaces, or semicolons) from the environment, a real list from code."""
    if isinstance(value, str):
        return [item for item in re.split(r"[,;\s]+", value) if item]
    if isinstance(value, int):
        return [value]
    return value


def _unset_if_blank(value: Any) -> Any:
    """`KEY=` or `KEY=   ` means not set; surrounding spaces of a pasted value are dropped."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if isinstance(raw, str):
        raw = raw.strip()
        return raw or None
    return value


def is_public_https_url(url: str) -> bool:
    """https with a domain name (not an IP address, not a single-label host like localhost)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" and "." in host and not host.replace(".", "").isdigit()


def is_official_bot_api(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() == OFFICIAL_BOT_API_HOST


# Where settings come from: the environment, then `.env`; a blank value is "not set". Shared
# with the alembic CLI (storage/migrations/env.py), so both read the same DATABASE_URL.
SETTINGS_SOURCES = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    extra="ignore",
    case_sensitive=False,
    env_ignore_empty=True,
)


class Settings(BaseSettings):
    model_config = SETTINGS_SOURCES

    telegram_bot_token: SecretStr
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_mode: TelegramMode = TelegramMode.POLLING
    telegram_webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    # How long start-up keeps retrying while Telegram cannot be reached, in seconds.
    telegram_startup_retry_seconds: float = Field(default=30.0, ge=0, le=3600)

    # The bot's own HTTP server: provider callbacks, health check, Telegram webhook.
    http_host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    http_port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = Field(default=None, validate_default=True)
    http_max_body_bytes: int = Field(default=65536, ge=1024)

    provider: ProviderName

    cryptoprocessing_api_key: SecretStr | None = Field(default=None, validate_default=True)
    cryptoprocessing_secret_key: SecretStr | None = Field(default=None, validate_default=True)
    cryptoprocessing_base_url: str = "https://app.cryptoprocessing.com/api/v2"
    cryptoprocessing_invoice_timer: bool = False

    cryptocloud_api_key: SecretStr | None = Field(default=None, validate_default=True)
    cryptocloud_shop_id: str | None = Field(default=None, validate_default=True)
    cryptocloud_secret_key: SecretStr | None = None
    cryptocloud_base_url: str = "https://api.cryptocloud.plus"
    cryptocloud_time_to_pay_minutes: int = Field(default=1440, ge=5, le=60 * 24 * 30)
    # CryptoCloud test-mode payments (a new project starts in test mode, where anyone with
    # dashboard access can confirm an invoice without paying) never count as paid unless
    # this is true; when allowed they are shown as test everywhere.
    allow_test_payments: bool = False

    invoice_url_success: str | None = Field(default=None, validate_default=True)
    invoice_url_failed: str | None = Field(default=None, validate_default=True)

    database_url: str = "sqlite+aiosqlite:///./data/bot.sqlite3"
    # The secret that seals payers' sender data at rest and keys the customer lookup. Unset
    # with SQLite: generated on first start into data.key beside the database file.
    data_key: SecretStr | None = Field(default=None, validate_default=True)
    # Erase the sender data of customers with no invoice in this many days (unset or 0: keep).
    personal_data_retention_days: int | None = Field(default=None, ge=0, le=36500)

    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    merchant_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    default_locale: str = "en"
    # Your shop's name, as your customers know it: the message they get names it.
    shop_name: str | None = Field(default=None, max_length=64)
    common_currencies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["USD", "EUR", "BTC", "ETH"]
    )
    max_invoice_amount: Decimal = Field(default=Decimal("1000000"), gt=0)
    conversation_timeout_seconds: float = Field(default=900, gt=0)
    provider_timeout_seconds: float = Field(default=20.0, gt=0)
    currency_cache_seconds: int = Field(default=3600, ge=0)
    log_level: str = "INFO"
    notify_chat_id: int | None = None
    # Remind a payer who opened the invoice in the bot this long before it expires unpaid
    # (once; 0 turns it off), and list to merchants their invoices expiring that soon.
    payer_reminder_minutes: int = Field(default=60, ge=0, le=60 * 24 * 30)
    merchant_reminder_minutes: int = Field(default=60, ge=0, le=60 * 24 * 30)
    reconcile_interval_seconds: float = Field(default=300, ge=0)  # 0 turns the job off

    @field_validator(
        "telegram_webhook_secret", "public_base_url", "cryptoprocessing_api_key",
        "cryptoprocessing_secret_key", "cryptocloud_api_key", "cryptocloud_shop_id",
        "cryptocloud_secret_key", "invoice_url_success", "invoice_url_failed", "notify_chat_id",
        "data_key", "personal_data_retention_days", mode="before",
    )  # fmt: skip
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return _unset_if_blank(value)

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _check_token(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(raw, str):
            return value
        raw = raw.strip()
        if not raw:
            raise ValueError("is blank; put the token @BotFather gave you here")
        if raw.lower().startswith("bot") and _TOKEN_RE.fullmatch(raw[3:]):
            raise ValueError("starts with 'bot'; use the token exactly as @BotFather gives it")
        if not _TOKEN_RE.fullmatch(raw):
            raise ValueError(
                "is not a bot token: a token is digits, a colon, then letters, digits, _ and - "
                "(like 123456789:AAH...); copy it again from @BotFather (/mybots, API Token)"
            )
        return raw

    @field_validator("admin_ids", "merchant_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: Any) -> Any:
        items = _split_list(value)
        if not isinstance(items, list):
            return items
        bad = [
            str(item) for item in items if isinstance(item, str) and not _USER_ID_RE.fullmatch(item)
        ]
        if bad:
            shown = ", ".join(repr(item[:40]) for item in bad[:3])
            noun = (
                "is not a numeric Telegram user id"
                if len(bad) == 1
                else "are not numeric Telegram user ids"
            )
            raise ValueError(
                f"{shown} {noun}; ids are numbers like 123456789, separated by commas "
                f"({_FIND_YOUR_ID})"
            )
        return items

    @field_validator("notify_chat_id", mode="before")
    @classmethod
    def _parse_chat_id(cls, value: Any) -> Any:
        if isinstance(value, str) and not _CHAT_ID_RE.fullmatch(value):
            raise ValueError(
                "must be a numeric Telegram chat id, like -1001234567890 for a group "
                "(not a @name or an invite link)"
            )
        return value

    @field_validator("common_currencies", mode="before")
    @classmethod
    def _parse_currencies(cls, value: Any) -> Any:
        items = _split_list(value)
        return [str(item).upper() for item in items] if isinstance(items, list) else items

    @field_validator("default_locale")
    @classmethod
    def _normalise_locale(cls, value: str) -> str:
        return value.strip().lower()[:2] or "en"

    @field_validator("telegram_api_base_url", "cryptoprocessing_base_url", "cryptocloud_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_webhook_secret(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        if value is None:
            if info.data.get("telegram_mode") is TelegramMode.WEBHOOK:
                raise ValueError("is required with TELEGRAM_MODE=webhook but not set")
            return None
        secret = value.get_secret_value()
        if not (16 <= len(secret) <= 256) or not all(c.isalnum() or c in "_-" for c in secret):
            raise ValueError("must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _check_public_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        webhook = info.data.get("telegram_mode") is TelegramMode.WEBHOOK
        if value is None:
            if webhook:
                raise ValueError("is required with TELEGRAM_MODE=webhook but not set")
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("must be an http(s) URL, like https://bot.example.com")
        api = info.data.get("telegram_api_base_url")
        if api is not None and is_official_bot_api(api):
            if not is_public_https_url(value):
                raise ValueError(
                    "must be an https URL with a domain name (Telegram's Bot API and the "
                    "payment providers need one); http and local addresses work only with a "
                    "self-hosted Bot API server in TELEGRAM_API_BASE_URL"
                )
            if webhook and (parts.port or 443) not in OFFICIAL_WEBHOOK_PORTS:
                raise ValueError(
                    "must use port 443, 80, 88 or 8443: the only ones Telegram's Bot API "
                    "sends webhooks to"
                )
        return value.rstrip("/")

    @field_validator(*_PROVIDER_REQUIRED)
    @classmethod
    def _required_for_active_provider(cls, value: Any, info: ValidationInfo) -> Any:
        owner = _PROVIDER_REQUIRED[str(info.field_name)]
        if info.data.get("provider") is not owner:
            return value  # another provider's setting: optional, kept for its old invoices
        if value is None:
            raise ValueError(f"is required with PROVIDER={owner.value} but not set")
        # CryptoProcessing requires both redirects and rejects IPs and plain http.
        redirect = info.field_name in {"invoice_url_success", "invoice_url_failed"}
        if redirect and not is_public_https_url(value):
            raise ValueError(
                "must be an https URL with a domain name (CryptoProcessing refuses "
                "IP addresses and plain http)"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "is not a database URL; the default is sqlite+aiosqlite:///./data/bot.sqlite3"
            ) from None
        if "+" not in url.drivername:
            raise ValueError(
                "needs an async driver, like sqlite+aiosqlite:///./data/bot.sqlite3 "
                "or postgresql+asyncpg://..."
            )
        return value

    @field_validator("data_key")
    @classmethod
    def _check_data_key(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is None:
            url = info.data.get("database_url")
            if url is not None and not url.startswith("sqlite"):
                raise ValueError(
                    "is required with a PostgreSQL database: every bot process must seal and "
                    "read personal data with the same key (make one with: python -c "
                    '"import secrets; print(secrets.token_urlsafe(32))")'
                )
            return None
        if len(value.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_KEY_LENGTH} characters of random text (make one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @property
    def telegram_api_is_official(self) -> bool:
        """True with Telegram's own Bot API; False with a self-hosted Bot API server."""
        return is_official_bot_api(self.telegram_api_base_url)

    @property
    def public_base_url_is_public(self) -> bool:
        """Whether payment providers on the internet could reach PUBLIC_BASE_URL."""
        return self.public_base_url is not None and is_public_https_url(self.public_base_url)

    def callback_url(self, provider: ProviderName) -> str | None:
        """The URL to paste into the provider's dashboard."""
        return (
            f"{self.public_base_url}/callbacks/{provider.value}" if self.public_base_url else None
        )

    @property
    def sqlite_path(self) -> Path | None:
        """Where the SQLite file lives, so start-up can create its folder."""
        prefix = "sqlite+aiosqlite:///"
        if self.database_url.startswith(prefix):
            path = self.database_url[len(prefix) :].split("?", 1)[0]
            return None if path in {"", ":memory:"} else Path(path)
        return None

    def secret_values(self) -> list[str]:
        """Every configured secret, so logs and start-up messages can mask them."""
        values = [
            self.telegram_bot_token,
            self.telegram_webhook_secret,
            self.cryptoprocessing_api_key,
            self.cryptoprocessing_secret_key,
            self.cryptocloud_api_key,
            self.cryptocloud_secret_key,
            self.data_key,
        ]
        found = [value.get_secret_value() for value in values if value is not None]
        password = make_url(self.database_url).password
        if password:
            found.append(str(password))
        return found


class ConfigError(Exception):
    """Raised with one readable line per problem, so start-up can print it without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


_MISSING = {
    "TELEGRAM_BOT_TOKEN": "is required but not set: the token @BotFather gave you",
    "PROVIDER": "is required but not set: cryptoprocessing or cryptocloud",
}
# pydantic's wording for values of the wrong type, in the operator's terms.
_TYPE_MESSAGES = {
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "decimal_parsing": "must be a number",
}


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's report into plain sentences that name each variable."""
    try:
        return Settings(**overrides)
    except UnicodeDecodeError:
        raise ConfigError([".env: is not UTF-8 text; save it as UTF-8"]) from None
    except OSError as exc:
        raise ConfigError(
            [f".env: cannot be read ({exc.strerror or type(exc).__name__})"]
        ) from None
    except SettingsError as exc:
        raise ConfigError([f"the settings cannot be read: {exc}"]) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = str(error["loc"][0]).upper() if error["loc"] else ""
            if error["type"] == "missing":
                message = _MISSING.get(field, "is required but not set")
            elif error["type"] in _TYPE_MESSAGES:
                message = _TYPE_MESSAGES[error["type"]]
            else:
                message = error["msg"].removeprefix("Value error, ")
                message = message.replace("Input should be", "must be")
            problems.append(f"{field}: {message}" if field else message)
        raise ConfigError(problems) from None
