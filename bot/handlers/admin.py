"""/invoices and /invoice: admins see every merchant's invoices, merchants their own."""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode

from bot.handlers import render
from bot.handlers.callback_data import ListPage, parse_callback_data
from bot.handlers.context import BotContext, merchant_scope, texts_for
from bot.handlers.telegram_io import answer, edit

PER_PAGE = 10


async def _page(
    update: Update, context: BotContext, page: int
) -> tuple[str, InlineKeyboardMarkup | None]:
    t = texts_for(update, context)
    rows, total = await context.services.invoices.page(
        page=page, per_page=PER_PAGE, merchant_id=merchant_scope(update, context)
    )
    pages = max(1, -(-total // PER_PAGE))
    admin = merchant_scope(update, context) is None
    text = render.invoice_list(t, rows, page, pages, admin=admin)
    return text, render.list_keyboard(t, page, pages)


async def list_invoices(update: Update, context: BotContext) -> None:
    """Shows the newest invoices with paging buttons."""
    text, markup = await _page(update, context, 0)
    assert update.effective_chat is not None
    await update.effective_chat.send_message(
        text,
        parse_mode=ParseMode.HTML,
        reply_markup=markup,
        disable_web_page_preview=True,
    )


async def list_page(update: Update, context: BotContext) -> None:
    query = update.callback_query
    assert query is not None
    button = parse_callback_data(query.data)
    page = button.page if isinstance(button, ListPage) else 0
    await answer(query)
    text, markup = await _page(update, context, page)
    await edit(query, text, markup)


async def show_invoice(update: Update, context: BotContext) -> None:
    """Shows one invoice with its history: `/invoice 12` or `/invoice <public id>`."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    args = context.args or []
    if len(args) != 1:
        await update.effective_chat.send_message(t("invoice-usage"), parse_mode=ParseMode.HTML)
        return
    services = context.services
    invoice = await services.invoices.find(args[0], merchant_id=merchant_scope(update, context))
    if invoice is None or invoice.id is None:
        await update.effective_chat.send_message(
            t("invoice-not-found", ref=args[0][:40]), parse_mode=ParseMode.HTML
        )
        return
    customer = await services.customers.get(invoice.merchant_id, invoice.customer_id)
    events = await services.invoices.history(invoice.id)
    text = render.invoice_details(t, invoice, customer, events)
    await update.effective_chat.send_message(
        text[:4096],
        parse_mode=ParseMode.HTML,
        reply_markup=render.invoice_card_keyboard(
            t,
            invoice,
            can_refresh=services.payments.can_query(invoice.provider),
            share=services.sharing.inline_enabled,
        ),
        disable_web_page_preview=True,
    )
