"""Putting the invoice in front of the customer: the payer's deep link, QR codes, inline mode
and Telegram Business. Telegram only here; the rules live in bot/services/sharing.py."""

from __future__ import annotations

import contextlib
import io
import logging
import time
from collections import deque

import segno
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, TelegramError

from bot.domain import PaymentStatus
from bot.handlers import render
from bot.handlers.callback_data import BusinessSend, PayerButton, parse_callback_data
from bot.handlers.context import BotContext, BotServices, role_of, texts_for
from bot.handlers.formatting import money, when
from bot.handlers.telegram_io import answer, edit
from bot.i18n import Texts
from bot.services.access import Role
from bot.services.conversation import customer_label
from bot.services.invoices import SubmitError
from bot.services.sharing import InlineOrder
from storage.models import InvoiceRow, InvoiceViewRow

logger = logging.getLogger(__name__)

START_ADD_CUSTOMER = "add"  # /start add: the inline picker's "new payer" button
START_INLINE_HELP = "inline"


class PayerLimiter:
    """At most `limit` payer requests a minute per user: tokens cannot be guessed by brute
    force, and nobody floods the bot through it. Kept per process."""

    def __init__(self, limit: int = 6, window: float = 60.0) -> None:
        self._limit, self._window = limit, window
        self._hits: dict[int, deque[float]] = {}

    def allow(self, user_id: int) -> bool:
        now = time.monotonic()
        hits = self._hits.setdefault(user_id, deque())
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        if len(self._hits) > 10_000:  # forget idle payers so memory stays flat
            for key in [k for k, v in self._hits.items() if not v and k != user_id]:
                del self._hits[key]
        if len(hits) >= self._limit:
            return False
        hits.append(now)
        return True


