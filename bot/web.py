"""The bot's HTTP server: provider callbacks, a health check and, in webhook mode, Telegram.

It runs in the bot's own event loop (PTB's custom-webhook pattern). Handlers here only read
HTTP and hand over to services; verification lives with the provider adapters.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.providers.base import CallbackRejected
from bot.services.payments import PaymentService

logger = logging.getLogger(__name__)

UPDATES_ROUTE = "/telegram"


class BodyTooLarge(Exception):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The raw bytes, refusing more than `limit` whatever Content-Length claims."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": reason}, status_code=status)


def build_web_app(
    *,
    payments: PaymentService,
    max_body: int,
    is_ready: Callable[[], bool],
    role: Callable[[], str] = lambda: "poller",
    telegram_secret: str | None = None,
    on_telegram_update: Callable[[Any], Awaitable[None]] | None = None,
) -> Starlette:
    async def provider_callback(request: Request) -> Response:
        provider_name = str(request.path_params["provider"])
        if not payments.knows(provider_name):
            # Old invoices of a provider the bot no longer has keys for cannot be verified.
            return _error(404, "this bot has no keys for that provider")
        try:
            body = await read_body(request, max_body)
        except BodyTooLarge:
            return _error(413, "body too large")
        except ClientDisconnect:
            return _error(400, "client disconnected")
        headers = {key.lower(): value for key, value in request.headers.items()}
        try:
            changed = await payments.handle_callback(provider_name, headers, body)
        except CallbackRejected as exc:
            logger.warning(
                "%s callback refused: %s (%s)", provider_name, exc.status_code, exc.reason
            )
            return _error(exc.status_code, exc.reason)
        logger.info("%s callback accepted (%d change(s))", provider_name, changed)
        return JSONResponse({"ok": True, "message": "Postback received"})

    async def healthz(request: Request) -> Response:
        database = await payments.healthy()
        ready = is_ready()
        status = 200 if database and ready else 503
        body = {"database": database, "bot": ready, "role": role()}
        return JSONResponse(body, status_code=status)

    async def telegram_update(request: Request) -> Response:
        if on_telegram_update is None or telegram_secret is None:
            return _error(404, "webhook mode is off")
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if not hmac.compare_digest(given.encode(), telegram_secret.encode()):
            logger.warning("telegram webhook request with a wrong or missing secret token refused")
            return _error(403, "wrong secret token")
        try:
            payload = json.loads(await read_body(request, max_body))
        except BodyTooLarge:
            return _error(413, "body too large")
        except (ValueError, RecursionError, ClientDisconnect):
            return _error(400, "body is not JSON")
        if not isinstance(payload, dict):
            return _error(400, "body is not an update")
        try:
            await on_telegram_update(payload)
        except (TypeError, ValueError, KeyError):
            return _error(400, "body is not an update")
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/callbacks/{provider}", provider_callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route(UPDATES_ROUTE, telegram_update, methods=["POST"]),
        ]
    )
