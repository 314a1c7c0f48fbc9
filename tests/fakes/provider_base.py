"""Recording, fault injection and validation helpers shared by the payment-provider fakes.

The fakes exist so the bot's adapters are exercised against the documented contract
(``/work/shared/providers``) over real HTTP, including the unpleasant cases a live
provider produces: error answers, lost answers (invoice created but the client timed out)
and garbage bodies.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import ipaddress
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Router
from starlette.types import Message, Receive, Scope, Send

from tests.fakes.server import serve

#: Keys of a stored invoice that are bookkeeping for tests, never sent to clients.
PRIVATE_INVOICE_KEYS = frozenset({"request", "raw_body"})

GARBLED_BODY = "<html><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class RecordedRequest:
    """One HTTP request as it arrived on the wire, so tests can assert on exact bytes."""

    method: str
    path: str
    query: str
    #: Header names are lower-case (as ASGI delivers them); repeated headers are joined by ", ".
    headers: dict[str, str]
    body: bytes
    #: Status of the answer; ``None`` while the fake is still working on it.
    status: int | None = None

    def json(self) -> Any:
        """Decode the body the way the fakes do (floats as Decimal), for assertions."""
        return json.loads(self.body, parse_float=Decimal)


@dataclass
class _Fault:
    kind: Literal["fail", "delay", "garble"]
    remaining: int
    status: int = 200
    body: dict[str, Any] | str = ""
    headers: dict[str, str] | None = None
    seconds: float = 0.0
    create_anyway: bool = True


class FakeProvider(abc.ABC):
    """Base for an in-process provider API served by uvicorn on a loopback port."""

    #: Invoice statuses the provider documents; ``set_status`` refuses anything else.
    statuses: ClassVar[frozenset[str]]

    def __init__(self) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self.create_calls = 0
        self._faults: deque[_Fault] = deque()
        self._server_url: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._stopping = asyncio.Event()
        self._configure()

    def reset(self) -> None:
        """Forget invoices, requests and queued faults and restore the default settings.

        Lets one running server (e.g. a module- or session-scoped fixture) serve many tests:
        starting and stopping uvicorn costs far more than a test's requests.
        """
        self.invoices = {}
        self.requests = []
        self.create_calls = 0
        self._faults.clear()
        self._configure()

    @abc.abstractmethod
    def _configure(self) -> None:
        """(Re)set the tunable attributes to their defaults."""

    # ----------------------------------------------------------------- lifecycle

    @property
    def server_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server_url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._server_url

    @property
    @abc.abstractmethod
    def base_url(self) -> str:
        """The value the bot gets as this provider's base URL setting."""

    async def start(self) -> None:
        if self._stack is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        self._stopping = asyncio.Event()
        router = Router(routes=self._routes(), redirect_slashes=False, default=self._fallback)
        stack = contextlib.AsyncExitStack()
        self._server_url = await stack.enter_async_context(serve(self._recording(router)))
        self._stack = stack

    async def stop(self) -> None:
        if self._stack is None:
            return
        # Wake delayed handlers so uvicorn's graceful shutdown does not wait for them.
        self._stopping.set()
        stack, self._stack = self._stack, None
        try:
            await stack.aclose()
        finally:
            self._server_url = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def settle(self, max_wait: float = 2.0) -> None:
        """Wait until every received request has been answered.

        Needed after a client-side timeout: the fake keeps working on the request, and a
        test must not inspect ``invoices`` before the fake has decided what to do with it.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        while any(r.status is None for r in self.requests):
            if loop.time() >= deadline:
                raise TimeoutError("fake provider still has unanswered requests")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------- test controls

    def fail_next(
        self,
        status: int,
        body: dict[str, Any] | str,
        times: int = 1,
        headers: dict[str, str] | None = None,
        create_anyway: bool = False,
    ) -> None:
        """Answer the next create request(s) with this instead of the real answer.

        ``create_anyway=True``: the request is processed first (the invoice exists), then
        the failure is answered: a 500 whose invoice was made all the same.
        """
        self._faults.append(
            _Fault(
                "fail", _positive(times), status=status, body=body, headers=headers,
                create_anyway=create_anyway,
            )
        )  # fmt: skip

    def delay_next(self, seconds: float, times: int = 1, create_anyway: bool = True) -> None:
        """Hold the answer to the next create request(s) for ``seconds``.

        ``create_anyway=True``: the invoice is created before the pause, so a client that
        times out has lost the answer to a request that did succeed.
        ``create_anyway=False``: the request is processed only after the pause and only if
        the client is still waiting, so a client that gave up left nothing behind.
        """
        self._faults.append(
            _Fault("delay", _positive(times), seconds=seconds, create_anyway=create_anyway)
        )

    def garble_next(self, times: int = 1) -> None:
        """Process the next create request(s), then answer 200 with a non-JSON body.

        The answer is garbage whatever the processing outcome; on a valid request the
        invoice exists, which is the case that matters (success the client cannot read).
        """
        self._faults.append(_Fault("garble", _positive(times)))

    def set_status(self, key: str, status: str) -> None:
        """Move an invoice to another documented status, as the provider would."""
        if status not in self.statuses:
            raise ValueError(f"{status!r} is not a documented status: {sorted(self.statuses)}")
        self._apply_status(self.invoices[key], status)

    def _apply_status(self, invoice: dict[str, Any], status: str) -> None:
        invoice["status"] = status

    # ------------------------------------------------------- subclass interface

    @abc.abstractmethod
    def _routes(self) -> list[BaseRoute]: ...

    @abc.abstractmethod
    async def _fallback(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer requests that match no route, the way the provider does."""

    # ----------------------------------------------------------------- helpers

    async def _run_create(
        self, request: Request, process: Callable[[], Awaitable[Response]]
    ) -> Response:
        """Run a create request through the queued faults (FIFO, one fault per request).

        Subclasses call this after their auth/content-type checks: a request the provider
        rejects at the door neither reaches the simulated failure nor consumes it.
        """
        # Cache the body now: ``_pause`` drains ``receive`` while watching for a disconnect.
        await request.body()
        fault = self._faults[0] if self._faults else None
        if fault is None:
            return await process()
        fault.remaining -= 1
        if fault.remaining <= 0:
            self._faults.popleft()
        if fault.kind == "fail":
            if fault.create_anyway:
                await process()
            if isinstance(fault.body, str):
                return Response(
                    fault.body, fault.status, headers=fault.headers, media_type="text/html"
                )
            return JSONResponse(fault.body, fault.status, headers=fault.headers)
        if fault.kind == "garble":
            await process()
            return Response(GARBLED_BODY, 200, media_type="text/html")
        if fault.create_anyway:
            response = await process()
            await self._pause(request, fault.seconds)
            return response
        if await self._pause(request, fault.seconds):
            # Nobody is listening any more; this answer only ends up in ``requests``.
            return Response("client went away", 499, media_type="text/plain")
        return await process()

    async def _pause(self, request: Request, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True early if the client left or the fake stops."""
        gone = asyncio.ensure_future(_wait_for_disconnect(request.receive))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {gone, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
            stopping.cancel()
            await asyncio.gather(gone, stopping, return_exceptions=True)
        return bool(done)

    def _recording(self, app: Router) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """Wrap ``app`` so every request is recorded with its raw body and answer status."""

        async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            headers: dict[str, str] = {}
            for raw_name, raw_value in scope["headers"]:
                name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            record = RecordedRequest(
                method=scope["method"],
                path=scope["path"],
                query=scope["query_string"].decode("latin-1"),
                headers=headers,
                body=body,
            )
            self.requests.append(record)
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            async def recording_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record.status = message["status"]
                await send(message)

            await app(scope, replay, recording_send)

        return asgi


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _positive(times: int) -> int:
    if times < 1:
        raise ValueError("times must be >= 1")
    return times


def public_invoice(invoice: dict[str, Any]) -> dict[str, Any]:
    """The invoice as a client sees it (without the test bookkeeping keys)."""
    return {k: v for k, v in invoice.items() if k not in PRIVATE_INVOICE_KEYS}


# ----------------------------------------------------------------------- JSON


class RawDecimal(Decimal):
    """Decimal that remembers its JSON token, so ``1.5e1`` is not mistaken for ``15``."""

    raw: str

    def __new__(cls, token: str) -> Self:
        value = super().__new__(cls, token)
        value.raw = token
        return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(body: bytes) -> Any:
    """Strict JSON decode: floats become ``RawDecimal``; NaN/Infinity are invalid JSON.

    Raises ``ValueError`` on anything that is not JSON.
    """
    return json.loads(body, parse_float=RawDecimal, parse_constant=_reject_constant)


def is_json_content_type(value: str | None) -> bool:
    return value is not None and value.split(";", 1)[0].strip().lower() == "application/json"


# ----------------------------------------------------------------- validators

_NUMERIC_STRING = re.compile(r"-?\d+(\.\d+)?")
_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def check_amount(
    value: Any, max_places: int | None, *, allow_string: bool
) -> tuple[Decimal | None, str | None]:
    """Return ``(amount, None)`` or ``(None, message)``.

    Works on the literal text of the number because that is where client bugs show:
    ``0.30000000000000004`` (float arithmetic) or ``1e2`` (float formatting) are both
    valid JSON numbers but not amounts a payment API should accept.
    """
    if isinstance(value, bool):
        return None, "The amount must be a number."
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, RawDecimal):
        text = value.raw
    elif isinstance(value, str) and allow_string:
        if "e" in value.lower():
            return None, "The amount must not use exponent notation."
        if not _NUMERIC_STRING.fullmatch(value):
            return None, "The amount must be a number."
        text = value
    else:
        return None, "The amount must be a number."
    if "e" in text.lower():
        return None, "The amount must not use exponent notation."
    places = len(text.split(".", 1)[1]) if "." in text else 0
    if max_places is not None and places > max_places:
        return None, f"The amount must not have more than {max_places} decimal places."
    amount = Decimal(text)
    if amount <= 0:
        return None, "The amount must be greater than 0."
    return amount, None


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and _EMAIL.fullmatch(value) is not None


def is_https_domain_url(value: Any) -> bool:
    """HTTPS URL whose host is a domain name (not an IP), as CryptoProcessing requires."""
    if not isinstance(value, str) or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return False
    if parts.scheme != "https" or not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return False
    labels = host.rstrip(".").split(".")
    return (
        len(labels) >= 2
        and all(_HOST_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )
