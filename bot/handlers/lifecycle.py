"""After the pay link: cards that follow the payment, notifications, cancel and refresh."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from telegram import Bot, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError, TimedOut

from bot.domain import Customer, PaymentStatus
from bot.handlers import reach, render
from bot.handlers.callback_data import InvoiceButton, parse_callback_data
from bot.handlers.context import BotContext, BotServices, merchant_scope, role_of, texts_for
from bot.handlers.telegram_io import answer
from bot.i18n import Texts
from bot.services.access import Role
from bot.services.invoices import Settled
from bot.services.payments import PaymentError
from storage.models import InvoiceRow

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 30.0


class BackgroundLoop:
    """A task that runs `round()` when woken, or after the delay the last round asked for.

    Stopping lets a round in progress finish: a half-told change would be told twice.
    """

    name = "loop"

    def __init__(self, bot: Bot, services: BotServices) -> None:
        self._bot = bot
        self._services = services
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # With several processes only the leader runs the loop; the others skip rounds.
        self.active: Callable[[], bool] = lambda: True

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except TimeoutError:
                logger.warning("%s did not finish its round in time", self.name)
            self._task = None

    async def round(self) -> float:
        """Do one round; return how long to sleep before the next if nobody wakes us."""
        raise NotImplementedError

    async def _run(self) -> None:
        while not self._stopping:
            try:
                delay = await self.round() if self.active() else SWEEP_SECONDS
            except Exception:  # keep going after a bad round; the next one retries
                logger.exception("%s round failed", self.name)
                delay = SWEEP_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()


class Notifier(BackgroundLoop):
    """Tells merchants about status changes, once each, in the order they were stored.

    Callbacks only store and wake it, so providers get their 200 at once; a periodic sweep
    picks up anything a crash or a Telegram outage left untold. The card and the message are
    tracked apart, so a redrawn card never re-sends a message, and the reverse.
    """

    name = "notifier"

    def __init__(self, bot: Bot, services: BotServices) -> None:
        super().__init__(bot, services)
        self._lock = asyncio.Lock()

    async def round(self) -> float:
        await self.flush()
        return SWEEP_SECONDS

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
            told += await self._alert_admins()
            return told

    async def _alert_admins(self) -> int:
        """Send queued admin alerts (flags, unmatched reports, refused keys), once each."""
        services = self._services
        t = services.catalog.texts(None)
        targets = admin_targets(services)
        sent = 0
        for alert in await services.alerts.pending():
            assert alert.id is not None
            invoice = None
            if alert.kind == "invoice" and alert.ref.isdigit():
                invoice = await services.invoices.get(int(alert.ref))
            text = render.admin_alert(t, alert, invoice)
            try:
                for chat_id in targets if text is not None else []:
                    assert text is not None
                    try:
                        await self._bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
                    except (BadRequest, Forbidden) as exc:  # that chat is gone: the others get it
                        logger.warning("admin alert not delivered (%s)", type(exc).__name__)
            except _RETRY_LATER as exc:
                logger.warning("admin alert: Telegram unavailable (%s); retrying later",
                               type(exc).__name__)  # fmt: skip
                return sent
            if not targets:
                logger.warning("admin alert (%s) has nobody to go to: set ADMIN_IDS", alert.kind)
            await services.alerts.mark_sent(alert.id)
            sent += 1
        return sent

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
                    t,
                    invoice,
                    can_refresh=services.payments.can_query(invoice.provider),
                    share=services.sharing.inline_enabled,
                    business=await services.sharing.has_business(invoice.merchant_id),
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


def admin_targets(services: BotServices) -> list[int]:
    """Alerts go to NOTIFY_CHAT_ID, or else to every admin."""
    if services.settings.notify_chat_id is not None:
        return [services.settings.notify_chat_id]
    return list(services.settings.admin_ids)


async def present_invoice(
    bot: Bot,
    services: BotServices,
    t: Texts,
    invoice: InvoiceRow,
    customer: Customer | None,
    *,
    message_id: int | None,
    forwardable: bool,
) -> None:
    """Turn the preview into the invoice card (or send one) and, for an invoice the merchant
    has not seen yet, the message to forward: the same for a fresh and a recovered invoice."""
    assert invoice.id is not None
    text = render.invoice_card(t, invoice, customer, forward_hint=forwardable)
    markup = render.invoice_card_keyboard(
        t,
        invoice,
        can_refresh=services.payments.can_query(invoice.provider),
        share=services.sharing.inline_enabled,
        business=await services.sharing.has_business(invoice.merchant_id),
    )
    card_id = message_id
    if message_id is not None:
        try:
            await bot.edit_message_text(
                text, chat_id=invoice.chat_id, message_id=message_id, parse_mode=ParseMode.HTML,
                reply_markup=markup, disable_web_page_preview=True,
            )  # fmt: skip
        except BadRequest as exc:
            if "not modified" not in exc.message.lower():
                card_id = None  # the preview is gone: send the card anew
    if card_id is None:
        sent = await bot.send_message(
            invoice.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup,
            disable_web_page_preview=True,
        )  # fmt: skip
        card_id = sent.message_id
    await services.invoices.mark_card(invoice.id, card_id, invoice.status)
    if forwardable:
        token = await services.sharing.token_of(invoice)
        await bot.send_message(
            invoice.chat_id,
            render.forward_text(
                t, invoice, services.settings.shop_name, reach.deep_link(bot, token)
            ),
            parse_mode=ParseMode.HTML,
            disable_web_page_preview=True,
        )


class Settler(BackgroundLoop):
    """Settles attempts whose create answer was lost, in the background, within seconds.

    It sleeps until the next attempt is due (a timeout waits out the provider's own), so an
    abandoned draft never leaves a payable invoice behind until some later sweep, and it
    tells the merchant what became of the attempt.
    """

    name = "settler"

    async def round(self) -> float:
        await self.flush()
        return await self._until_next()

    async def _until_next(self) -> float:
        next_at = await self._services.invoices.next_settle_at()
        if next_at is None:
            return SWEEP_SECONDS
        seconds = (next_at - dt.datetime.now(dt.UTC)).total_seconds()
        return min(SWEEP_SECONDS, max(0.05, seconds))

    async def flush(self) -> int:
        settled = await self._services.invoices.settle_due()
        for result in settled:
            try:
                await self._tell(result)
            except TelegramError as exc:  # settled all the same; the card shows it on Retry
                logger.warning("invoice %s: settle outcome not shown (%s)",
                               result.invoice.id, type(exc).__name__)  # fmt: skip
        return len(settled)

    async def _tell(self, result: Settled) -> None:
        services = self._services
        invoice = result.invoice
        t = services.catalog.texts(invoice.locale)
        if result.outcome == "recovered":
            await present_invoice(
                self._bot, services, t, invoice, result.customer,
                message_id=invoice.preview_message_id, forwardable=True,
            )  # fmt: skip
            return
        draft = result.draft
        if draft is not None and invoice.preview_message_id is not None:
            customer = await services.customers.get(draft.merchant_id, draft.customer_id)
            note = t("settled-open-" + result.outcome, public_id=invoice.public_id)
            with contextlib.suppress(BadRequest):
                await self._bot.edit_message_text(
                    render.preview_text(t, draft, customer, note=note),
                    chat_id=invoice.chat_id,
                    message_id=invoice.preview_message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=(
                        render.preview_keyboard(t, draft, retry=True)
                        if result.outcome == "voided"
                        else None
                    ),
                    disable_web_page_preview=True,
                )
            return
        await self._bot.send_message(
            invoice.chat_id, render.settled_notice(t, invoice, result.outcome),
            parse_mode=ParseMode.HTML,
        )  # fmt: skip


# --- commands and buttons -------------------------------------------------------------------


async def _find(update: Update, context: BotContext, ref: str) -> InvoiceRow | None:
    return await context.services.invoices.find(ref, merchant_id=merchant_scope(update, context))


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


async def cancel_invoice_command(update: Update, context: BotContext) -> None:
    """Asks to confirm cancelling an unpaid invoice: /cancel_invoice <id>."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    args = context.args or []
    if len(args) != 1:
        await update.effective_chat.send_message(t("cancel-usage"), parse_mode=ParseMode.HTML)
        return
    invoice = await _find(update, context, args[0])
    if invoice is None or invoice.id is None:
        await update.effective_chat.send_message(
            t("invoice-not-found", ref=args[0][:40]), parse_mode=ParseMode.HTML
        )
        return
    if not context.services.payments.cancellable(invoice):
        text = await _run_action(update, context, "cancel", args[0])  # says why not
        await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)
        return
    await update.effective_chat.send_message(
        t("cancel-confirm", public_id=invoice.public_id, id=invoice.id, title=invoice.title),
        parse_mode=ParseMode.HTML,
        reply_markup=render.cancel_confirm_keyboard(t, invoice),
    )


