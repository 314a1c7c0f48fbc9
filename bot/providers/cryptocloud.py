"""CryptoCloud API v2: `Authorization: Token <API key>`, JSON bodies, `{status, result}` replies."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs

import httpx
import jwt

from bot.domain import (
    CreatedInvoice,
    Currency,
    EmailRule,
    InvoiceRequest,
    PaymentStatus,
    ProviderRequirements,
    StatusReport,
)
from bot.providers.base import (
    CallbackRejected,
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

# The fiat currencies the create-invoice page lists, with their ISO 4217 minor units.
FIAT_DECIMALS: dict[str, int] = {
    "USD": 2, "UZS": 2, "KGS": 2, "KZT": 2, "AMD": 2, "AZN": 2, "BYN": 2, "AUD": 2, "TRY": 2,
    "AED": 2, "CAD": 2, "CNY": 2, "HKD": 2, "IDR": 2, "INR": 2, "JPY": 0, "PHP": 2, "SGD": 2,
    "THB": 2, "VND": 0, "MYR": 2, "RUB": 2, "UAH": 2, "EUR": 2, "GBP": 2,
}  # fmt: skip

_LIST_PAGE = 100
_LIST_MAX_PAGES = 5
_INFO_BATCH = 100
_JWT_LEEWAY_SECONDS = 10


def _bare(invoice_id: str) -> str:
    return invoice_id.strip().upper().removeprefix("INV-")


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _status_of(invoice: dict[str, Any]) -> PaymentStatus | None:
    raw = invoice.get("status")
    if raw == "canceled":
        # CryptoCloud uses one word for "expired unpaid" and "cancelled by the merchant".
        expiry = _parse_time(invoice.get("expiry_date"))
        expired = expiry is not None and expiry <= dt.datetime.now(dt.UTC)
        return PaymentStatus.EXPIRED if expired else PaymentStatus.CANCELLED
    return {
        "created": PaymentStatus.CREATED,
        "paid": PaymentStatus.PAID,
        "partial": PaymentStatus.PARTIAL,
        "overpaid": PaymentStatus.OVERPAID,
    }.get(str(raw))


class CryptoCloudProvider(PaymentProvider):
    name: ClassVar[str] = "cryptocloud"
    # CryptoCloud takes no sender data; the payer's email is optional and asked on its page.
    requirements: ClassVar[ProviderRequirements] = ProviderRequirements(
        sender_data=False, email=EmailRule.UNUSED
    )

    supports_status_query: ClassVar[bool] = True

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: str,
        shop_id: str,
        time_to_pay_minutes: int,
        secret_key: str | None = None,
    ) -> None:
        self._client = client
        self._secret = secret_key
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
            provider_invoice_id=f"INV-{_bare(uuid)}",
            pay_url=link,
            status=(_status_of(invoice) or PaymentStatus.CREATED).value,
            expires_at=_parse_time(invoice.get("expiry_date")),
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
        # invoices. Look for ours in the newest-first list instead, back to a little before
        # the attempt. (`limit` is documented oddly, UNSURE; pages of offset/100 are the
        # reading under which every record is reachable, since limit is capped at 100.)
        start = (created_at - dt.timedelta(days=1)).strftime("%d.%m.%Y")
        end = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%d.%m.%Y")
        horizon = created_at - dt.timedelta(minutes=10)
        for page in range(_LIST_MAX_PAGES):
            result = await self._call(
                "/v2/invoice/merchant/list",
                {"start": start, "end": end, "offset": page * _LIST_PAGE, "limit": _LIST_PAGE},
            )
            if not isinstance(result, list):
                raise ProviderBadResponse("cryptocloud invoice list is not a list")
            for invoice in result:
                if isinstance(invoice, dict) and invoice.get("order_id") == foreign_id:
                    if invoice.get("status") == "canceled":
                        return None  # nothing payable remains
                    return self._created(invoice)
            times = [_parse_time(i.get("created")) for i in result if isinstance(i, dict)]
            older = [t for t in times if t is not None and t < horizon]
            if len(result) < _LIST_PAGE or len(older) == len(result):
                return None
        raise ProviderBadResponse("cryptocloud invoice list too long to search")

    async def fetch_statuses(self, provider_invoice_ids: Sequence[str]) -> list[StatusReport]:
        reports: list[StatusReport] = []
        ids = [f"INV-{_bare(i)}" for i in provider_invoice_ids]
        for start in range(0, len(ids), _INFO_BATCH):
            result = await self._call(
                "/v2/invoice/merchant/info", {"uuids": ids[start : start + _INFO_BATCH]}
            )
            if not isinstance(result, list):
                raise ProviderBadResponse("cryptocloud invoice info is not a list")
            reports += [r for r in map(self._report, result) if r is not None]
        return reports

    @staticmethod
    def _report(invoice: Any) -> StatusReport | None:
        if not isinstance(invoice, dict) or not isinstance(invoice.get("uuid"), str):
            return None
        status = _status_of(invoice)
        if status is None:
            logger.warning(
                "cryptocloud invoice status %r is unknown; ignored", invoice.get("status")
            )
            return None
        uuid = f"INV-{_bare(invoice['uuid'])}"
        received = invoice.get("received")
        currency = invoice.get("currency")
        code = (
            currency.get("fullcode") or currency.get("code") if isinstance(currency, dict) else None
        )
        received_text = (
            format(Decimal(received), "f") if isinstance(received, Decimal | int) else None
        )
        return StatusReport(
            provider_invoice_id=uuid,
            foreign_id=str(invoice["order_id"]) if invoice.get("order_id") else None,
            status=status,
            provider_status=str(invoice.get("status")),
            dedupe_key=f"{uuid}:{invoice.get('status')}:{received_text or ''}",
            amount_received=received_text,
            received_currency=str(code) if code else None,
            # New projects start in test mode, where "paid" is a dashboard click, not money.
            test_mode=invoice.get("test_mode") is True,
            detail="test mode" if invoice.get("test_mode") is True else None,
            # paid / overpaid are CryptoCloud's own comparison of the fiat value received.
            provider_checked_amount=True,
        )

    async def parse_callback(self, headers: Mapping[str, str], body: bytes) -> list[StatusReport]:
        fields = self._postback_fields(headers.get("content-type", ""), body)
        token, invoice_id = fields.get("token"), fields.get("invoice_id")
        if not isinstance(token, str) or not isinstance(invoice_id, str) or not invoice_id:
            raise CallbackRejected(400, "postback without token or invoice_id")
        if not self._secret:
            logger.error("cryptocloud postback refused: CRYPTOCLOUD_SECRET_KEY is not set")
            raise CallbackRejected(503, "postback verification is not configured")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],  # pinned: no "none", no RS/HS confusion
                leeway=_JWT_LEEWAY_SECONDS,
                options={"require": ["exp"]},
            )
        except jwt.PyJWTError as exc:
            raise CallbackRejected(401, f"token rejected: {type(exc).__name__}") from None
        # The claim's shape is UNSURE: the docs' own sample decodes to {"id": 13}, an internal
        # number that cannot be compared with the invoice code. Signature, algorithm and
        # expiry already prove CryptoCloud sent it, and only the re-read invoice is trusted,
        # so only a claim that IS an invoice code must match.
        claimed = claims.get("uuid") or claims.get("id")
        if (
            isinstance(claimed, str)
            and not claimed.strip().isdigit()
            and _bare(claimed) != _bare(invoice_id)
        ):
            raise CallbackRejected(401, "token is for another invoice")
        # Only the token is signed: the body's status and amounts are not trusted.
        try:
            return await self.fetch_statuses([invoice_id])
        except ProviderError as exc:
            # 5xx so the sender may retry; reconciliation catches up either way.
            raise CallbackRejected(503, f"invoice could not be re-read ({exc.code})") from None

    @staticmethod
    def _postback_fields(content_type: str, body: bytes) -> dict[str, Any]:
        try:
            if "application/x-www-form-urlencoded" in content_type:
                # Lenient: an empty `&&` segment or a blank value is harmless noise.
                parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
                return {key: values[0] for key, values in parsed.items()}
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise CallbackRejected(400, "postback body is not readable") from None
        if not isinstance(payload, dict):
            raise CallbackRejected(400, "postback body is not an object")
        return payload

    async def cancel(self, provider_invoice_id: str, foreign_id: str) -> None:
        await self._call(
            "/v2/invoice/merchant/canceled", {"uuid": f"INV-{_bare(provider_invoice_id)}"}
        )

    async def check_credentials(self) -> None:
        # Today's invoice list, one record: authenticated, read-only.
        today = dt.datetime.now(dt.UTC).strftime("%d.%m.%Y")
        await self._call(
            "/v2/invoice/merchant/list", {"start": today, "end": today, "offset": 0, "limit": 1}
        )

    async def aclose(self) -> None:
        await self._client.aclose()