def qr_png(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()


def deep_link(bot: Bot, token: str) -> str:
    return f"https://t.me/{bot.username}?start={token}"


def _limiter(context: BotContext) -> PayerLimiter:
    limiter = context.bot_data.setdefault("payer_limiter", PayerLimiter())
    assert isinstance(limiter, PayerLimiter)
    return limiter


async def payer_start(update: Update, context: BotContext, token: str) -> None:
    """`/start <token>`: the payer's own card, live, in their language. Anyone may ask;
    a wrong token reads like an expired invoice."""
    message, user = update.effective_message, update.effective_user
    assert message is not None and user is not None
    t = texts_for(update, context)
    if not _limiter(context).allow(user.id):
        await message.reply_text(t("payer-slow-down"))
        return
    services = context.services
    invoice = await services.sharing.for_payer(token)
    if invoice is None or invoice.id is None:
        await message.reply_text(t("payer-not-found"))
        return
    shop = services.settings.shop_name
    sent = await message.reply_text(
        render.payer_card(t, invoice, shop),
        parse_mode=ParseMode.HTML,
        reply_markup=render.payer_keyboard(t, invoice, token=token),
        disable_web_page_preview=True,
    )
    view = await services.sharing.add_view(
        InvoiceViewRow(
            invoice_id=invoice.id, kind="payer", chat_id=sent.chat_id, message_id=sent.message_id,
            locale=t.locale, shown_status=invoice.status, told_status=invoice.status,
        )
    )  # fmt: skip
    if view.message_id != sent.message_id and view.id is not None:  # opened again
        if view.chat_id is not None and view.message_id is not None:
            with contextlib.suppress(BadRequest, Forbidden):  # the older card stops offering
                await context.bot.edit_message_reply_markup(view.chat_id, view.message_id, None)
        await services.sharing.mark_view(
            view.id, message_id=sent.message_id, shown_status=invoice.status
        )


async def payer_button(update: Update, context: BotContext) -> None:
    """The payer's QR code: the pay link for a phone or another device."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    t = texts_for(update, context)
    button = parse_callback_data(query.data)
    if not isinstance(button, PayerButton) or not _limiter(context).allow(user.id):
        await answer(query, t("payer-slow-down"))
        return
    invoice = await context.services.sharing.for_payer(button.token)
    final = invoice is not None and PaymentStatus(invoice.status or "created").final
    if invoice is None or not invoice.pay_url or final:
        await answer(query, t("payer-not-found"))
        return
    await answer(query)
    try:
        await send_qr(context.bot, t, invoice, query.message.chat.id if query.message else user.id)
    except Forbidden:  # pressed where the bot may not write (the payer never started it)
        logger.info("payer QR code not delivered (Forbidden)")


async def send_qr(bot: Bot, t: Texts, invoice: InvoiceRow, chat_id: int) -> None:
    assert invoice.pay_url is not None
    caption = t(
        "qr-caption", amount=money(invoice.amount, invoice.currency, t.locale), title=invoice.title
    )
    await bot.send_photo(
        chat_id, qr_png(invoice.pay_url), caption=caption, parse_mode=ParseMode.HTML
    )


async def card_qr(update: Update, context: BotContext, invoice: InvoiceRow) -> None:
    """The merchant's QR button: the same picture, for a customer at the counter."""
    query = update.callback_query
    assert query is not None and update.effective_chat is not None
    t = texts_for(update, context)
    if not invoice.pay_url:
        await answer(query, t("stale-button"))
        return
    await answer(query)
    await send_qr(context.bot, t, invoice, update.effective_chat.id)


# -- inline mode -------------------------------------------------------------------------------


async def inline_query(update: Update, context: BotContext) -> None:
    """`@bot 150 EUR Consulting` offers the merchant's recent customers; `@bot #7` shares
    invoice 7. Only merchants get results (the gate answers anyone else with none)."""
    query, user = update.inline_query, update.effective_user
    assert query is not None and user is not None
    t = texts_for(update, context)
    services = context.services
    admin = role_of(update, context) is Role.ADMIN
    order = await services.sharing.read_inline(user.id, query.query, admin=admin)
    results: list[InlineQueryResultArticle] = []
    button: InlineQueryResultsButton | None = None
    if order.share is not None:
        results.append(await _share_result(context, t, order.share))
    elif order.complete:
        assert order.amount is not None and order.currency and order.title
        amount = money(order.amount, order.currency, t.locale)
        content = InputTextMessageContent(
            t("inline-creating", title=order.title, amount=amount), parse_mode=ParseMode.HTML
        )
        # A keyboard on the posted message makes Telegram send its inline_message_id.
        waiting = InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        t("button-open-bot"), url=f"https://t.me/{context.bot.username}"
                    )
                ]
            ]
        )
        if services.sharing.sender_data:
            context.bot_data.setdefault("inline_line", {})[user.id] = query.query
            for customer in await services.sharing.recent_customers(user.id):
                results.append(
                    InlineQueryResultArticle(
                        id=f"c{customer.id}",
                        title=t(
                            "inline-new-title",
                            amount=amount,
                            title=order.title,
                            customer=customer_label(customer),
                        ),
                        description=t("inline-new-description"),
                        input_message_content=content,
                        reply_markup=waiting,
                    )
                )
            button = InlineQueryResultsButton(
                t("inline-add-customer"), start_parameter=START_ADD_CUSTOMER
            )
        else:
            results.append(
                InlineQueryResultArticle(
                    id="x",
                    title=t("inline-new-plain", amount=amount, title=order.title),
                    description=t("inline-new-description"),
                    input_message_content=content,
                    reply_markup=waiting,
                )
            )
    else:
        button = InlineQueryResultsButton(t("inline-how-to"), start_parameter=START_INLINE_HELP)
    await query.answer(results, cache_time=0, is_personal=True, button=button)


async def _share_result(
    context: BotContext, t: Texts, invoice: InvoiceRow
) -> InlineQueryResultArticle:
    services = context.services
    token = await services.sharing.token_of(invoice)
    return InlineQueryResultArticle(
        id=f"s{invoice.id}",
        title=t("inline-share-title", id=invoice.id),
        description=t(
            "inline-share-description",
            amount=money(invoice.amount, invoice.currency, t.locale),
            title=invoice.title,
            status=render.status_text(t, invoice),
        ),
        input_message_content=InputTextMessageContent(
            render.payer_card(t, invoice, services.settings.shop_name),
            parse_mode=ParseMode.HTML,
            link_preview_options=None,
        ),
        reply_markup=render.payer_keyboard(
            t, invoice, token=token, status_url=deep_link(context.bot, token)
        ),
    )


