"""Settings read once from the environment and `.env`, validated before the bot starts."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class TelegramMode(StrEnum):
    POLLING = "polling"
    WEBHOOK = "webhook"


class ProviderName(StrEnum):
    CRYPTOPROCESSING = "cryptoprocessing"
    CRYPTOCLOUD = "cryptocloud"


def _split_csv(value: Any) -> Any:
    """Accept `1,2, 3` from the environment as well as a real list from code."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, int):
        return [value]
    return value


def _is_public_https_url(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" and "." in host and not host.replace(".", "").isdigit()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    telegram_bot_token: SecretStr
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_mode: TelegramMode = TelegramMode.POLLING
    telegram_webhook_secret: SecretStr | None = None

    # The bot's own HTTP server: provider callbacks, health check, Telegram webhook.
    http_host: str = "0.0.0.0"  # noqa: S104 - a container must listen on all interfaces
    http_port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = None
    http_max_body_bytes: int = Field(default=65536, ge=1024)

    provider: ProviderName

    cryptoprocessing_api_key: SecretStr | None = None
    cryptoprocessing_secret_key: SecretStr | None = None
    cryptoprocessing_base_url: str = "https://app.cryptoprocessing.com/api/v2"
    cryptoprocessing_invoice_timer: bool = False

    cryptocloud_api_key: SecretStr | None = None
    cryptocloud_shop_id: str | None = None
    cryptocloud_secret_key: SecretStr | None = None
    cryptocloud_base_url: str = "https://api.cryptocloud.plus"
    cryptocloud_time_to_pay_minutes: int = Field(default=1440, ge=5, le=60 * 24 * 30)

    invoice_url_success: str | None = None
    invoice_url_failed: str | None = None

    database_url: str = "sqlite+aiosqlite:///./data/bot.sqlite3"

    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    merchant_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    default_locale: str = "en"
    common_currencies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["USD", "EUR", "BTC", "ETH"]
    )
    max_invoice_amount: Decimal = Field(default=Decimal("1000000"), gt=0)
    conversation_timeout_seconds: float = Field(default=900, gt=0)
    provider_timeout_seconds: float = Field(default=20.0, gt=0)
    currency_cache_seconds: int = Field(default=3600, ge=0)
    log_level: str = "INFO"
    notify_chat_id: int | None = None
    reconcile_interval_seconds: float = Field(default=300, ge=0)  # 0 turns the job off

    @field_validator("admin_ids", "merchant_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("common_currencies", mode="before")
    @classmethod
    def _parse_currencies(cls, value: Any) -> Any:
        items = _split_csv(value)
        return [str(item).upper() for item in items] if isinstance(items, list) else items

    @field_validator("default_locale")
    @classmethod
    def _normalise_locale(cls, value: str) -> str:
        return value.strip().lower()[:2] or "en"

    @field_validator("telegram_api_base_url", "cryptoprocessing_base_url", "cryptocloud_base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _is_public_https_url(value):
            raise ValueError(
                "must be an https URL with a domain name (providers and Telegram need one)"
            )
        return value.rstrip("/")

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not (16 <= len(secret) <= 256) or not all(c.isalnum() or c in "_-" for c in secret):
                raise ValueError("must be 16-256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @model_validator(mode="after")
    def _check_provider_settings(self) -> Self:
        missing: list[str] = []
        if self.provider is ProviderName.CRYPTOPROCESSING:
            for name in ("cryptoprocessing_api_key", "cryptoprocessing_secret_key"):
                if getattr(self, name) is None:
                    missing.append(name.upper())
            # CryptoProcessing requires both redirects and rejects IPs and plain http.
            for name in ("invoice_url_success", "invoice_url_failed"):
                url = getattr(self, name)
                if url is None:
                    missing.append(name.upper())
                elif not _is_public_https_url(url):
                    raise ValueError(f"{name.upper()} must be an https URL with a domain name")
        else:
            for name in ("cryptocloud_api_key", "cryptocloud_shop_id"):
                if getattr(self, name) is None:
                    missing.append(name.upper())
        if missing:
            raise ValueError(f"PROVIDER={self.provider.value} needs " + ", ".join(missing))
        if self.telegram_mode is TelegramMode.WEBHOOK:
            needs = [
                name.upper()
                for name in ("public_base_url", "telegram_webhook_secret")
                if getattr(self, name) is None
            ]
            if needs:
                raise ValueError("TELEGRAM_MODE=webhook needs " + ", ".join(needs))
        return self

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
            path = self.database_url[len(prefix) :]
            return None if path in {"", ":memory:"} else Path(path)
        return None


class ConfigError(Exception):
    """Raised with one readable line per problem, so start-up can print it without a traceback."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's report into plain sentences that name each variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "missing":
                message = "is required but not set"
            problems.append(f"{field}: {message}" if field else message)
        raise ConfigError(problems) from None
