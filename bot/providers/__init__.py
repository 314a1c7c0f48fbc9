"""Provider adapters behind one interface, and the registry that builds them from settings.

Adding a provider: one module here, one line in `_BUILDERS`, and its test fake.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import httpx

from bot.config import ProviderName, Settings
from bot.providers.base import PaymentProvider
from bot.providers.cryptocloud import CryptoCloudProvider
from bot.providers.cryptoprocessing import CryptoProcessingProvider

__all__ = ["PaymentProvider", "ProviderRegistry", "build_provider", "build_providers"]

Transport = httpx.AsyncBaseTransport | None


def _client(settings: Settings, base_url: str, transport: Transport) -> httpx.AsyncClient:
    timeout = httpx.Timeout(settings.provider_timeout_seconds, connect=10.0)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)


def _cryptoprocessing(settings: Settings, transport: Transport) -> PaymentProvider | None:
    if not (settings.cryptoprocessing_api_key and settings.cryptoprocessing_secret_key):
        return None
    return CryptoProcessingProvider(
        _client(settings, settings.cryptoprocessing_base_url, transport),
        api_key=settings.cryptoprocessing_api_key.get_secret_value(),
        secret_key=settings.cryptoprocessing_secret_key.get_secret_value(),
        # Checked by the settings when this provider is the active one; an inactive one only
        # settles and follows the invoices it made before.
        url_success=settings.invoice_url_success or "",
        url_failed=settings.invoice_url_failed or "",
        timer=settings.cryptoprocessing_invoice_timer,
    )


def _cryptocloud(settings: Settings, transport: Transport) -> PaymentProvider | None:
    if not (settings.cryptocloud_api_key and settings.cryptocloud_shop_id):
        return None
    return CryptoCloudProvider(
        _client(settings, settings.cryptocloud_base_url, transport),
        api_key=settings.cryptocloud_api_key.get_secret_value(),
        shop_id=settings.cryptocloud_shop_id,
        time_to_pay_minutes=settings.cryptocloud_time_to_pay_minutes,
        secret_key=(
            settings.cryptocloud_secret_key.get_secret_value()
            if settings.cryptocloud_secret_key
            else None
        ),
    )


_BUILDERS: dict[ProviderName, Callable[[Settings, Transport], PaymentProvider | None]] = {
    ProviderName.CRYPTOPROCESSING: _cryptoprocessing,
    ProviderName.CRYPTOCLOUD: _cryptocloud,
}


class ProviderRegistry(Mapping[str, PaymentProvider]):
    """Every provider whose keys are configured, by name; `active` makes new invoices.

    Invoices stay with the provider that made them: after PROVIDER changes, old attempts are
    still settled, followed and cancelled there, as long as its keys remain configured.
    """

    def __init__(self, providers: Mapping[str, PaymentProvider], active: str) -> None:
        if active not in providers:
            raise ValueError(f"the active provider {active} has no keys")
        self._providers = dict(providers)
        self.active = providers[active]

    def __getitem__(self, name: str) -> PaymentProvider:
        return self._providers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._providers)

    def __len__(self) -> int:
        return len(self._providers)

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


def build_providers(settings: Settings, transport: Transport = None) -> ProviderRegistry:
    built = {name.value: build(settings, transport) for name, build in _BUILDERS.items()}
    return ProviderRegistry(
        {name: provider for name, provider in built.items() if provider is not None},
        settings.provider.value,
    )


def build_provider(settings: Settings, transport: Transport = None) -> PaymentProvider:
    """The active provider alone (start-up checks use it and close it)."""
    provider = _BUILDERS[settings.provider](settings, transport)
    if provider is None:
        raise ValueError(f"PROVIDER={settings.provider.value} has no keys")
    return provider
