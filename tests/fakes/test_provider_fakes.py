"""Self-tests of the provider fakes, with requests built by hand.

The bot's adapter tests trust these fakes to reject what the real providers reject, so each
documented rule is exercised here with plain httpx, independent of the bot's own code.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.fakes.cryptocloud_api import CREATE_RESPONSE_KEYS, FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing, sign, signature_matches

HMAC_VECTOR_SECRET = "AbCdEfG123456"
HMAC_VECTOR_BODY = b'{"currency":"BTC","foreign_id":"123456"}'
HMAC_VECTOR_SIGNATURE = (
    "03c25fcf7cd35e7d995e402cd5d51edd72d48e1471e865907967809a0c189ba5"
    "5b90815f20e2bb10f82c7a9e9d865546fda58989c2ae9e8e2ff7bc29195fa1ec"
)
AMOUNT_PLACEHOLDER = "__AMOUNT__"

# One server per fake for the whole module (reset between tests): starting and stopping
# uvicorn costs more than most tests here.
pytestmark = pytest.mark.asyncio(loop_scope="module")


# Building an SSL context loads the CA bundle (~50 ms); share one across all clients.
_TLS = ssl.create_default_context()


def client(base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    """Plain httpx client that opens a new connection per request.

    server.py's listening socket is created without IPPROTO_TCP, so asyncio does not set
    TCP_NODELAY on accepted connections; on a reused connection every response then stalls
    ~40 ms (Nagle + delayed ACK). Fresh connections do not.
    """
    limits = httpx.Limits(max_keepalive_connections=0)
    return httpx.AsyncClient(base_url=base_url, verify=_TLS, limits=limits, **kwargs)


def compact(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def with_amount_token(payload: dict[str, Any], token: str) -> bytes:
    """Serialize ``payload`` with ``amount`` written as exactly ``token`` (the raw JSON text)."""
    body = compact({**payload, "amount": AMOUNT_PLACEHOLDER})
    return body.replace(f'"{AMOUNT_PLACEHOLDER}"'.encode(), token.encode())


# --------------------------------------------------------------------- CryptoProcessing


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cp_server() -> AsyncIterator[FakeCryptoProcessing]:
    async with FakeCryptoProcessing() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def cp(cp_server: FakeCryptoProcessing) -> FakeCryptoProcessing:
    cp_server.reset()
    return cp_server


@pytest_asyncio.fixture(loop_scope="module")
async def cp_client(cp: FakeCryptoProcessing) -> AsyncIterator[httpx.AsyncClient]:
    async with client(cp.base_url, timeout=5) as http:
        yield http


_foreign_ids = iter(range(1, 1_000_000))


def cp_invoice(**overrides: Any) -> dict[str, Any]:
    """The seed page's example request, with a fresh foreign_id."""
    payload: dict[str, Any] = {
        "timer": False,
        "title": "Invoice Title",
        "currency": "EUR",
        "amount": 100,
        "foreign_id": f"test_foreign_id_{next(_foreign_ids):04d}",
        "end_user_reference": "12345",
        "url_success": "https://example.com/success",
        "url_failed": "https://example.com/failed",
        "email_user": "payer@example.com",
        "sender_type": "natural",
        "sender_data": {
            "first_name": "Friedrich",
            "last_name": "Müller",
            "date_of_birth": "1995-08-17",
        },
    }
    payload.update(overrides)
    return payload


def cp_headers(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Processing-Key": fake.api_key,
        "X-Processing-Signature": fake.sign(body),
    }


async def cp_post(
    client: httpx.AsyncClient, fake: FakeCryptoProcessing, path: str, body: bytes
) -> httpx.Response:
    return await client.post(path, content=body, headers=cp_headers(fake, body))


async def test_cp_official_hmac_vector() -> None:
    assert sign(HMAC_VECTOR_SECRET, HMAC_VECTOR_BODY) == HMAC_VECTOR_SIGNATURE
    assert signature_matches(HMAC_VECTOR_SECRET, HMAC_VECTOR_BODY, HMAC_VECTOR_SIGNATURE)
    assert not signature_matches(
        HMAC_VECTOR_SECRET, HMAC_VECTOR_BODY, HMAC_VECTOR_SIGNATURE.upper()
    )
    assert not signature_matches(HMAC_VECTOR_SECRET, HMAC_VECTOR_BODY + b" ", HMAC_VECTOR_SIGNATURE)


