"""Fake CryptoCloud API v2, strict about the documented contract.

Source of truth: /work/shared/providers/README.md part 2 and
cryptocloud-invoice-create.seed.txt. Where the docs are UNSURE the choice made here is
stated in a comment next to the code.
"""

from __future__ import annotations

import copy
import hmac
import re
import secrets
import string
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from tests.fakes.provider_base import (
    FakeProvider,
    check_amount,
    is_email,
    is_json_content_type,
    load_json,
    public_invoice,
)

STATUSES = frozenset({"created", "paid", "partial", "overpaid", "canceled"})
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
LINK_PREFIX = "https://pay.cryptocloud.plus/"
DEFAULT_LIFETIME = timedelta(hours=24)  # UNSURE in README 2.4; the docs' example uses 24 h.
MAX_IDS = 100

#: Documented fiat currencies, with rough units-per-USD rates for the amount_usd field.
FIAT_PER_USD: dict[str, float] = {
    "USD": 1.0, "UZS": 12700.0, "KGS": 87.0, "KZT": 480.0, "AMD": 390.0, "AZN": 1.7,
    "BYN": 3.3, "AUD": 1.5, "TRY": 34.0, "AED": 3.6725, "CAD": 1.37, "CNY": 7.2,
    "HKD": 7.8, "IDR": 16000.0, "INR": 84.0, "JPY": 150.0, "PHP": 58.0, "SGD": 1.34,
    "THB": 35.0, "VND": 25000.0, "MYR": 4.4, "RUB": 95.0, "UAH": 41.0, "EUR": 0.92,
    "GBP": 0.78,
}  # fmt: skip
ZERO_DECIMAL_FIATS = frozenset({"JPY", "VND"})

#: Documented payment cryptocurrencies with a rough USD price per coin.
CRYPTO_USD_PRICE: dict[str, float] = {
    "BTC": 60000.0, "LTC": 80.0, "TRX": 0.12, "SOL": 150.0, "TON": 5.0, "BNB": 550.0,
    "ETH": 3000.0, "ETH_ARB": 3000.0, "ETH_BASE": 3000.0, "ETH_OPT": 3000.0,
    "USDT_ARB": 1.0, "USDT_BSC": 1.0, "USDT_ERC20": 1.0, "USDT_OPT": 1.0, "USDT_SOL": 1.0,
    "USDT_TON": 1.0, "USDT_TRC20": 1.0, "USDC_ARB": 1.0, "USDC_BASE": 1.0, "USDC_BSC": 1.0,
    "USDC_ERC20": 1.0, "USDC_OPT": 1.0, "USDC_SOL": 1.0, "DAI_ARB": 1.0, "DAI_BASE": 1.0,
    "DAI_BSC": 1.0, "DAI_ERC20": 1.0, "DAI_OPT": 1.0, "USDD_TRC20": 1.0, "PYUSD_ERC20": 1.0,
    "PYUSD_SOL": 1.0, "XAUT_ERC20": 2300.0, "XAUT_TON": 2300.0, "ARB_ARB": 0.8,
    "OP_OPT": 1.8, "PEPE_BSC": 0.00001, "PEPE_ERC20": 0.00001, "SHIB_BSC": 0.00002,
    "SHIB_ERC20": 0.00002, "TRUMP_SOL": 10.0,
}  # fmt: skip

# network code -> (id, full name, EVM address style)
_NETWORKS: dict[str, tuple[int, str, bool]] = {
    "BTC": (1, "Bitcoin", False),
    "LTC": (2, "Litecoin", False),
    "ERC20": (3, "Ethereum", True),
    "TRC20": (4, "Tron", False),
    "BSC": (5, "BNB Smart Chain", True),
    "SOL": (6, "Solana", False),
    "TON": (7, "TON", False),
    "ARB": (8, "Arbitrum", True),
    "BASE": (9, "Base", True),
    "OPT": (10, "Optimism", True),
}
_NATIVE_NETWORK = {
    "BTC": "BTC", "LTC": "LTC", "TRX": "TRC20", "SOL": "SOL", "TON": "TON", "BNB": "BSC",
    "ETH": "ERC20",
}  # fmt: skip
_COIN_NAMES = {
    "BTC": "Bitcoin", "LTC": "Litecoin", "TRX": "Tron", "SOL": "Solana", "TON": "Toncoin",
    "BNB": "BNB", "ETH": "Ethereum", "USDT": "Tether", "USDC": "USD Coin", "DAI": "Dai",
    "USDD": "USDD", "PYUSD": "PayPal USD", "XAUT": "Tether Gold", "ARB": "Arbitrum",
    "OP": "Optimism", "PEPE": "Pepe", "SHIB": "Shiba Inu", "TRUMP": "Official Trump",
}  # fmt: skip
_STABLECOINS = frozenset({"USDT", "USDC", "DAI", "USDD", "PYUSD"})

