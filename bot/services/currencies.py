"""Which currencies the active provider accepts, cached, with a safe fallback."""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache

from babel.numbers import get_currency_precision, list_currencies

from bot.domain import Currency
from bot.providers.base import PaymentProvider, ProviderError

logger = logging.getLogger(__name__)

# Used only when the provider's list cannot be fetched; the provider still has the last word.
FALLBACK = (
    Currency("EUR", 2, "fiat"),
    Currency("USD", 2, "fiat"),
    Currency("BTC", 8, "crypto"),
    Currency("ETH", 8, "crypto"),
    Currency("LTC", 8, "crypto"),
)
_RETRY_AFTER_FAILURE = 60.0

# Decimal places of the currencies the providers told us about (a process-wide fact, not
# per-request state): cards and notices show every amount with its currency's own places.
_PROVIDER_DECIMALS: dict[str, int] = {currency.code: currency.decimals for currency in FALLBACK}


@cache
def _iso_currencies() -> frozenset[str]:
    return frozenset(list_currencies())


def decimals_of(code: str | None) -> int | None:
    """The currency's decimal places: the provider's word, else ISO 4217 (via Babel)."""
    if not code:
        return None
    code = code.upper()
    if code in _PROVIDER_DECIMALS:
        return _PROVIDER_DECIMALS[code]
    if code in _iso_currencies():
        return int(get_currency_precision(code))
    return None


class CurrencyCatalog:
    def __init__(self, provider: PaymentProvider, *, ttl_seconds: float, common: list[str]) -> None:
        self._provider = provider
        self._ttl = ttl_seconds
        self._common = common
        self._cache: dict[str, Currency] = {}
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def all(self) -> dict[str, Currency]:
        async with self._lock:
            if self._cache and time.monotonic() < self._expires:
                return self._cache
            try:
                fetched = await self._provider.currencies()
                self._cache = {currency.code: currency for currency in fetched}
                _PROVIDER_DECIMALS.update({c.code: c.decimals for c in fetched})
                self._expires = time.monotonic() + self._ttl
            except ProviderError as exc:
                logger.warning(
                    "currency list unavailable (%s); using %s",
                    exc.code,
                    "the cached list" if self._cache else "the built-in fallback",
                )
                if not self._cache:
                    self._cache = {currency.code: currency for currency in FALLBACK}
                self._expires = time.monotonic() + _RETRY_AFTER_FAILURE
            return self._cache

    async def get(self, code: str) -> Currency | None:
        return (await self.all()).get(code.upper())

    async def common(self) -> list[Currency]:
        """The configured quick-pick currencies the provider actually accepts, in order."""
        known = await self.all()
        picks = [known[code] for code in self._common if code in known]
        return picks or list(known.values())[:4]
