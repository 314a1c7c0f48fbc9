"""The invoice conversation in Telegram: a thin adapter over `ConversationService`.

No flow lives here: each update is read, handed to the service (which walks the step table
and keeps where the conversation stands in the draft row), and its answer is rendered. A
typed answer costs one message; a button press one edit of the pressed message and one
answer; the invoice itself one edit and the message to forward.
"""

from __future__ import annotations

import datetime as dt
import logging

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode

from bot.handlers import render
from bot.handlers.callback_data import DraftButton, InvoiceButton, parse_callback_data
from bot.handlers.context import BotContext, texts_for
from bot.handlers.lifecycle import present_invoice
from bot.handlers.telegram_io import answer, edit
from bot.i18n import Texts
from bot.services.conversation import Closed, Prompt, Stale
from bot.services.inputs import InputError
from bot.services.invoices import SubmitError

logger = logging.getLogger(__name__)


def _ids(update: Update) -> tuple[int, int]:
    assert update.effective_user is not None and update.effective_chat is not None
    return update.effective_user.id, update.effective_chat.id


async def _send(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    assert update.effective_chat is not None
    await update.effective_chat.send_message(
        text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True
    )


async def _show(update: Update, t: Texts, prompt: Prompt, echo: str | None = None) -> None:
    """One message for a typed answer; an edit of the pressed message for a button."""
    text, markup = render.prompt_text(t, prompt, echo), render.prompt_keyboard(t, prompt)
    if update.callback_query is not None:
        await edit(update.callback_query, text, markup)
    else:
        await _send(update, text, markup)


def closed_text(t: Texts, closed: Closed | None, key: str) -> str:
    """ "Nothing was created" only when that is known: an attempt of unknown outcome is
    settled in the background and the merchant is told then."""
    if closed is None:
        return t("no-draft")
    return t(f"{key}-settling" if closed.settling else key)


async def start_new(update: Update, context: BotContext) -> None:
    """`/new`, `/new 150 EUR Consulting`, or a New invoice button: a fresh draft."""
    merchant_id, chat_id = _ids(update)
    t = texts_for(update, context)
    line = " ".join(context.args or []) if update.message is not None else ""
    customer_id: int | None = None
    query = update.callback_query
    if query is not None:
        await answer(query)
        button = parse_callback_data(query.data)
        if isinstance(button, InvoiceButton):  # "New invoice for this customer" on a card
            invoice = await context.services.invoices.get(button.invoice_id)
            if invoice is not None and invoice.merchant_id == merchant_id:
                customer_id, line = invoice.customer_id, invoice.currency
    prompt = await context.services.conversation.start(
        merchant_id, chat_id, t.locale, line, customer_id
    )
    text, markup = render.prompt_text(t, prompt), render.prompt_keyboard(t, prompt)
    await _send(update, text, markup)


async def start_from_inline(update: Update, context: BotContext) -> None:
    """`/start add` from the inline picker's "new payer" button: a draft with what the
    merchant typed there, to add the payer; the card's Share button goes back to the chat."""
    merchant_id, chat_id = _ids(update)
    t = texts_for(update, context)
    lines = context.bot_data.get("inline_line", {})
    line = str(lines.get(merchant_id, "")) if isinstance(lines, dict) else ""
    prompt = await context.services.conversation.start(merchant_id, chat_id, t.locale, line)
    await _send(update, render.prompt_text(t, prompt), render.prompt_keyboard(t, prompt))


async def on_text(update: Update, context: BotContext) -> None:
    """A typed answer to the draft's current question."""
    merchant_id, chat_id = _ids(update)
    t = texts_for(update, context)
    assert update.message is not None and update.message.text is not None
    prompt = await context.services.conversation.answer(
        merchant_id, chat_id, update.message.text, t.locale, update.update_id
    )
    if prompt is None:
        await _send(update, t("no-draft"))
        return
    await _show(update, t, prompt)


async def on_other_message(update: Update, context: BotContext) -> None:
    """A sticker, photo or the like: the current question again, or how to start."""
    merchant_id, chat_id = _ids(update)
    t = texts_for(update, context)
    conversation = context.services.conversation
    draft = await conversation.current(merchant_id, chat_id)
    if draft is None:
        await _send(update, t("no-draft"))
        return
    await _show(update, t, await conversation.show(draft, t.locale, InputError("not-understood")))


async def on_button(update: Update, context: BotContext) -> None:
    """A choice, Edit, a field to edit, Back or Cancel on a draft's message."""
    query = update.callback_query
    assert query is not None
    t = texts_for(update, context)
    button = parse_callback_data(query.data)
    if not isinstance(button, DraftButton):
        await answer(query, t("stale-button"))
        return
    merchant_id, chat_id = _ids(update)
    conversation = context.services.conversation
    if button.action == "cancel":
        draft = await conversation.current(merchant_id, chat_id)
        if draft is None or draft.id != button.draft_id:
            await answer(query, t("stale-button"))
            return
        await answer(query)
        await edit(
            query, closed_text(t, await conversation.cancel(merchant_id, chat_id), "cancelled")
        )
        return
    result = await conversation.press(
        merchant_id, chat_id, button.draft_id, button.action, button.arg, t.locale,
        update.update_id,
    )  # fmt: skip
    if isinstance(result, Stale):
        await answer(query, t("stale-button"))
        return
    await answer(query)
    await _show(update, t, result, echo=_pressed_label(update, query.data or ""))


def _pressed_label(update: Update, data: str) -> str | None:
    """The text of the pressed choice, to keep on the message as the merchant's answer."""
    query = update.callback_query
    message = query.message if query is not None else None
    markup = getattr(message, "reply_markup", None)
    if markup is None or data.split("|")[1] in {"edit", "ed"}:
        return None
    for row in markup.inline_keyboard:
        for key in row:
            if key.callback_data == data:
                return str(key.text)
    return None


async def cancel(update: Update, context: BotContext) -> None:
    """/cancel: closes the open draft."""
    merchant_id, chat_id = _ids(update)
    t = texts_for(update, context)
    closed = await context.services.conversation.cancel(merchant_id, chat_id)
    await _send(update, closed_text(t, closed, "cancelled"))


async def confirm(update: Update, context: BotContext) -> None:
    """Creates the invoice once and turns the preview into the invoice card.

    A Confirm pressed again on an old card shows the invoice that press already created;
    one of another draft never touches the draft being composed now.
    """
    query = update.callback_query
    assert query is not None and update.effective_user is not None
    button = parse_callback_data(query.data)
    services = context.services
    t = texts_for(update, context)
    if not isinstance(button, DraftButton) or button.action != "confirm":
        await answer(query, t("stale-button"))
        return
    if not await services.invoices.owns(button.draft_id, update.effective_user.id):
        await answer(query, t("stale-button"))
        return
    await answer(query, t("progress-creating"))
    message_id = query.message.message_id if query.message is not None else None
    try:
        submission = await services.invoices.submit(
            button.draft_id, update.effective_user.id, button.arg or None, message_id
        )
    except SubmitError as exc:
        await _refused(update, context, t, button.draft_id, exc)
        return
    await present_invoice(
        context.bot, services, t, submission.invoice, submission.customer,
        message_id=message_id, forwardable=not submission.repeated,
    )  # fmt: skip


async def _refused(
    update: Update, context: BotContext, t: Texts, draft_id: str, exc: SubmitError
) -> None:
    query = update.callback_query
    assert query is not None
    message = t(exc.key, **exc.params)
    if exc.key == "error-draft-changed":
        await edit(query, message)  # the newer preview below stays the one to confirm
        return
    services = context.services
    merchant_id, chat_id = _ids(update)
    draft = await services.conversation.current(merchant_id, chat_id)
    if exc.retry and draft is not None and draft.id == draft_id:
        customer = await services.customers.get(draft.merchant_id, draft.customer_id)
        flagged = exc.key == "error-submit-flagged"
        await edit(
            query,
            render.preview_text(t, draft, customer, note=f"⚠️ {message}"),
            None if flagged else render.preview_keyboard(t, draft, retry=True),
        )
        return
    await edit(query, message)


async def expire_idle(context: BotContext) -> None:
    """Job: close drafts left idle longer than CONVERSATION_TIMEOUT_SECONDS, and say so;
    scrub personal data left in closed drafts."""
    services = context.services
    idle = dt.timedelta(seconds=services.settings.conversation_timeout_seconds)
    await services.drafts.sweep_closed()  # personal data a closed draft may still hold
    for closed in await services.conversation.expire_idle(idle):
        t = services.catalog.texts(closed.draft.extra.get("locale"))
        try:
            await context.bot.send_message(
                closed.draft.chat_id, closed_text(t, closed, "timed-out"), parse_mode=ParseMode.HTML
            )
        except Exception:  # the chat may be gone; the draft is closed either way
            logger.warning("could not tell a merchant their draft timed out")
