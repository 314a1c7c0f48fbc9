"""/customers and /forget: a merchant's payers, masked, and erasing one on request (GDPR).

Merchants see and erase their own customers; admins any merchant's. Erasing asks first and
keeps the opaque reference and the invoice log (the provider may still refer to them).
"""

from __future__ import annotations

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode

from bot.handlers import render
from bot.handlers.callback_data import CustomerButton, parse_callback_data
from bot.handlers.context import BotContext, merchant_scope, texts_for
from bot.handlers.formatting import when
from bot.handlers.telegram_io import answer, edit
from bot.i18n import Html, Texts
from bot.services.customers import CustomerEntry

SHOWN = 50


def _who(t: Texts, entry: CustomerEntry) -> Html:
    return render.masked_sender(t, entry.sender) if entry.sender else t("customer-erased")


def _line(t: Texts, entry: CustomerEntry, *, admin: bool) -> str:
    return t(
        "customers-line-admin" if admin else "customers-line",
        id=entry.id,
        who=_who(t, entry),
        invoices=entry.invoices,
        last=when(entry.last_used_at, t.locale),
        merchant=entry.merchant_id,
    )


async def list_customers(update: Update, context: BotContext) -> None:
    """The newest customers, masked (the list may be read over a shoulder or in a group)."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    scope = merchant_scope(update, context)
    entries, total = await context.services.customers.entries(scope, limit=SHOWN)
    text: str
    if not entries:
        text = t("customers-empty")
    else:
        lines = [t("customers-header", shown=len(entries), total=total), ""]
        lines += [_line(t, entry, admin=scope is None) for entry in entries]
        lines += ["", t("customers-hint")]
        text = "\n".join(lines)
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)


async def forget_command(update: Update, context: BotContext) -> None:
    """`/forget 12`: ask before erasing customer 12's sender data and email."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    args = context.args or []
    number = args[0].removeprefix("#") if len(args) == 1 else ""
    if not number.isdigit() or not 0 < int(number) < 10**12:
        await update.effective_chat.send_message(t("forget-usage"), parse_mode=ParseMode.HTML)
        return
    entry = await context.services.customers.entry(int(number), merchant_scope(update, context))
    text: str
    if entry is None:
        text, markup = t("customer-not-found", id=int(number)), None
    elif entry.erased_at is not None:
        text, markup = t("forget-already", id=entry.id, when=when(entry.erased_at, t.locale)), None
    else:
        text = t("forget-confirm", id=entry.id, who=_who(t, entry), invoices=entry.invoices)
        markup = InlineKeyboardMarkup(
            [
                [
                    render.button(t("button-forget"), CustomerButton("forget", entry.id).build()),
                    render.button(t("button-keep-data"), CustomerButton("keep", entry.id).build()),
                ]
            ]
        )
    await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML, reply_markup=markup)


async def forget_button(update: Update, context: BotContext) -> None:
    """The answer to the confirmation: erase (checking who asks again) or keep."""
    query = update.callback_query
    assert query is not None
    t = texts_for(update, context)
    button = parse_callback_data(query.data)
    if not isinstance(button, CustomerButton):
        await answer(query, t("stale-button"))
        return
    await answer(query)
    if button.action == "keep":
        await edit(query, t("forget-kept", id=button.customer_id))
        return
    customers = context.services.customers
    scope = merchant_scope(update, context)
    entry = await customers.entry(button.customer_id, scope)
    if entry is None:
        await edit(query, t("customer-not-found", id=button.customer_id))
    elif await customers.erase(button.customer_id, scope):
        await edit(query, t("forget-done", id=button.customer_id))
    else:  # erased meanwhile (another tap, another admin, the retention job)
        erased_at = entry.erased_at or (await customers.entry(entry.id, scope) or entry).erased_at
        moment = when(erased_at, t.locale) if erased_at else "—"
        await edit(query, t("forget-already", id=button.customer_id, when=moment))
