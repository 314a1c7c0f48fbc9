"""After the pay link: cards that follow the payment, notifications, cancel and refresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Bot, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.domain import PaymentStatus
from bot.handlers import render
from bot.handlers.context import BotContext, BotServices, role_of, texts_for
from bot.handlers.telegram_io import answer
from bot.i18n import Texts
from bot.services.access import Role
from bot.services.payments import PaymentError
from storage.models import InvoiceRow

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0


class Notifier:
    """Tells merchants about status changes, once each, in the order they were stored.

    Callbacks only store and wake it, so providers get their 200 at once; a periodic sweep
    picks up anything a crash or a Telegram outage left untold. The card and the message are
    tracked apart, so a redrawn card never re-sends a message, and the reverse.
    """

    def __init__(self, bot: Bot, services: BotServices) -> None:
        self._bot = bot
        self._services = services
        self._wake = asyncio.Event()
        self._stopping = False
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        """Let a round in progress finish (a half-told change would be told twice)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                logger.warning("notifier did not finish its round in time")
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=SWEEP_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self.flush()
            except Exception:  # keep notifying after a bad round; the next sweep retries
                logger.exception("notifier round failed")

    async def flush(self) -> int:
        async with self._lock:
            told = 0
            for invoice in await self._services.payments.pending_notifications():
                if invoice.id is None or invoice.status is None:
                    continue
                try:
                    told += await self._tell(invoice)
                except _RETRY_LATER as exc:
                    logger.warning("invoice %s: Telegram unavailable (%s); retrying later",
                                   invoice.id, type(exc).__name__)  # fmt: skip
            return told

    async def _tell(self, invoice: InvoiceRow) -> int:
        assert invoice.id is not None and invoice.status is not None
        services = self._services
        t = services.catalog.texts(invoice.locale)
        if invoice.message_id is not None and invoice.card_status != invoice.status:
            await self._redraw(invoice, t)
            await services.payments.mark_card(invoice.id, invoice.status)
        if invoice.notified_status is None or invoice.notified_status == invoice.status:
            return 0
        if PaymentStatus(invoice.status).needs_action:
            await self._send(invoice.chat_id, render.notification(t, invoice), invoice.message_id)
            notify_chat = services.settings.notify_chat_id
            if notify_chat is not None and notify_chat != invoice.chat_id:
                # Best effort: a failing admin copy must not make the merchant's repeat.
                with contextlib.suppress(TelegramError):
                    text = render.notification(services.catalog.texts(None), invoice)
                    await self._send(notify_chat, text, None)
        await services.payments.mark_notified(invoice.id, invoice.status)
        return 1

    async def _redraw(self, invoice: InvoiceRow, t: Texts) -> None:
        services = self._services
        customer = await services.customers.get(invoice.merchant_id, invoice.customer_id)
        try:
            await self._bot.edit_message_text(
                render.invoice_card(t, invoice, customer),
                chat_id=invoice.chat_id,
                message_id=invoice.message_id,
                parse_mode=ParseMode.HTML,
                reply_markup=render.invoice_card_keyboard(
                    t, invoice, can_refresh=services.payments.can_query
                ),
                disable_web_page_preview=True,
            )
        except (BadRequest, Forbidden) as exc:  # not modified, card deleted, bot blocked
            logger.info("invoice %s: card not edited (%s)", invoice.id, type(exc).__name__)

    async def _send(self, chat_id: int, text: str, reply_to: int | None) -> None:
        try:
            await self._bot.send_message(
                chat_id,
                text,
                parse_mode=ParseMode.HTML,
                reply_parameters=(
                    ReplyParameters(reply_to, allow_sending_without_reply=True)
                    if reply_to is not None
                    else None
                ),
            )
        except (BadRequest, Forbidden) as exc:
            # Permanent for this chat (blocked, deleted): retrying forever would starve others.
            logger.warning("notification not delivered (%s); giving up", type(exc).__name__)


# Errors worth another try on the next sweep; anything else is given up for that chat.
_RETRY_LATER = (NetworkError, TimedOut, RetryAfter)


async def alert_admins(bot: Bot, services: BotServices, invoices: list[InvoiceRow]) -> None:
    """Flagged invoices go to NOTIFY_CHAT_ID, or else to every admin."""
    t = services.catalog.texts(None)
    targets = (
        [services.settings.notify_chat_id]
        if services.settings.notify_chat_id is not None
        else list(services.settings.admin_ids)
    )
    for invoice in invoices:
        text = t(
            "flagged-alert",
            public_id=invoice.public_id,
            id=invoice.id,
            provider=invoice.provider,
        )
        for chat_id in targets:
            try:
                await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
            except TelegramError as exc:
                logger.warning(
                    "could not alert chat about a flagged invoice (%s)", type(exc).__name__
                )


# --- commands and buttons -------------------------------------------------------------------


async def _find(update: Update, context: BotContext, ref: str) -> InvoiceRow | None:
    scope = None if role_of(update, context) is Role.ADMIN else update.effective_user.id  # type: ignore[union-attr]
    return await context.services.invoices.find(ref, merchant_id=scope)


async def _run_action(update: Update, context: BotContext, action: str, ref: str) -> str:
    """Cancel or refresh one invoice; returns the text to show the merchant."""
    t = texts_for(update, context)
    invoice = await _find(update, context, ref)
    if invoice is None:
        return t("invoice-not-found", ref=ref[:40])
    payments = context.services.payments
    try:
        if action == "cancel":
            await payments.cancel(invoice)
            return t("cancel-done")
        changed = await payments.refresh(invoice)
        return t("refresh-changed" if changed else "refresh-unchanged")
    except PaymentError as exc:
        params: dict[str, Any] = dict(exc.params)
        if "status" in params:
            params["status"] = render.status_text(t, invoice)
        return t(exc.key, **params)


async def _command(update: Update, context: BotContext, action: str) -> None:
    t = texts_for(update, context)
    assert update.effective_chat is not None
    args = context.args or []
    if len(args) != 1:
        await update.effective_chat.send_message(t(f"{action}-usage"), parse_mode=ParseMode.HTML)
        return
    text = await _run_action(update, context, action, args[0])
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)


async def cancel_invoice_command(update: Update, context: BotContext) -> None:
    """Cancels an unpaid invoice at the provider: /cancel_invoice <id>."""
    await _command(update, context, "cancel")


async def refresh_command(update: Update, context: BotContext) -> None:
    """Asks the provider for an invoice's status now: /refresh <id>."""
    await _command(update, context, "refresh")


async def card_button(update: Update, context: BotContext) -> None:
    """Cancel / Refresh pressed on an invoice card (`inv|<action>|<id>`)."""
    query = update.callback_query
    assert query is not None and query.data is not None
    _, action, ref = query.data.split("|", 2)
    text = await _run_action(update, context, action, ref)
    await answer(query, text[:200])


async def callbacks_command(update: Update, context: BotContext) -> None:
    """Shows admins the URL to paste into the provider's dashboard."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    if role_of(update, context) is not Role.ADMIN:
        await update.effective_chat.send_message(t("not-allowed-short"))
        return
    settings = context.services.settings
    url = settings.callback_url(settings.provider)
    text = (
        t("callbacks-info", provider=settings.provider.value, url=url)
        if url
        else t("callbacks-missing")
    )
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)