async def test_cp_official_hmac_vector_passes_the_http_checks() -> None:
    async with (
        FakeCryptoProcessing(api_key="pub", secret_key=HMAC_VECTOR_SECRET) as fake,
        client(fake.base_url) as http,
    ):
        response = await http.post(
            "/invoices/create",
            content=HMAC_VECTOR_BODY,
            headers={
                "Content-Type": "application/json",
                "X-Processing-Key": "pub",
                "X-Processing-Signature": HMAC_VECTOR_SIGNATURE,
            },
        )
    # Past auth: the body is only rejected for missing invoice fields.
    assert response.status_code == 400
    assert "title" in response.json()["errors"]


async def test_cp_ping_needs_no_auth(cp_client: httpx.AsyncClient) -> None:
    response = await cp_client.get("/ping")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "OK"


async def test_cp_currencies_list(cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient) -> None:
    response = await cp_post(cp_client, cp, "/currencies/list", b"{}")
    assert response.status_code == 200
    items = response.json()["data"]
    assert [(c["currency"], c["type"], c["precision"]) for c in items] == [
        ("EUR", "fiat", 2),
        ("USD", "fiat", 2),
        ("BTC", "crypto", 8),
        ("ETH", "crypto", 8),
        ("LTC", "crypto", 8),
        ("USDCE", "crypto", 6),
        ("TRX", "crypto", 6),
    ]
    assert set(items[0]) == {
        "id",
        "type",
        "currency",
        "minimum_amount",
        "deposit_fee_percent",
        "withdrawal_fee_percent",
        "precision",
    }
    hidden = await cp_post(cp_client, cp, "/currencies/list", b'{"visible":false}')
    assert hidden.json() == {"data": []}


async def test_cp_create_valid_invoice(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient
) -> None:
    payload = cp_invoice()
    body = compact(payload)
    response = await cp_post(cp_client, cp, "/invoices/create", body)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    url = data.pop("url")
    assert re.fullmatch(r"https://invoices\.sandbox\.cryptoprocessing\.com/invoice/\w{6}", url)
    assert data == {
        "id": 826900,
        "foreign_id": payload["foreign_id"],
        "end_user_reference": "12345",
        "address": None,
        "title": "Invoice Title",
        "status": "created",
        "currency": "EUR",
        "amount": "100.00000000",
        "sender_currency": None,
        "sender_amount": None,
        "fixed_at": None,
        "release_at": None,
        "seconds_left": None,
    }
    stored = cp.invoices[payload["foreign_id"]]
    assert stored["raw_body"] == body
    assert stored["request"] == payload
    assert cp.create_calls == 1

    timed = cp_invoice(timer=True, currency="BTC")
    response = await cp_post(
        cp_client, cp, "/invoices/create", with_amount_token(timed, "0.00123456")
    )
    data = response.json()["data"]
    assert (data["id"], data["amount"], data["seconds_left"]) == (826901, "0.00123456", 899)
    assert cp.invoices[timed["foreign_id"]]["request"]["amount"] == Decimal("0.00123456")


async def test_cp_legal_sender_accepted(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient
) -> None:
    payload = cp_invoice(
        sender_type="legal",
        sender_data={"legal_name": "ACME GmbH", "country_of_registration": "DEU"},
        description="Order #1",
        type="fill_or_kill",
    )
    response = await cp_post(cp_client, cp, "/invoices/create", compact(payload))
    assert response.status_code == 200, response.text