_CREATE_FIELDS = frozenset({"shop_id", "amount", "currency", "order_id", "email", "add_fields"})
_ADD_FIELDS = frozenset({"time_to_pay", "available_currencies", "cryptocurrency", "email_to_send"})
_LOCALES = frozenset({"en", "ru"})
_UUID_ALPHABET = string.ascii_uppercase + string.digits
_DOTTED_DATE = re.compile(r"\d{2}\.\d{2}\.\d{4}")

#: Keys of the create answer: the seed page's example plus ``order_id``.
CREATE_RESPONSE_KEYS = (
    "uuid",
    "created",
    "address",
    "expiry_date",
    "side_commission",
    "side_commission_cc",
    "amount",
    "amount_usd",
    "amount_in_fiat",
    "fee",
    "fee_usd",
    "service_fee",
    "service_fee_usd",
    "fiat_currency",
    "status",
    "is_email_required",
    "link",
    "currency",
    "project",
    "test_mode",
    "order_id",
)


def _error(result: dict[str, str], status: int = 400) -> JSONResponse:
    return JSONResponse({"status": "error", "result": result}, status)


def _success(result: Any, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "result": result, **extra})


def _content_type_error() -> JSONResponse:
    # UNSURE: the docs only say the API takes JSON; the error shape is the fake's.
    return _error({"content_type": "Content-Type must be application/json."})


def _normalize_uuid(value: str) -> str:
    return value if value.startswith("INV-") else f"INV-{value}"


def currency_object(fullcode: str) -> dict[str, Any]:
    """The ``currency`` object of an invoice, shaped like the seed page's ETH example."""
    code, _, suffix = fullcode.partition("_")
    network_code = suffix or _NATIVE_NETWORK[code]
    network_id, network_name, _ = _NETWORKS[network_code]
    return {
        "id": sorted(CRYPTO_USD_PRICE).index(fullcode) + 1,
        "code": code,
        "fullcode": fullcode,
        "network": {
            "code": network_code,
            "id": network_id,
            "icon": f"https://cdn.cryptocloud.plus/img/network/{network_code}.svg",
            "fullname": network_name,
        },
        "name": _COIN_NAMES[code],
        "is_email_required": False,
        "stablecoin": code in _STABLECOINS,
        "icon_base": f"https://cdn.cryptocloud.plus/img/currency/{code}.svg",
        "icon_network": f"https://cdn.cryptocloud.plus/img/currency/{code}.svg",
        "icon_qr": f"https://cdn.cryptocloud.plus/img/stroke/{code}_STROKE.svg",
        "order": sorted(CRYPTO_USD_PRICE).index(fullcode) + 1,
    }