async def refresh_command(update: Update, context: BotContext) -> None:
    """Asks the provider for an invoice's status now: /refresh <id>."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    args = context.args or []
    if len(args) != 1:
        await update.effective_chat.send_message(t("refresh-usage"), parse_mode=ParseMode.HTML)
        return
    text = await _run_action(update, context, "refresh", args[0])
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)


async def card_button(update: Update, context: BotContext) -> None:
    """Buttons on an invoice card (`inv|<action>|<id>`): Cancel asks first, then cancels."""
    query = update.callback_query
    assert query is not None
    button = parse_callback_data(query.data)
    t = texts_for(update, context)
    services = context.services
    if not isinstance(button, InvoiceButton):
        await answer(query, t("stale-button"))
        return
    action, ref = button.action, str(button.invoice_id)
    if action in ("qr", "biz", "remind"):
        found = await _find(update, context, ref)
        if found is None:
            await answer(query, t("invoice-not-found", ref=ref[:40])[:200])
        elif action == "qr":
            await reach.card_qr(update, context, found)
        elif action == "biz":
            await reach.card_business(update, context, found)
        else:
            await reach.remind_customer(update, context, found)
        return
    if action in ("cancel", "keep"):
        invoice = await _find(update, context, ref)
        if invoice is None:
            await answer(query, t("invoice-not-found", ref=ref[:40])[:200])
            return
        markup: InlineKeyboardMarkup | None
        if action == "cancel" and services.payments.cancellable(invoice):
            await answer(query, t("cancel-ask")[:200])
            markup = render.cancel_confirm_keyboard(t, invoice)
        else:
            await answer(query, None if action == "keep" else t("cancel-refused-status",
                         status=render.status_text(t, invoice))[:200])  # fmt: skip
            markup = render.invoice_card_keyboard(
                t,
                invoice,
                can_refresh=services.payments.can_query(invoice.provider),
                share=services.sharing.inline_enabled,
            )
        with contextlib.suppress(BadRequest):  # "not modified" on a repeated tap
            await query.edit_message_reply_markup(markup)
        return
    text = await _run_action(update, context, "cancel" if action == "cancelok" else action, ref)
    await answer(query, text[:200])
    if action == "cancelok":
        invoice = await _find(update, context, ref)
        if invoice is not None and invoice.status != PaymentStatus.CANCELLED.value:
            # Refused: put the card's own buttons back. (A cancelled card is redrawn by the
            # notifier, which also sends nothing more for a cancellation.)
            with contextlib.suppress(BadRequest):
                await query.edit_message_reply_markup(
                    render.invoice_card_keyboard(
                        t,
                        invoice,
                        can_refresh=services.payments.can_query(invoice.provider),
                        share=services.sharing.inline_enabled,
                    )
                )


async def _refused_unless_admin(update: Update, context: BotContext) -> bool:
    """Tells a merchant an admin command is for admins; True when it was refused."""
    assert update.effective_chat is not None
    if role_of(update, context) is Role.ADMIN:
        return False
    t = texts_for(update, context)
    await update.effective_chat.send_message(t("admin-only"), parse_mode=ParseMode.HTML)
    return True


async def unmatched_command(update: Update, context: BotContext) -> None:
    """Admins: payment reports for invoices the bot does not know, newest first."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    if await _refused_unless_admin(update, context):
        return
    rows = await context.services.payments.unmatched()
    await update.effective_chat.send_message(
        render.unmatched_list(t, rows), parse_mode=ParseMode.HTML
    )


async def callbacks_command(update: Update, context: BotContext) -> None:
    """Shows admins the URL to paste into the provider's dashboard."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    if await _refused_unless_admin(update, context):
        return
    settings = context.services.settings
    url = settings.callback_url(settings.provider)
    text = (
        t("callbacks-info", provider=settings.provider.value, url=url)
        if url
        else t("callbacks-missing")
    )
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)
