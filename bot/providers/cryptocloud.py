"""CryptoCloud API v2: `Authorization: Token <API key>`, JSON bodies, `{status, result}` replies."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

import httpx

from bot.domain import CreatedInvoice, Currency, EmailRule, InvoiceRequest, ProviderRequirements
from bot.providers.base import (
    PaymentProvider,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderUnavailable,
    ProviderValidationError,
)
from bot.providers.http import send
from bot.providers.wire import dump_json, load_json

logger = logging.getLogger("bot.providers")

PRODUCTION_BASE_URL = "https://api.cryptocloud.plus"

# The fiat currencies the create-invoice page lists, with their ISO 4217 minor units.
FIAT_DECIMALS: dict[str, int] = {
    "USD": 2, "UZS": 2, "KGS": 2, "KZT": 2, "AMD": 2, "AZN": 2, "BYN": 2, "AUD": 2, "TRY": 2,
    "AED": 2, "CAD": 2, "CNY": 2, "HKD": 2, "IDR": 2, "INR": 2, "JPY": 0, "PHP": 2, "SGD": 2,
    "THB": 2, "VND": 0, "MYR": 2, "RUB": 2, "UAH": 2, "EUR": 2, "GBP": 2,
}  # fmt: skip

_LIST_PAGE = 100
_LIST_MAX_PAGES = 5


class CryptoCloudProvider(PaymentProvider):
    name: ClassVar[str] = "cryptocloud"
    # CryptoCloud takes no sender data; the payer's email is optional and asked on its page.
    requirements: ClassVar[ProviderRequirements] = ProviderRequirements(
        sender_data=False, email=EmailRule.UNUSED
    )

    def __init__(
        self, client: httpx.AsyncClient, *, api_key: str, shop_id: str, time_to_pay_minutes: int
    ) -> None:
        self._client = client
        self._auth = f"Token {api_key}"
        self._shop_id = shop_id
        self._time_to_pay = {
            "hours": time_to_pay_minutes // 60,
            "minutes": time_to_pay_minutes % 60,
        }

    async def _call(self, path: str, payload: dict[str, Any]) -> Any:
        """POST and return `result` of a success reply; map everything else to typed errors."""
        headers = {
            "Authorization": self._auth,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        response = await send(
            self._client, self.name, path, content=dump_json(payload), headers=headers
        )
        status = response.status_code
        try:
            body = load_json(response.content)
        except ValueError:
            body = None
        if status in (401, 403) or (
            isinstance(body, dict)
            and isinstance(body.get("result"), dict)
            and "authorization" in body["result"]
        ):
            raise ProviderAuthError("cryptocloud refused the API key", http_status=status)
        if status == 429 or status >= 500:
            raise ProviderUnavailable(f"cryptocloud answered HTTP {status}", http_status=status)
        if status == 200 and isinstance(body, dict) and body.get("status") == "success":
            return body.get("result")
        if status == 200:
            raise ProviderBadResponse("cryptocloud answered 200 without a success body")
        fields: dict[str, str] = {}
        if isinstance(body, dict):
            result = body.get("result")
            if isinstance(result, dict):
                fields = {str(key): str(value) for key, value in result.items()}
            elif body.get("detail") is not None:
                fields = {"detail": str(body["detail"])}
        raise ProviderValidationError(
            f"cryptocloud rejected the request (HTTP {status})", fields=fields, http_status=status
        )

    @staticmethod
    def _created(invoice: Any) -> CreatedInvoice:
        if not isinstance(invoice, dict):
            raise ProviderBadResponse("cryptocloud answered without an invoice")
        uuid, link = invoice.get("uuid"), invoice.get("link")
        if not isinstance(uuid, str) or not isinstance(link, str) or not link:
            raise ProviderBadResponse("cryptocloud answered without uuid or link")
        # The docs show the link both with and without a scheme; a URL button needs one.
        if not link.startswith(("https://", "http://")):
            link = "https://" + link.lstrip("/")
        return CreatedInvoice(
            provider_invoice_id=uuid if uuid.startswith("INV-") else f"INV-{uuid}",
            pay_url=link,
            status=str(invoice.get("status") or "created"),
        )

    async def create_invoice(self, request: InvoiceRequest) -> CreatedInvoice:
        payload: dict[str, Any] = {
            "shop_id": self._shop_id,
            "amount": request.amount,
            "currency": request.currency,
            "order_id": request.foreign_id,
            "add_fields": {"time_to_pay": self._time_to_pay},
        }
        return self._created(await self._call("/v2/invoice/create", payload))

    async def currencies(self) -> list[Currency]:
        return [Currency(code, decimals, "fiat") for code, decimals in FIAT_DECIMALS.items()]

    async def resolve_unknown(
        self, foreign_id: str, created_at: dt.datetime
    ) -> CreatedInvoice | None:
        # order_id is not unique at CryptoCloud, so a blind retry could leave two payable
        # invoices. Look for ours in the list around the attempt's date instead.
        # `limit` is documented as "number of the last record" (UNSURE): asking for
        # offset..offset+100 works whether it means an end index or a page size.
        start = (created_at - dt.timedelta(days=1)).strftime("%d.%m.%Y")
        end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%d.%m.%Y")
        for page in range(_LIST_MAX_PAGES):
            offset = page * _LIST_PAGE
            result = await self._call(
                "/v2/invoice/merchant/list",
                {"start": start, "end": end, "offset": offset, "limit": offset + _LIST_PAGE},
            )
            if not isinstance(result, list):
                raise ProviderBadResponse("cryptocloud invoice list is not a list")
            for invoice in result:
                if isinstance(invoice, dict) and invoice.get("order_id") == foreign_id:
                    return self._created(invoice)
            if len(result) < _LIST_PAGE:
                return None
        raise ProviderBadResponse("cryptocloud invoice list too long to search")

    async def aclose(self) -> None:
        await self._client.aclose()