def _fake_address(fullcode: str) -> str:
    code, _, suffix = fullcode.partition("_")
    if _NETWORKS[suffix or _NATIVE_NETWORK[code]][2]:
        return "0x" + secrets.token_hex(20)
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(34))


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FakeCryptoCloud(FakeProvider):
    """CryptoCloud API v2 at the server root: ``Authorization: Token <api key>``, JSON envelopes.

    Every answer is ``{"status": "success"|"error", "result": ...}``.
    """

    statuses = STATUSES

    def __init__(
        self,
        api_key: str = "cc-test-api-key",
        shop_id: str = "cc-shop-1",
        secret_key: str = "cc-test-secret",
    ) -> None:
        self.api_key = api_key
        self.shop_id = shop_id
        #: Postback JWT key; unused by the API itself, kept so tests can sign postbacks.
        self.secret_key = secret_key
        super().__init__()

    def _configure(self) -> None:
        #: README 2.7: the auth error code is UNSURE (docs table says 400, 401 is likelier).
        self.auth_error_status = 401
        #: README 2.3: ``limit`` is UNSURE ("number of the last record"). False (default):
        #: return ``[offset:offset+limit]``; True: the literal reading ``[offset:limit]``.
        self.list_limit_is_end = False
        #: Shown as ``currency`` when the payer has not picked a coin yet.
        self.default_cryptocurrency = "USDT_TRC20"
        self.test_mode = True
        self.project: dict[str, Any] = {
            "id": 1,
            "name": "Fake shop",
            "fail": "https://shop.example.com/failed-payment",
            "success": "https://shop.example.com/successful-payment",
            "logo": "https://static.cryptocloud.plus/logo/logo.jpg",
        }
        #: Clock for ``created``/``expiry_date``; replace it to create invoices "in the past".
        self.now: Callable[[], datetime] = _utc_now

    @property
    def base_url(self) -> str:
        return self.server_url

    def find_by_order_id(self, order_id: str) -> list[dict[str, Any]]:
        return [inv for inv in self.invoices.values() if inv["order_id"] == order_id]

    def _apply_status(self, invoice: dict[str, Any], status: str) -> None:
        """Keep the derived fields consistent with what info/list would show."""
        invoice["status"] = status
        amount, amount_usd = invoice["amount"], invoice["amount_usd"]
        paid_share = {"paid": 1.0, "overpaid": 1.1, "partial": 0.5}.get(status, 0.0)
        invoice["received"] = round(amount * paid_share, 8)
        invoice["received_usd"] = round(amount_usd * paid_share, 2)
        invoice["to_surcharge"] = round(max(amount - invoice["received"], 0.0), 8)
        invoice["to_surcharge_usd"] = round(max(amount_usd - invoice["received_usd"], 0.0), 2)
        finished = status in {"paid", "overpaid"}
        invoice["invoice_status"] = "success" if finished else "start"
        invoice["date_finished"] = self.now().strftime(TIMESTAMP_FORMAT) if finished else None

    def _routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/invoice/create", self._invoice_create, methods=["POST"]),
            Route("/v2/invoice/merchant/info", self._merchant_info, methods=["POST"]),
            Route("/v2/invoice/merchant/list", self._merchant_list, methods=["POST"]),
            Route("/v2/invoice/merchant/canceled", self._merchant_canceled, methods=["POST"]),
        ]

    async def _fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse({"detail": "Not Found"}, 404)(scope, receive, send)

    # ------------------------------------------------------------------ auth

    def _check_auth(self, request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        expected = f"Token {self.api_key}"
        if not hmac.compare_digest(header.encode(), expected.encode()):
            return _error({"authorization": "Unauthorized request."}, self.auth_error_status)
        return None

    async def _read_json(self, request: Request) -> tuple[Any, Response | None]:
        if not is_json_content_type(request.headers.get("content-type")):
            return None, _content_type_error()
        try:
            payload = load_json(await request.body())
        except ValueError:
            return None, _error({"body": "Invalid JSON."})
        if not isinstance(payload, dict):
            return None, _error({"body": "The request body must be a JSON object."})
        return payload, None

    async def _authenticate(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        error = self._check_auth(request)
        if error is not None:
            return {}, error
        payload, error = await self._read_json(request)
        return (payload if error is None else {}), error

    # ------------------------------------------------------------- endpoints

    async def _invoice_create(self, request: Request) -> Response:
        self.create_calls += 1
        # Faults are applied after the auth and content-type checks, like a real upstream
        # failure would be: a request the provider rejects at the door never reaches it.
        error = self._check_auth(request)
        if error is None and not is_json_content_type(request.headers.get("content-type")):
            error = _content_type_error()
        if error is not None:
            return error
        return await self._run_create(request, lambda: self._create_invoice(request))

    async def _create_invoice(self, request: Request) -> Response:
        payload, error = await self._read_json(request)
        if error is not None:
            return error
        errors = self._validate_query(request)
        errors.update(self._validate_create(payload))
        if errors:
            return _error(errors)
        invoice = self._build_invoice(payload)
        invoice["request"] = payload
        invoice["raw_body"] = await request.body()
        self.invoices[invoice["uuid"]] = invoice
        return _success({key: invoice[key] for key in CREATE_RESPONSE_KEYS})

    async def _merchant_info(self, request: Request) -> Response:
        payload, error = await self._authenticate(request)
        if error is not None:
            return error
        errors = {k: "Unknown field." for k in payload if k != "uuids"}
        uuids = payload.get("uuids")
        if not isinstance(uuids, list) or not uuids:
            # UNSURE: whether an empty list is an error is not documented; it is one here.
            errors["uuids"] = "uuids is required and must be a non-empty list."
        elif len(uuids) > MAX_IDS:
            errors["uuids"] = f"No more than {MAX_IDS} uuids per request."
        elif not all(isinstance(u, str) for u in uuids):
            errors["uuids"] = "Every uuid must be a string."
        if errors or not isinstance(uuids, list):
            return _error(errors)
        seen: set[str] = set()
        result = []
        for uuid in map(_normalize_uuid, uuids):
            if uuid in self.invoices and uuid not in seen:
                seen.add(uuid)
                result.append(public_invoice(self.invoices[uuid]))
        return _success(result)

    async def _merchant_list(self, request: Request) -> Response:
        payload, error = await self._authenticate(request)
        if error is not None:
            return error
        allowed = {"start", "end", "offset", "limit"}
        errors = {k: "Unknown field." for k in payload if k not in allowed}
        start, end = _dotted_date(payload.get("start")), _dotted_date(payload.get("end"))
        if start is None:
            errors["start"] = "start is required, format dd.mm.yyyy."
        if end is None:
            errors["end"] = "end is required, format dd.mm.yyyy."
        if start is not None and end is not None and start > end:
            errors["end"] = "end must not be before start."
        offset, limit = payload.get("offset", 0), payload.get("limit", 10)
        if not _is_int(offset) or offset < 0:
            errors["offset"] = "offset must be a non-negative integer."
        if not _is_int(limit) or not 1 <= limit <= MAX_IDS:
            errors["limit"] = f"limit must be an integer from 1 to {MAX_IDS}."
        if errors or start is None or end is None:
            return _error(errors)
        matching = [
            inv
            for inv in reversed(self.invoices.values())
            if start <= datetime.strptime(inv["created"], TIMESTAMP_FORMAT).date() <= end
        ]
        # Stable sort keeps later-created first among equal timestamps.
        matching.sort(key=lambda inv: str(inv["created"]), reverse=True)
        stop = limit if self.list_limit_is_end else offset + limit
        page = [public_invoice(inv) for inv in matching[offset:stop]]
        # UNSURE: only the Go client reads a top-level all_count (README 2.3).
        return _success(page, all_count=len(matching))

    async def _merchant_canceled(self, request: Request) -> Response:
        payload, error = await self._authenticate(request)
        if error is not None:
            return error
        errors = {k: "Unknown field." for k in payload if k != "uuid"}
        uuid = payload.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            errors["validate_error"] = "uuid is required"
        if errors or not isinstance(uuid, str):
            return _error(errors)
        # The docs only show the prefixed form here (unlike merchant/info), so the fake
        # insists on it. UNSURE: the message for an unknown uuid is not documented.
        invoice = self.invoices.get(uuid) if uuid.startswith("INV-") else None
        if invoice is None:
            return _error({"validate_error": "Invoice not found"})
        if invoice["status"] != "created":
            return _error({"validate_error": "Invoice is not created"})
        self._apply_status(invoice, "canceled")
        return _success(["ok"])

    # ------------------------------------------------------------ validation

    def _validate_query(self, request: Request) -> dict[str, str]:
        errors = {k: "Unknown query parameter." for k in request.query_params if k != "locale"}
        locale = request.query_params.get("locale")
        if locale is not None and locale not in _LOCALES:
            errors["locale"] = "locale must be en or ru."
        return errors

    def _validate_create(self, payload: dict[str, Any]) -> dict[str, str]:
        """``{field: message}``; unknown fields are errors to catch typos.

        Optional top-level fields may be null (treated as absent), as an Optional[...] API
        field would; the docs do not say either way.
        """
        errors = {k: "Unknown field." for k in payload if k not in _CREATE_FIELDS}
        shop_id = payload.get("shop_id")
        if shop_id is None:
            errors["shop_id"] = "This field is required."
        elif shop_id != self.shop_id:
            errors["shop_id"] = "Shop not found."
        currency = payload.get("currency")
        if currency is None:
            currency = "USD"
        elif not isinstance(currency, str) or currency not in FIAT_PER_USD:
            errors["currency"] = "Currency is not supported."
        if "amount" not in payload or payload["amount"] is None:
            errors["amount"] = "This field is required."
        else:
            places = 0 if currency in ZERO_DECIMAL_FIATS else 2
            _, message = check_amount(payload["amount"], places, allow_string=True)
            if message is not None:
                errors["amount"] = message
        order_id = payload.get("order_id")
        if order_id is not None and not isinstance(order_id, str):
            errors["order_id"] = "order_id must be a string."
        email = payload.get("email")
        if email is not None and not is_email(email):
            errors["email"] = "Enter a valid email address."
        add_fields = payload.get("add_fields")
        if add_fields is not None:
            if isinstance(add_fields, dict):
                errors.update(_validate_add_fields(add_fields))
            else:
                errors["add_fields"] = "add_fields must be an object."
        return errors

    # -------------------------------------------------------------- building

    def _build_invoice(self, payload: dict[str, Any]) -> dict[str, Any]:
        fiat = payload.get("currency") or "USD"
        amount_in_fiat = float(Decimal(payload["amount"]))
        amount_usd = round(amount_in_fiat / FIAT_PER_USD[fiat], 2)
        add_fields: dict[str, Any] = payload.get("add_fields") or {}
        chosen = add_fields.get("cryptocurrency")
        coin = chosen or self.default_cryptocurrency
        price = CRYPTO_USD_PRICE[coin]
        lifetime = DEFAULT_LIFETIME
        if "time_to_pay" in add_fields:
            ttp = add_fields["time_to_pay"]
            lifetime = timedelta(hours=ttp["hours"], minutes=ttp["minutes"])
        created = self.now()
        while True:
            code = "".join(secrets.choice(_UUID_ALPHABET) for _ in range(8))
            if f"INV-{code}" not in self.invoices:
                break
        fee_usd = 0.01
        service_fee_usd = round(amount_usd * 0.019, 2)
        invoice: dict[str, Any] = {
            "uuid": f"INV-{code}",
            "created": created.strftime(TIMESTAMP_FORMAT),
            "address": _fake_address(coin) if chosen else "",
            "expiry_date": (created + lifetime).strftime(TIMESTAMP_FORMAT),
            "side_commission": "client",
            "side_commission_cc": "client",
            "amount": round(amount_usd / price, 8),
            "amount_usd": amount_usd,
            "amount_in_fiat": amount_in_fiat,
            "fee": round(fee_usd / price, 8),
            "fee_usd": fee_usd,
            "service_fee": round(service_fee_usd / price, 8),
            "service_fee_usd": service_fee_usd,
            "received": 0.0,
            "received_usd": 0.0,
            "to_surcharge": 0.0,
            "to_surcharge_usd": 0.0,
            "type_payments": "crypto",
            "fiat_currency": fiat,
            "status": "created",
            "invoice_status": "start",
            "is_email_required": False,
            "link": LINK_PREFIX + code,
            "invoice_id": None,
            "order_id": payload.get("order_id"),
            "date_finished": None,
            "currency": currency_object(coin),
            "project": copy.deepcopy(self.project),
            "test_mode": self.test_mode,
        }
        self._apply_status(invoice, "created")
        return invoice


def _validate_add_fields(add_fields: dict[str, Any]) -> dict[str, str]:
    errors = {f"add_fields.{k}": "Unknown field." for k in add_fields if k not in _ADD_FIELDS}
    if "time_to_pay" in add_fields:
        ttp = add_fields["time_to_pay"]
        if (
            not isinstance(ttp, dict)
            or set(ttp) != {"hours", "minutes"}
            or not _is_int(ttp["hours"])
            or not _is_int(ttp["minutes"])
            or ttp["hours"] < 0
            or not 0 <= ttp["minutes"] <= 59
            or ttp["hours"] == ttp["minutes"] == 0
        ):
            # A zero lifetime is rejected too: such an invoice could never be paid.
            errors["add_fields.time_to_pay"] = (
                "time_to_pay must be {hours: int >= 0, minutes: int 0-59}, not both zero."
            )
    if "available_currencies" in add_fields:
        codes = add_fields["available_currencies"]
        if (
            not isinstance(codes, list)
            or not codes
            or not all(isinstance(c, str) and c in CRYPTO_USD_PRICE for c in codes)
        ):
            errors["add_fields.available_currencies"] = (
                "available_currencies must be a non-empty list of supported currency codes."
            )
    if "cryptocurrency" in add_fields:
        coin = add_fields["cryptocurrency"]
        if not isinstance(coin, str) or coin not in CRYPTO_USD_PRICE:
            errors["add_fields.cryptocurrency"] = "Currency is not supported."
    if "email_to_send" in add_fields and not is_email(add_fields["email_to_send"]):
        errors["add_fields.email_to_send"] = "Enter a valid email address."
    return errors


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _dotted_date(value: Any) -> date | None:
    if not isinstance(value, str) or not _DOTTED_DATE.fullmatch(value):
        return None
    try:
        return datetime.strptime(value, "%d.%m.%Y").date()
    except ValueError:
        return None