def _drop(key: str) -> Callable[[FakeCryptoProcessing, bytes], dict[str, str]]:
    def headers(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
        result = cp_headers(fake, body)
        del result[key]
        return result

    return headers


def _replace(key: str, value: str) -> Callable[[FakeCryptoProcessing, bytes], dict[str, str]]:
    def headers(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
        return {**cp_headers(fake, body), key: value}

    return headers


def _signed_differently(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
    # Signed over a re-serialization of the same JSON: must fail, bytes differ.
    resigned = json.dumps(json.loads(body), indent=2).encode()
    return {**cp_headers(fake, body), "X-Processing-Signature": fake.sign(resigned)}


def _upper_hex(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
    return {**cp_headers(fake, body), "X-Processing-Signature": fake.sign(body).upper()}


def _wrong_secret(fake: FakeCryptoProcessing, body: bytes) -> dict[str, str]:
    return {**cp_headers(fake, body), "X-Processing-Signature": sign("other-secret", body)}


_BAD_FORMAT = {"error": "Bad content format", "code": "bad_content_format"}


@pytest.mark.parametrize(
    ("make_headers", "body", "status", "expected"),
    [
        (_drop("Content-Type"), None, 400, _BAD_FORMAT),
        (_replace("Content-Type", "text/plain"), None, 400, _BAD_FORMAT),
        (_replace("Content-Type", "application/json"), b'{"title": ', 400, _BAD_FORMAT),
        (_replace("Content-Type", "application/json"), b"", 400, _BAD_FORMAT),
        (
            _drop("X-Processing-Key"),
            None,
            403,
            {"error": "No key header", "code": "required_header_key"},
        ),
        (
            _replace("X-Processing-Key", "someone-else"),
            None,
            403,
            {"error": "Bad key header", "code": "bad_header_key"},
        ),
        (
            _drop("X-Processing-Signature"),
            None,
            403,
            {"error": "No signature header", "code": "required_header_signature"},
        ),
        *[
            (bad, None, 403, {"error": "Bad signature header", "code": "bad_header_signature"})
            for bad in (_signed_differently, _upper_hex, _wrong_secret)
        ],
    ],
)
async def test_cp_auth_and_format_failures(
    cp: FakeCryptoProcessing,
    cp_client: httpx.AsyncClient,
    make_headers: Callable[[FakeCryptoProcessing, bytes], dict[str, str]],
    body: bytes | None,
    status: int,
    expected: dict[str, str],
) -> None:
    raw = compact(cp_invoice()) if body is None else body
    headers = make_headers(cp, raw)
    response = await cp_client.post("/invoices/create", content=raw, headers=headers)
    assert (response.status_code, response.json()) == (status, expected)
    assert cp.invoices == {}
    assert cp.create_calls == 1


@pytest.mark.parametrize(
    ("currency", "token", "accepted"),
    [
        ("EUR", "0.30000000000000004", False),  # 0.1 + 0.2 as a float
        ("EUR", "1e2", False),
        ("EUR", "1.5E1", False),
        ("EUR", '"100"', False),  # numbers only, never strings
        ("EUR", "100.001", False),  # more decimals than EUR's precision (2)
        ("EUR", "0", False),
        ("EUR", "-5", False),
        ("EUR", "true", False),
        ("EUR", "NaN", None),  # not JSON at all
        ("EUR", "100.5", True),
        ("EUR", "7", True),
        ("BTC", "0.12345678", True),
        ("USDCE", "1.1234567", False),
    ],
)
async def test_cp_amount_rules(
    cp: FakeCryptoProcessing,
    cp_client: httpx.AsyncClient,
    currency: str,
    token: str,
    accepted: bool | None,
) -> None:
    body = with_amount_token(cp_invoice(currency=currency), token)
    response = await cp_post(cp_client, cp, "/invoices/create", body)
    if accepted is None:
        assert (response.status_code, response.json()) == (400, _BAD_FORMAT)
    elif accepted:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        assert set(response.json()["errors"]) == {"amount"}
        assert cp.invoices == {}


async def test_cp_duplicate_foreign_id(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient
) -> None:
    payload = cp_invoice()
    assert (await cp_post(cp_client, cp, "/invoices/create", compact(payload))).status_code == 200
    again = await cp_post(cp_client, cp, "/invoices/create", compact({**payload, "amount": 5}))
    assert again.status_code == 400
    assert again.json() == {"errors": {"foreign_id": "The foreign id has already been taken."}}
    assert cp.invoices[payload["foreign_id"]]["request"]["amount"] == 100
    assert cp.create_calls == 2


_NATURAL = {"first_name": "A", "last_name": "B", "date_of_birth": "1990-01-31"}
_TOMORROW = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("overrides", "error_key"),
    [
        ({"titel": "typo"}, "titel"),
        ({"title": "x" * 51}, "title"),
        ({"title": ""}, "title"),
        ({"description": "x" * 1001}, "description"),
        ({"timer": "false"}, "timer"),
        ({"currency": "DOGE"}, "currency"),
        ({"foreign_id": "f" * 256}, "foreign_id"),
        ({"foreign_id": 123}, "foreign_id"),
        ({"end_user_reference": ""}, "end_user_reference"),
        ({"url_success": "http://example.com/ok"}, "url_success"),
        ({"url_failed": "https://10.0.0.1/failed"}, "url_failed"),
        ({"url_failed": "https://localhost/failed"}, "url_failed"),
        ({"email_user": "not-an-email"}, "email_user"),
        ({"sender_type": "robot"}, "sender_type"),
        ({"type": "whatever"}, "type"),
        ({"sender_currency": "DOGE"}, "sender_currency"),
        ({"sender_data": "Friedrich"}, "sender_data"),
        ({"sender_data": {**_NATURAL, "last_name": ""}}, "sender_data.last_name"),
        ({"sender_data": {**_NATURAL, "date_of_birth": "17.08.1995"}}, "sender_data.date_of_birth"),
        ({"sender_data": {**_NATURAL, "date_of_birth": "1995-02-30"}}, "sender_data.date_of_birth"),
        ({"sender_data": {**_NATURAL, "date_of_birth": _TOMORROW}}, "sender_data.date_of_birth"),
        ({"sender_data": {**_NATURAL, "middle_name": "C"}}, "sender_data.middle_name"),
        ({"sender_data": {**_NATURAL, "email": "nope"}}, "sender_data.email"),
        (
            {
                "sender_type": "legal",
                "sender_data": {"legal_name": "X", "country_of_registration": "DE"},
            },
            "sender_data.country_of_registration",
        ),
        (
            {
                "sender_type": "legal",
                "sender_data": {"legal_name": "X", "country_of_registration": "XXX"},
            },
            "sender_data.country_of_registration",
        ),
        ({"sender_type": "legal"}, "sender_data.legal_name"),
    ],
)
async def test_cp_field_rules(
    cp: FakeCryptoProcessing,
    cp_client: httpx.AsyncClient,
    overrides: dict[str, Any],
    error_key: str,
) -> None:
    response = await cp_post(cp_client, cp, "/invoices/create", compact(cp_invoice(**overrides)))
    assert response.status_code == 400
    assert error_key in response.json()["errors"]
    assert cp.invoices == {}


@pytest.mark.parametrize("missing", ["timer", "amount", "url_failed", "email_user", "sender_data"])
async def test_cp_required_fields(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient, missing: str
) -> None:
    payload = cp_invoice()
    del payload[missing]
    response = await cp_post(cp_client, cp, "/invoices/create", compact(payload))
    assert response.status_code == 400
    assert response.json()["errors"][missing].endswith("field is required.")


async def test_cp_cancel(cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient) -> None:
    unknown = await cp_post(cp_client, cp, "/invoices/nope/cancel/", b"{}")
    assert (unknown.status_code, unknown.json()) == (
        400,
        {"errors": {"foreign_id": "The selected foreign id is invalid."}},
    )
    payload = cp_invoice()
    await cp_post(cp_client, cp, "/invoices/create", compact(payload))
    path = f"/invoices/{payload['foreign_id']}/cancel/"

    no_slash = await cp_post(cp_client, cp, path.rstrip("/"), b"{}")
    assert (no_slash.status_code, no_slash.json()["code"]) == (403, "required_header_key")
    unsigned = await cp_client.post(
        path, content=b"{}", headers={"Content-Type": "application/json"}
    )
    assert unsigned.status_code == 403
    with_fields = await cp_post(cp_client, cp, path, b'{"reason":"x"}')
    assert with_fields.status_code == 400

    cancelled = await cp_post(cp_client, cp, path, b"{}")
    assert cancelled.status_code == 200
    assert cancelled.json()["data"]["status"] == "failed"
    assert "request" not in cancelled.json()["data"]
    assert cp.invoices[payload["foreign_id"]]["status"] == "failed"

    twice = await cp_post(cp_client, cp, path, b"{}")
    assert (twice.status_code, twice.json()) == (
        400,
        {
            "errors": {
                "error": "Invoice cannot be failed in its current state.",
                "code": "invalid_invoice_state",
            }
        },
    )


@pytest.mark.parametrize(("status", "cancellable"), [("pending", True), ("confirmed", False)])
async def test_cp_cancel_depends_on_status(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient, status: str, cancellable: bool
) -> None:
    payload = cp_invoice()
    await cp_post(cp_client, cp, "/invoices/create", compact(payload))
    cp.set_status(payload["foreign_id"], status)
    response = await cp_post(cp_client, cp, f"/invoices/{payload['foreign_id']}/cancel/", b"{}")
    assert response.status_code == (200 if cancellable else 400)
    with pytest.raises(ValueError, match="documented"):
        cp.set_status(payload["foreign_id"], "paid")


async def test_cp_records_requests(cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient) -> None:
    body = compact(cp_invoice())
    await cp_post(cp_client, cp, "/invoices/create", body)
    (recorded,) = cp.requests
    assert (recorded.method, recorded.path, recorded.body, recorded.status) == (
        "POST",
        "/api/v2/invoices/create",
        body,
        200,
    )
    assert recorded.headers["x-processing-signature"] == cp.sign(body)
    assert recorded.json()["amount"] == 100


async def test_cp_fail_and_garble(cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient) -> None:
    cp.fail_next(503, "<html>Service Unavailable</html>")
    cp.fail_next(500, {"errors": {"error": "boom"}}, times=2)
    cp.garble_next()
    first, second, third, fourth, fifth = (cp_invoice() for _ in range(5))

    response = await cp_post(cp_client, cp, "/invoices/create", compact(first))
    assert (response.status_code, response.text) == (503, "<html>Service Unavailable</html>")
    for payload in (second, third):
        response = await cp_post(cp_client, cp, "/invoices/create", compact(payload))
        assert (response.status_code, response.json()) == (500, {"errors": {"error": "boom"}})
    assert cp.invoices == {}

    response = await cp_post(cp_client, cp, "/invoices/create", compact(fourth))
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert fourth["foreign_id"] in cp.invoices  # created although the answer was garbage

    response = await cp_post(cp_client, cp, "/invoices/create", compact(fifth))
    assert response.status_code == 200
    assert cp.create_calls == 5


async def test_cp_delay_lost_answer_still_creates(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient
) -> None:
    cp.delay_next(5.0, create_anyway=True)
    payload = cp_invoice()
    body = compact(payload)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        await cp_client.post(
            "/invoices/create", content=body, headers=cp_headers(cp, body), timeout=0.2
        )
    await cp.settle()
    assert time.monotonic() - started < 2  # the fake noticed the client leaving
    assert payload["foreign_id"] in cp.invoices


async def test_cp_delay_without_create(
    cp: FakeCryptoProcessing, cp_client: httpx.AsyncClient
) -> None:
    cp.delay_next(5.0, create_anyway=False)
    lost = cp_invoice()
    body = compact(lost)
    with pytest.raises(httpx.ReadTimeout):
        await cp_client.post(
            "/invoices/create", content=body, headers=cp_headers(cp, body), timeout=0.2
        )
    await cp.settle()
    assert lost["foreign_id"] not in cp.invoices

    cp.delay_next(0.05, create_anyway=False)
    patient = cp_invoice()
    response = await cp_post(cp_client, cp, "/invoices/create", compact(patient))
    assert response.status_code == 200
    assert patient["foreign_id"] in cp.invoices


# -------------------------------------------------------------------------- CryptoCloud


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cc_server() -> AsyncIterator[FakeCryptoCloud]:
    async with FakeCryptoCloud() as fake:
        yield fake


@pytest_asyncio.fixture(loop_scope="module")
async def cc(cc_server: FakeCryptoCloud) -> FakeCryptoCloud:
    cc_server.reset()
    return cc_server


@pytest_asyncio.fixture(loop_scope="module")
async def cc_client(cc: FakeCryptoCloud) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Token {cc.api_key}"}
    async with client(cc.base_url, headers=headers, timeout=5) as http:
        yield http


def cc_invoice(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {"shop_id": "cc-shop-1", "amount": 100, "currency": "USD"}
    payload.update(overrides)
    return payload


async def cc_post(
    client: httpx.AsyncClient, path: str, body: bytes | dict[str, Any]
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else compact(body)
    return await client.post(path, content=raw, headers={"Content-Type": "application/json"})


_CC_TIME = "%Y-%m-%d %H:%M:%S.%f"


async def test_cc_create_valid_invoice(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    response = await cc_post(cc_client, "/v2/invoice/create", cc_invoice(order_id="ORDER_1"))
    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["status"] == "success"
    invoice = envelope["result"]
    assert tuple(invoice) == CREATE_RESPONSE_KEYS
    assert re.fullmatch(r"INV-[A-Z0-9]{8}", invoice["uuid"])
    assert invoice["link"] == "https://pay.cryptocloud.plus/" + invoice["uuid"][4:]
    created = datetime.strptime(invoice["created"], _CC_TIME)
    assert datetime.strptime(invoice["expiry_date"], _CC_TIME) - created == timedelta(hours=24)
    assert abs(created.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert invoice["status"] == "created"
    assert invoice["address"] == ""
    assert (invoice["amount_in_fiat"], invoice["amount_usd"], invoice["fiat_currency"]) == (
        100.0,
        100.0,
        "USD",
    )
    assert (invoice["side_commission"], invoice["side_commission_cc"]) == ("client", "client")
    assert (invoice["order_id"], invoice["test_mode"], invoice["is_email_required"]) == (
        "ORDER_1",
        True,
        False,
    )
    assert set(invoice["currency"]) >= {"id", "code", "fullcode", "network", "name"}
    assert set(invoice["project"]) == {"id", "name", "fail", "success", "logo"}
    for key in ("amount", "fee", "fee_usd", "service_fee", "service_fee_usd"):
        assert isinstance(invoice[key], float)
    stored = cc.invoices[invoice["uuid"]]
    assert stored["request"] == cc_invoice(order_id="ORDER_1")
    assert cc.find_by_order_id("ORDER_1") == [stored]
    assert cc.create_calls == 1
    assert cc.requests[0].headers["authorization"] == "Token cc-test-api-key"


async def test_cc_create_with_add_fields(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    payload = cc_invoice(
        currency="EUR",
        email="payer@example.com",
        add_fields={
            "time_to_pay": {"hours": 1, "minutes": 30},
            "available_currencies": ["USDT_TRC20", "ETH", "BTC"],
            "cryptocurrency": "ETH",
            "email_to_send": "payer@example.com",
        },
    )
    response = await cc_client.post(
        "/v2/invoice/create",
        params={"locale": "ru"},
        content=compact(payload),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    invoice = response.json()["result"]
    created = datetime.strptime(invoice["created"], _CC_TIME)
    lifetime = datetime.strptime(invoice["expiry_date"], _CC_TIME) - created
    assert lifetime == timedelta(hours=1, minutes=30)
    assert invoice["currency"]["fullcode"] == "ETH"
    assert invoice["address"].startswith("0x")
    assert invoice["fiat_currency"] == "EUR"


_UNAUTHORIZED = {"status": "error", "result": {"authorization": "Unauthorized request."}}


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer cc-test-api-key", "token cc-test-api-key", "Token wrong", "cc-test-api-key"],
)
async def test_cc_auth_failures(cc: FakeCryptoCloud, authorization: str | None) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with client(cc.base_url) as http:
        for path in ("/v2/invoice/create", "/v2/invoice/merchant/info"):
            response = await http.post(path, content=compact(cc_invoice()), headers=headers)
            assert (response.status_code, response.json()) == (401, _UNAUTHORIZED)
        cc.auth_error_status = 400
        response = await http.post(
            "/v2/invoice/create", content=compact(cc_invoice()), headers=headers
        )
        assert (response.status_code, response.json()) == (400, _UNAUTHORIZED)
    assert cc.invoices == {}


async def test_cc_requires_json(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    form = await cc_client.post("/v2/invoice/create", data={"shop_id": "cc-shop-1", "amount": "1"})
    assert form.status_code == 400
    assert form.json()["status"] == "error"
    broken = await cc_post(cc_client, "/v2/invoice/create", b'{"shop_id": ')
    assert broken.status_code == 400
    assert cc.invoices == {}


@pytest.mark.parametrize(
    ("currency", "token", "accepted"),
    [
        ("USD", "0.30000000000000004", False),
        ("USD", "1e2", False),
        ("USD", '"1e2"', False),
        ("USD", "10.555", False),
        ("USD", "0", False),
        ("USD", "-1", False),
        ("USD", "true", False),
        ("USD", '"ten"', False),
        ("USD", "10.5", True),
        ("USD", '"10.50"', True),  # numeric strings are accepted (older docs table)
        ("JPY", "100.5", False),
        ("JPY", "1500", True),
        ("VND", "100.0", False),
    ],
)
async def test_cc_amount_rules(
    cc: FakeCryptoCloud, cc_client: httpx.AsyncClient, currency: str, token: str, accepted: bool
) -> None:
    body = with_amount_token(cc_invoice(currency=currency), token)
    response = await cc_post(cc_client, "/v2/invoice/create", body)
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 400
        assert response.json()["status"] == "error"
        assert set(response.json()["result"]) == {"amount"}


@pytest.mark.parametrize(
    ("overrides", "error_key"),
    [
        ({"shop_id": "someone-else"}, "shop_id"),
        ({"shop_id": None}, "shop_id"),
        ({"amount": None}, "amount"),
        ({"currency": "BTC"}, "currency"),
        ({"order_id": 42}, "order_id"),
        ({"email": "nope"}, "email"),
        ({"time_to_pay": {"hours": 1, "minutes": 0}}, "time_to_pay"),  # belongs in add_fields
        ({"add_fields": []}, "add_fields"),
        ({"add_fields": {"period": "day"}}, "add_fields.period"),
        ({"add_fields": {"time_to_pay": {"hours": 1, "minutes": 60}}}, "add_fields.time_to_pay"),
        ({"add_fields": {"time_to_pay": {"hours": -1, "minutes": 0}}}, "add_fields.time_to_pay"),
        ({"add_fields": {"time_to_pay": {"hours": 2}}}, "add_fields.time_to_pay"),
        ({"add_fields": {"available_currencies": ["DOGE"]}}, "add_fields.available_currencies"),
        ({"add_fields": {"cryptocurrency": "USDT"}}, "add_fields.cryptocurrency"),
        ({"add_fields": {"email_to_send": "x@"}}, "add_fields.email_to_send"),
    ],
)
async def test_cc_field_rules(
    cc: FakeCryptoCloud, cc_client: httpx.AsyncClient, overrides: dict[str, Any], error_key: str
) -> None:
    payload = cc_invoice(**overrides)
    payload = {k: v for k, v in payload.items() if not (k == "shop_id" and v is None)}
    response = await cc_post(cc_client, "/v2/invoice/create", payload)
    assert response.status_code == 400
    assert error_key in response.json()["result"]
    assert cc.invoices == {}


async def test_cc_locale_must_be_documented(cc_client: httpx.AsyncClient) -> None:
    response = await cc_client.post(
        "/v2/invoice/create",
        params={"locale": "de"},
        content=compact(cc_invoice()),
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "locale" in response.json()["result"]


async def _cc_create(client: httpx.AsyncClient, **overrides: Any) -> dict[str, Any]:
    response = await cc_post(client, "/v2/invoice/create", cc_invoice(**overrides))
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def test_cc_info(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    first = await _cc_create(cc_client, order_id="A")
    second = await _cc_create(cc_client, order_id="B")
    cc.set_status(second["uuid"], "paid")
    body = {"uuids": [first["uuid"], second["uuid"][4:], "INV-UNKNOWN1"]}
    response = await cc_post(cc_client, "/v2/invoice/merchant/info", body)
    assert response.status_code == 200
    result = response.json()["result"]
    assert [(i["uuid"], i["order_id"], i["status"]) for i in result] == [
        (first["uuid"], "A", "created"),
        (second["uuid"], "B", "paid"),
    ]
    assert result[1]["invoice_status"] == "success"
    assert result[1]["date_finished"] is not None
    assert "request" not in result[0]

    too_many = await cc_post(cc_client, "/v2/invoice/merchant/info", {"uuids": ["INV-X"] * 101})
    assert too_many.status_code == 400
    assert "uuids" in too_many.json()["result"]
    singular = await cc_post(cc_client, "/v2/invoice/merchant/info", {"uuid": first["uuid"]})
    assert singular.status_code == 400  # the Go client's {"uuid": ...} is wrong per docs


async def test_cc_list(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    clock = [datetime(2026, 1, 1, 10, tzinfo=UTC)]
    cc.now = lambda: clock[0]
    uuids = []
    for day in (1, 2, 2, 3):
        clock[0] = datetime(2026, 1, day, 10, tzinfo=UTC)
        uuids.append((await _cc_create(cc_client))["uuid"])

    def query(**extra: Any) -> dict[str, Any]:
        return {"start": "02.01.2026", "end": "03.01.2026", **extra}

    response = await cc_post(cc_client, "/v2/invoice/merchant/list", query())
    assert response.status_code == 200
    envelope = response.json()
    assert envelope["all_count"] == 3
    # Newest first; equal timestamps: later created first.
    assert [i["uuid"] for i in envelope["result"]] == [uuids[3], uuids[2], uuids[1]]

    page = await cc_post(cc_client, "/v2/invoice/merchant/list", query(offset=1, limit=1))
    assert [i["uuid"] for i in page.json()["result"]] == [uuids[2]]
    cc.list_limit_is_end = True
    page = await cc_post(cc_client, "/v2/invoice/merchant/list", query(offset=1, limit=1))
    assert page.json()["result"] == []

    for bad in (
        query(start="2026-01-02"),
        query(limit=101),
        query(offset=-1),
        {"start": "03.01.2026", "end": "02.01.2026"},
        {"end": "03.01.2026"},
    ):
        response = await cc_post(cc_client, "/v2/invoice/merchant/list", bad)
        assert response.status_code == 400, bad


async def test_cc_cancel(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    invoice = await _cc_create(cc_client)
    path = "/v2/invoice/merchant/canceled"
    unprefixed = await cc_post(cc_client, path, {"uuid": invoice["uuid"][4:]})
    assert unprefixed.status_code == 400
    missing = await cc_post(cc_client, path, {})
    assert missing.json() == {"status": "error", "result": {"validate_error": "uuid is required"}}

    response = await cc_post(cc_client, path, {"uuid": invoice["uuid"]})
    assert (response.status_code, response.json()) == (200, {"status": "success", "result": ["ok"]})
    assert cc.invoices[invoice["uuid"]]["status"] == "canceled"

    again = await cc_post(cc_client, path, {"uuid": invoice["uuid"]})
    assert (again.status_code, again.json()) == (
        400,
        {"status": "error", "result": {"validate_error": "Invoice is not created"}},
    )
    paid = await _cc_create(cc_client)
    cc.set_status(paid["uuid"], "paid")
    assert (await cc_post(cc_client, path, {"uuid": paid["uuid"]})).status_code == 400
    with pytest.raises(ValueError, match="documented"):
        cc.set_status(paid["uuid"], "cancelled")  # two l's: not a CryptoCloud status


async def test_cc_faults(cc: FakeCryptoCloud, cc_client: httpx.AsyncClient) -> None:
    cc.fail_next(500, {"detail": "Internal Server Error"})
    cc.garble_next()
    cc.delay_next(5.0)
    failed = await cc_post(cc_client, "/v2/invoice/create", cc_invoice(order_id="F"))
    assert (failed.status_code, failed.json()) == (500, {"detail": "Internal Server Error"})
    assert cc.find_by_order_id("F") == []

    garbled = await cc_post(cc_client, "/v2/invoice/create", cc_invoice(order_id="G"))
    assert garbled.status_code == 200
    assert not garbled.text.lstrip().startswith("{")
    assert len(cc.find_by_order_id("G")) == 1

    with pytest.raises(httpx.ReadTimeout):
        await cc_client.post(
            "/v2/invoice/create",
            content=compact(cc_invoice(order_id="D")),
            headers={"Content-Type": "application/json"},
            timeout=0.2,
        )
    await cc.settle()
    assert len(cc.find_by_order_id("D")) == 1

    cc.delay_next(0.05, create_anyway=False)
    patient = await cc_post(cc_client, "/v2/invoice/create", cc_invoice(order_id="P"))
    assert patient.status_code == 200, patient.text
    assert len(cc.find_by_order_id("P")) == 1
    assert cc.create_calls == 4
    assert [r.status for r in cc.requests] == [500, 200, 200, 200]


async def test_cc_unknown_route(cc_client: httpx.AsyncClient) -> None:
    response = await cc_post(cc_client, "/v2/invoice/info", {"uuids": []})
    assert response.status_code == 404
