"""CryptoProcessing (CoinsPaid) API v2: HMAC-SHA512-signed JSON over the exact bytes sent."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from typing import Any, ClassVar

import httpx

from bot.domain import (
    CreatedInvoice,
    Currency,
    EmailRule,
    InvoiceRequest,
    LegalEntity,
    NaturalPerson,
    ProviderRequirements,
)
from bot.providers.base import (
    PaymentProvider,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderError,
    ProviderUnavailable,
    ProviderValidationError,
)
from bot.providers.http import send
from bot.providers.wire import dump_json, load_json

logger = logging.getLogger("bot.providers")

PRODUCTION_BASE_URL = "https://app.cryptoprocessing.com/api/v2"
SANDBOX_BASE_URL = "https://app.sandbox.cryptoprocessing.com/api/v2"


def sign(secret: bytes, body: bytes) -> str:
    """Lowercase hex HMAC-SHA512 of the raw body, as the provider verifies it."""
    return hmac.new(secret, body, hashlib.sha512).hexdigest()


class CryptoProcessingProvider(PaymentProvider):
    name: ClassVar[str] = "cryptoprocessing"
    # MiCA: the sender's identity travels with every invoice; email_user is required by the
    # current OpenAPI page (an older page says optional), so we always collect it.
    requirements: ClassVar[ProviderRequirements] = ProviderRequirements(
        sender_data=True, email=EmailRule.REQUIRED
    )

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        secret_key: str,
        url_success: str,
        url_failed: str,
        timer: bool,
    ) -> None:
        self._client = client
        self._api_key = api_key
        self._secret = secret_key.encode("utf-8")
        self._url_success = url_success
        self._url_failed = url_failed
        self._timer = timer

    async def _post(self, path: str, payload: dict[str, Any]) -> httpx.Response:
        body = dump_json(payload)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Processing-Key": self._api_key,
            "X-Processing-Signature": sign(self._secret, body),
        }
        return await send(self._client, self.name, path, content=body, headers=headers)

    def _raise_for_error(self, response: httpx.Response) -> None:
        status = response.status_code
        if status in (200, 201):
            return
        try:
            body = load_json(response.content)
        except ValueError:
            body = None
        if status == 403:
            code = body.get("code") if isinstance(body, dict) else None
            raise ProviderAuthError(
                f"cryptoprocessing refused the credentials ({code or 'forbidden'})",
                http_status=status,
            )
        if status == 429 or status >= 500:
            raise ProviderUnavailable(
                f"cryptoprocessing answered HTTP {status}", http_status=status
            )
        fields: dict[str, str] = {}
        if isinstance(body, dict):
            errors = body.get("errors")
            if isinstance(errors, dict):
                fields = {str(key): str(value) for key, value in errors.items()}
            elif isinstance(body.get("error"), str):
                fields = {"error": str(body["error"])}
        raise ProviderValidationError(
            f"cryptoprocessing rejected the request (HTTP {status})",
            fields=fields,
            http_status=status,
        )

    def _invoice_payload(self, request: InvoiceRequest) -> dict[str, Any]:
        customer = request.customer
        if customer is None or not customer.email:
            raise ValueError("cryptoprocessing needs a customer with sender data and email")
        sender = customer.sender
        sender_data: dict[str, str]
        if isinstance(sender, NaturalPerson):
            sender_type = "natural"
            sender_data = {
                "first_name": sender.first_name,
                "last_name": sender.last_name,
                "date_of_birth": sender.date_of_birth.isoformat(),
            }
        else:
            assert isinstance(sender, LegalEntity)
            sender_type = "legal"
            # The reference shows alpha-3 ("DEU") in a payment-request example; UNSURE for
            # invoices, so we send alpha-3 and keep the conversion in one place.
            sender_data = {
                "legal_name": sender.legal_name,
                "country_of_registration": sender.country_alpha3,
            }
        return {
            "timer": self._timer,
            "title": request.title,
            "currency": request.currency,
            "amount": request.amount,
            "foreign_id": request.foreign_id,
            "end_user_reference": customer.reference,
            "url_success": self._url_success,
            "url_failed": self._url_failed,
            "email_user": customer.email,
            "sender_type": sender_type,
            "sender_data": sender_data,
        }

    async def create_invoice(self, request: InvoiceRequest) -> CreatedInvoice:
        response = await self._post("/invoices/create", self._invoice_payload(request))
        self._raise_for_error(response)
        data = self._data(response)
        if not isinstance(data, dict):
            raise ProviderBadResponse("cryptoprocessing answered without an invoice")
        invoice_id, url = data.get("id"), data.get("url")
        if invoice_id is None or not isinstance(url, str) or not url.startswith("https://"):
            raise ProviderBadResponse("cryptoprocessing answered without id or https url")
        return CreatedInvoice(
            provider_invoice_id=str(invoice_id),
            pay_url=url,
            status=str(data.get("status") or "created"),
            raw_amount=str(data["amount"]) if data.get("amount") is not None else None,
        )

    @staticmethod
    def _data(response: httpx.Response) -> Any:
        try:
            body = load_json(response.content)
        except ValueError:
            raise ProviderBadResponse("cryptoprocessing answered with unreadable JSON") from None
        if not isinstance(body, dict) or "data" not in body:
            raise ProviderBadResponse("cryptoprocessing answered without 'data'")
        return body["data"]

    async def currencies(self) -> list[Currency]:
        response = await self._post("/currencies/list", {})
        self._raise_for_error(response)
        items = self._data(response)
        if not isinstance(items, list):
            raise ProviderBadResponse("cryptoprocessing currency list is not a list")
        result: list[Currency] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("currency"), str):
                continue
            try:
                decimals = int(item.get("precision", 8))
            except (TypeError, ValueError):
                decimals = 8
            kind = "fiat" if item.get("type") == "fiat" else "crypto"
            result.append(Currency(item["currency"].upper(), max(0, min(decimals, 18)), kind))
        if not result:
            raise ProviderBadResponse("cryptoprocessing currency list is empty")
        return result

    async def resolve_unknown(
        self, foreign_id: str, created_at: dt.datetime
    ) -> CreatedInvoice | None:
        # There is no read endpoint, so the only way to be sure no second payable invoice
        # exists is to cancel by foreign_id. What cancel answers for an unknown id is not
        # documented (UNSURE): 404 and a foreign_id "not found" error both count as absent.
        response = await self._post(f"/invoices/{foreign_id}/cancel/", {})
        if response.status_code in (200, 201, 404):
            return None
        try:
            self._raise_for_error(response)
        except ProviderValidationError as exc:
            text = " ".join(exc.fields.values()).lower()
            if "invalid_invoice_state" in text or "current state" in text or "not found" in text:
                # Already failed/cancelled: nothing payable remains.
                return None
            raise
        except ProviderError:
            raise
        return None

    async def aclose(self) -> None:
        await self._client.aclose()
