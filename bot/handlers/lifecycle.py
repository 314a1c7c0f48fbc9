"""After the pay link: cards that follow the payment, notifications, cancel and refresh."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from telegram import Bot, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError

from bot.domain import PaymentStatus
from bot.handlers import render
from bot.handlers.context import BotContext, BotServices, role_of, texts_for
from bot.handlers.telegram_io import answer
from bot.services.access import Role
from bot.services.payments import PaymentError
from storage.models import InvoiceRow

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0


class Notifier:
    """Tells merchants about status changes, once each, in the order they were stored.

    Callbacks only store and wake it, so providers get their 200 at once; a periodic sweep
    picks up anything a crash or a Telegram outage left untold.
    """

    def __init__(self, bot: Bot, services: BotServices) -> None:
        self._bot = bot
        self._services = services
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="notifier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=SWEEP_SECONDS)
            self._wake.clear()
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
                    await self._tell(invoice)
                except TelegramError as exc:
                    logger.warning(
                        "invoice %s: could not notify (%s)", invoice.id, type(exc).__name__
                    )
                    continue
                await self._services.payments.mark_notified(invoice.id, invoice.status)
                told += 1
            return told

    async def _tell(self, invoice: InvoiceRow) -> None:
        services = self._services
        t = services.catalog.texts(invoice.locale)
        customer = (
            await services.customers.get(invoice.merchant_id, invoice.customer_id)
            if invoice.customer_id is not None
            else None
        )
        if invoice.message_id is not None:
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
            except BadRequest as exc:  # not modified, or the merchant deleted the card
                logger.info("invoice %s: card not edited (%s)", invoice.id, exc.message)
        if not PaymentStatus(invoice.status or "").needs_action:
            return
        text = render.notification(t, invoice)
        reply_to = (
            ReplyParameters(invoice.message_id, allow_sending_without_reply=True)
            if invoice.message_id is not None
            else None
        )
        await self._bot.send_message(
            invoice.chat_id, text, parse_mode=ParseMode.HTML, reply_parameters=reply_to
        )
        notify_chat = services.settings.notify_chat_id
        if notify_chat is not None and notify_chat != invoice.chat_id:
            admin_t = services.catalog.texts(None)
            await self._bot.send_message(
                notify_chat, render.notification(admin_t, invoice), parse_mode=ParseMode.HTML
            )


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
