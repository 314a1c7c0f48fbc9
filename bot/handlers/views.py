"""Keeps every copy of an invoice outside the merchant's chat live, and sends reminders.

A view (the payer's card, the inline card in a chat, the card in a Business chat) is redrawn
when its invoice's status moves; the payer gets a receipt when it is paid and what is missing
when it is partly paid; a payer who opened the invoice gets one reminder before it expires;
merchants get their expiring and partly paid invoices listed once, to remind the customer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict

from telegram import InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.domain import PaymentStatus
from bot.handlers import reach, render
from bot.handlers.callback_data import InvoiceButton
from bot.handlers.formatting import money, when
from bot.handlers.lifecycle import SWEEP_SECONDS, BackgroundLoop
from bot.i18n import Texts
from storage.models import InvoiceRow, InvoiceViewRow

logger = logging.getLogger(__name__)

_RETRY_LATER = (NetworkError, TimedOut, RetryAfter)
_PAID = {PaymentStatus.PAID, PaymentStatus.OVERPAID}


class ViewKeeper(BackgroundLoop):
    name = "views"

    async def round(self) -> float:
        await self.flush()
        return SWEEP_SECONDS

    async def flush(self) -> int:
        done = 0
        try:
            for view, invoice in await self._services.sharing.views_behind():
                await self._update(view, invoice)
                done += 1
            await self._payer_reminders()
            await self._merchant_reminders()
        except _RETRY_LATER as exc:
            logger.warning("views: Telegram unavailable (%s); retrying later", type(exc).__name__)
        return done

    async def _update(self, view: InvoiceViewRow, invoice: InvoiceRow) -> None:
        assert view.id is not None and invoice.status is not None
        services = self._services
        t = services.catalog.texts(view.locale)
        token = await services.sharing.token_of(invoice)
        outside = view.kind != "payer"  # a card outside the payer's chat links to it
        markup = render.payer_keyboard(
            t,
            invoice,
            token=token,
            status_url=reach.deep_link(self._bot, token) if outside else None,
        )
        text = render.payer_card(t, invoice, services.settings.shop_name)
        try:
            await self._edit(view, text, markup)
        except (BadRequest, Forbidden) as exc:  # not modified, deleted, blocked: move on
            logger.info("view %s not edited (%s)", view.id, type(exc).__name__)
        if view.kind != "inline" and view.told_status != invoice.status:
            await self._tell_payer(view, invoice, t)
        await services.sharing.mark_view(
            view.id, shown_status=invoice.status, told_status=invoice.status
        )

    async def _edit(
        self, view: InvoiceViewRow, text: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        if view.inline_message_id is not None:
            await self._bot.edit_message_text(
                text, inline_message_id=view.inline_message_id, parse_mode=ParseMode.HTML,
                reply_markup=markup, disable_web_page_preview=True,
            )  # fmt: skip
        elif view.chat_id is not None and view.message_id is not None:
            await self._bot.edit_message_text(
                text, chat_id=view.chat_id, message_id=view.message_id,
                parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True,
                business_connection_id=view.business_connection_id,
            )  # fmt: skip

    async def _tell_payer(self, view: InvoiceViewRow, invoice: InvoiceRow, t: Texts) -> None:
        """A receipt once paid; what is missing, with the pay link, once partly paid."""
        if view.chat_id is None:
            return
        status = PaymentStatus(invoice.status or "created")
        shop = self._services.settings.shop_name
        markup = None
        if status in _PAID:
            text = render.receipt_text(t, invoice, shop)
        elif status is PaymentStatus.PARTIAL:
            text = t(
                "payer-partial",
                title=invoice.title,
                received=render.received_text(t, invoice),
                missing=render.missing_text(t, invoice),
            )
            token = invoice.payer_token or ""
            business = view.kind == "business"  # no QR there: it would go to another chat
            status_url = reach.deep_link(self._bot, token) if business else None
            markup = render.payer_keyboard(t, invoice, token=token, status_url=status_url)
        else:
            return
        try:
            await self._bot.send_message(
                view.chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup,
                business_connection_id=view.business_connection_id,
                disable_web_page_preview=True,
            )  # fmt: skip
        except (BadRequest, Forbidden) as exc:
            logger.info("payer notice not delivered (%s)", type(exc).__name__)

    async def _payer_reminders(self) -> None:
        minutes = self._services.settings.payer_reminder_minutes
        if not minutes:
            return
        sharing = self._services.sharing
        for view, invoice in await sharing.payer_reminders_due(dt.timedelta(minutes=minutes)):
            if view.id is not None and await sharing.claim_reminder(view.id):
                await reach.send_reminder(self._bot, self._services, view, invoice)

    async def _merchant_reminders(self) -> None:
        """Each merchant's invoices about to expire unpaid, and partly paid ones, once."""
        minutes = self._services.settings.merchant_reminder_minutes
        if not minutes:
            return
        sharing = self._services.sharing
        due: dict[int, list[InvoiceRow]] = defaultdict(list)
        for invoice in await sharing.merchant_reminders_due(dt.timedelta(minutes=minutes)):
            if invoice.id is not None and await sharing.claim_merchant_reminder(invoice.id):
                due[invoice.merchant_id].append(invoice)
        for merchant_id, invoices in due.items():
            t = self._services.catalog.texts(invoices[0].locale)
            lines = [t("reminders-header"), ""]
            buttons = []
            for invoice in invoices:
                assert invoice.id is not None
                amount = money(invoice.amount, invoice.currency, t.locale)
                if invoice.status == PaymentStatus.PARTIAL.value:
                    missing = render.missing_text(t, invoice)
                    line = t("reminder-partial", id=invoice.id, amount=amount,
                             title=invoice.title, missing=missing)  # fmt: skip
                else:
                    assert invoice.expires_at is not None
                    expires = when(invoice.expires_at, t.locale)
                    line = t("reminder-expiring", id=invoice.id, amount=amount,
                             title=invoice.title, when=expires)  # fmt: skip
                views = await sharing.views_of(invoice.id)
                if any(view.reminded_at is not None for view in views):
                    lines.append(f"{line} · {t('reminder-auto-sent')}")  # nothing left to press
                    continue
                lines.append(line)
                remind = InvoiceButton("remind", invoice.id).build()
                buttons.append([render.button(t("button-remind", id=invoice.id), remind)])
            try:
                await self._bot.send_message(
                    merchant_id, "\n".join(lines), parse_mode=ParseMode.HTML,
                    reply_markup=InlineKeyboardMarkup(buttons[:20]) if buttons else None,
                )  # fmt: skip
            except (BadRequest, Forbidden) as exc:
                logger.info("merchant reminder not delivered (%s)", type(exc).__name__)
