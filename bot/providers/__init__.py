"""Provider adapters behind one interface; `build_provider` picks the configured one."""

from __future__ import annotations

import httpx

from bot.config import ProviderName, Settings
from bot.providers.base import PaymentProvider
from bot.providers.cryptocloud import CryptoCloudProvider
from bot.providers.cryptoprocessing import CryptoProcessingProvider

__all__ = ["PaymentProvider", "build_provider"]


def build_provider(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> PaymentProvider:
    timeout = httpx.Timeout(settings.provider_timeout_seconds, connect=10.0)
    if settings.provider is ProviderName.CRYPTOPROCESSING:
        assert settings.cryptoprocessing_api_key and settings.cryptoprocessing_secret_key
        assert settings.invoice_url_success and settings.invoice_url_failed
        client = httpx.AsyncClient(
            base_url=settings.cryptoprocessing_base_url, timeout=timeout, transport=transport
        )
        return CryptoProcessingProvider(
            client,
            api_key=settings.cryptoprocessing_api_key.get_secret_value(),
            secret_key=settings.cryptoprocessing_secret_key.get_secret_value(),
            url_success=settings.invoice_url_success,
            url_failed=settings.invoice_url_failed,
            timer=settings.cryptoprocessing_invoice_timer,
        )
    assert settings.cryptocloud_api_key and settings.cryptocloud_shop_id
    client = httpx.AsyncClient(
        base_url=settings.cryptocloud_base_url, timeout=timeout, transport=transport
    )
    return CryptoCloudProvider(
        client,
        api_key=settings.cryptocloud_api_key.get_secret_value(),
        shop_id=settings.cryptocloud_shop_id,
        time_to_pay_minutes=settings.cryptocloud_time_to_pay_minutes,
        secret_key=(
            settings.cryptocloud_secret_key.get_secret_value()
            if settings.cryptocloud_secret_key
            else None
        ),
    )