async def inline_chosen(update: Update, context: BotContext) -> None:
    """The merchant tapped a result: the card is in the chat; create the invoice once and
    edit the card with the pay link, or record a shared one so it stays live."""
    chosen, user = update.chosen_inline_result, update.effective_user
    assert chosen is not None and user is not None
    inline_id = chosen.inline_message_id
    if inline_id is None:
        logger.warning("a chosen inline result without inline_message_id (no keyboard?)")
        return
    t = texts_for(update, context)
    services = context.services
    admin = role_of(update, context) is Role.ADMIN
    order = await services.sharing.read_inline(user.id, chosen.query, admin=admin)
    if chosen.result_id.startswith("s"):
        invoice = order.share
    else:
        customer_id = int(chosen.result_id[1:]) if chosen.result_id.startswith("c") else None
        invoice = await _create_inline(context, t, user.id, order, customer_id, inline_id)
    if invoice is None or invoice.id is None:
        return
    await services.sharing.add_view(
        InvoiceViewRow(
            invoice_id=invoice.id, kind="inline", inline_message_id=inline_id, locale=t.locale
        )
    )
    services.payments.on_change()  # the view keeper draws the card with the pay link


async def _create_inline(
    context: BotContext,
    t: Texts,
    merchant_id: int,
    order: InlineOrder,
    customer_id: int | None,
    inline_id: str,
) -> InvoiceRow | None:
    try:
        submission = await context.services.sharing.create_inline(
            merchant_id, order, customer_id, inline_id, t.locale
        )
    except SubmitError as exc:
        logger.info("inline invoice not created (%s)", exc.key)
        attempt = await context.services.sharing.inline_attempt(inline_id)
        if attempt is not None:  # the answer was lost: the card waits for the settle
            await _edit_inline(context.bot, inline_id, t("inline-checking"), None)
            return attempt
        await _edit_inline(context.bot, inline_id, t("inline-failed"), None)
        return None
    return submission.invoice


async def _edit_inline(
    bot: Bot, inline_id: str, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    try:
        await bot.edit_message_text(
            text, inline_message_id=inline_id, parse_mode=ParseMode.HTML, reply_markup=markup,
            disable_web_page_preview=True,
        )  # fmt: skip
    except BadRequest as exc:
        if "not modified" not in exc.message.lower():
            raise


# -- Telegram Business -------------------------------------------------------------------------


async def business_connection(update: Update, context: BotContext) -> None:
    """A merchant connected (or changed, or removed) the bot in Telegram Business."""
    connection = update.business_connection
    assert connection is not None
    services = context.services
    owner = connection.user
    if services.access.role(owner.id) is None:
        logger.info("a Business connection from someone who is not a merchant: ignored")
        return
    can_reply = bool(connection.rights and connection.rights.can_reply)
    await services.sharing.save_connection(
        connection.id, owner.id, can_reply=can_reply, enabled=connection.is_enabled
    )
    t = services.catalog.texts(owner.language_code)
    key = (
        "business-disconnected"
        if not connection.is_enabled
        else "business-connected"
        if can_reply
        else "business-connected-readonly"
    )
    try:
        await context.bot.send_message(connection.user_chat_id, t(key))
    except (BadRequest, Forbidden):
        logger.info("could not tell the merchant about the Business connection")


async def business_message(update: Update, context: BotContext) -> None:
    """A message in a merchant's Business chat: a customer's keeps that chat open for
    posting for 24 hours. The bot never answers there on its own."""
    message = update.business_message
    if message is None or message.business_connection_id is None or message.from_user is None:
        return
    services = context.services
    connection = await services.sharing.connection(message.business_connection_id)
    if connection is None or message.from_user.id == connection.merchant_id:
        return
    await services.sharing.customer_wrote(
        connection.id,
        message.chat.id,
        message.from_user.first_name or "?",
        message.from_user.language_code,
    )


async def card_business(update: Update, context: BotContext, invoice: InvoiceRow) -> None:
    """The card's "Send in a Business chat": the chats the bot may post in now."""
    query = update.callback_query
    assert query is not None and invoice.id is not None
    t = texts_for(update, context)
    await answer(query)
    chats = await context.services.sharing.business_chats(invoice.merchant_id)
    assert update.effective_chat is not None
    if not chats:
        await update.effective_chat.send_message(t("business-no-chats"))
        return
    rows = [
        [render.button(chat.name, BusinessSend(invoice.id, chat.chat_id).build())] for chat in chats
    ]
    await update.effective_chat.send_message(
        t("business-pick-chat", id=invoice.id), reply_markup=InlineKeyboardMarkup(rows)
    )


async def business_send(update: Update, context: BotContext) -> None:
    """Post the payer's card in the chosen Business chat, as the merchant; kept live."""
    query, user = update.callback_query, update.effective_user
    assert query is not None and user is not None
    t = texts_for(update, context)
    button = parse_callback_data(query.data)
    services = context.services
    invoice = (
        await services.invoices.get(button.invoice_id) if isinstance(button, BusinessSend) else None
    )
    if not isinstance(button, BusinessSend) or invoice is None or invoice.merchant_id != user.id:
        await answer(query, t("stale-button"))
        return
    chat = await services.sharing.business_chat(user.id, button.chat_id)
    if chat is None or invoice.id is None:
        await answer(query)
        await edit(query, t("business-no-chats"))
        return
    await answer(query)
    if await services.sharing.find_view(invoice.id, "business", chat.chat_id) is not None:
        await edit(query, t("business-sent", id=invoice.id, name=chat.name))  # a second tap
        return
    token = await services.sharing.token_of(invoice)
    customer_t = services.catalog.texts(chat.language or t.locale)
    try:
        sent = await context.bot.send_message(
            chat.chat_id,
            render.payer_card(customer_t, invoice, services.settings.shop_name),
            parse_mode=ParseMode.HTML,
            reply_markup=render.payer_keyboard(
                customer_t, invoice, token=token, status_url=deep_link(context.bot, token)
            ),
            business_connection_id=chat.connection_id,
            disable_web_page_preview=True,
        )
    except BadRequest as exc:
        await edit(query, t("business-refused", reason=exc.message))
        return
    await services.sharing.add_view(
        InvoiceViewRow(
            invoice_id=invoice.id, kind="business", chat_id=chat.chat_id,
            message_id=sent.message_id, business_connection_id=chat.connection_id,
            locale=customer_t.locale, shown_status=invoice.status, told_status=invoice.status,
        )
    )  # fmt: skip
    await edit(query, t("business-sent", id=invoice.id, name=chat.name))


async def remind_customer(update: Update, context: BotContext, invoice: InvoiceRow) -> None:
    """The merchant's "Remind the customer": through every channel the invoice went, once."""
    query = update.callback_query
    assert query is not None and invoice.id is not None and update.effective_chat is not None
    t = texts_for(update, context)
    await answer(query)
    services = context.services
    status = render.status_text(t, invoice)
    if invoice.status not in {"created", "pending", "partial"}:
        await update.effective_chat.send_message(
            t("remind-not-needed", id=invoice.id, status=status)
        )
        return
    channels: list[str] = []
    already = False
    text: str
    for view in await services.sharing.views_of(invoice.id):
        if view.id is None:
            continue
        if not await services.sharing.claim_reminder(view.id):
            already = True
            continue
        if await send_reminder(context.bot, services, view, invoice):
            channels.append(t(f"channel-{view.kind}"))
    if channels:
        text = t("remind-sent", id=invoice.id, channels=", ".join(dict.fromkeys(channels)))
    elif already:
        text = t("remind-already", id=invoice.id)
    else:
        await update.effective_chat.send_message(t("remind-no-channel", id=invoice.id))
        token = await services.sharing.token_of(invoice)
        text = render.forward_text(
            t, invoice, services.settings.shop_name, deep_link(context.bot, token)
        )
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML,
                                             disable_web_page_preview=True)  # fmt: skip


async def send_reminder(
    bot: Bot, services: BotServices, view: InvoiceViewRow, invoice: InvoiceRow
) -> bool:
    """One reminder through a view's channel: a message to the payer (their chat with the
    bot, or the Business chat), or a line on the inline card. False if Telegram refused."""
    t = services.catalog.texts(view.locale)
    shop = services.settings.shop_name
    token = invoice.payer_token or ""
    try:
        if view.kind == "inline" and view.inline_message_id:
            await _edit_inline(
                bot,
                view.inline_message_id,
                render.payer_card(t, invoice, shop, reminder=True),
                render.payer_keyboard(t, invoice, token=token, status_url=deep_link(bot, token)),
            )
            return True
        if view.chat_id is None:
            return False
        amount = money(invoice.amount, invoice.currency, t.locale)
        text = (
            t("payer-reminder", title=invoice.title, amount=amount,
              when=when(invoice.expires_at, t.locale))
            if invoice.expires_at is not None
            else t("payer-reminder-open", title=invoice.title, amount=amount)
        )  # fmt: skip
        await bot.send_message(
            view.chat_id,
            text,
            parse_mode=ParseMode.HTML,
            reply_markup=render.payer_keyboard(
                t,
                invoice,
                token=token,
                status_url=deep_link(bot, token) if view.kind == "business" else None,
            ),
            business_connection_id=view.business_connection_id,
            disable_web_page_preview=True,
        )
        return True
    except (BadRequest, Forbidden) as exc:
        logger.info("reminder not delivered (%s)", type(exc).__name__)
        return False
    except TelegramError:
        raise
