"""The guided conversation: amount → currency → title → customer → preview → invoice.

Every answer is saved to the draft before the next question, so a restart resumes where the
merchant was. Buttons carry the draft id and a stale one is refused, never acted upon.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from telegram import InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import (
    BaseHandler,
    CallbackQueryHandler,
    CommandHandler,
    ConversationHandler,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.warnings import PTBUserWarning

from bot.domain import Draft, EmailRule, SenderType
from bot.handlers import render
from bot.handlers.callback_data import DraftButton, NewInvoice, matcher, parse_callback_data
from bot.handlers.context import BotContext, texts_for
from bot.handlers.lifecycle import present_invoice
from bot.handlers.telegram_io import answer, edit
from bot.i18n import Texts
from bot.services.inputs import (
    InputError,
    check_amount_precision,
    parse_amount,
    parse_country,
    parse_currency_code,
    parse_date_of_birth,
    parse_email,
    parse_legal_name,
    parse_name,
    parse_title,
)
from bot.services.invoices import SubmitError

logger = logging.getLogger(__name__)

(
    AMOUNT,
    CURRENCY,
    TITLE,
    CUSTOMER,
    SENDER_TYPE,
    FIRST_NAME,
    LAST_NAME,
    BIRTH_DATE,
    LEGAL_NAME,
    COUNTRY,
    EMAIL,
    PREVIEW,
) = range(12)
END = ConversationHandler.END
STEP_NAMES = {
    AMOUNT: "amount", CURRENCY: "currency", TITLE: "title", CUSTOMER: "customer",
    SENDER_TYPE: "sender_type", FIRST_NAME: "first_name", LAST_NAME: "last_name",
    BIRTH_DATE: "birth_date", LEGAL_NAME: "legal_name", COUNTRY: "country", EMAIL: "email",
    PREVIEW: "preview",
}  # fmt: skip
STEPS_BY_NAME = {name: state for state, name in STEP_NAMES.items()}
TEXT_INPUT = filters.UpdateType.MESSAGE & filters.TEXT & ~filters.COMMAND
T = TypeVar("T")


# --- helpers -----------------------------------------------------------------------------


def _ids(update: Update) -> tuple[int, int]:
    assert update.effective_user is not None and update.effective_chat is not None
    return update.effective_user.id, update.effective_chat.id


async def _draft(update: Update, context: BotContext) -> Draft | None:
    merchant_id, chat_id = _ids(update)
    return await context.services.drafts.current(merchant_id, chat_id)


async def _send(update: Update, text: str, markup: InlineKeyboardMarkup | None = None) -> None:
    assert update.effective_chat is not None
    await update.effective_chat.send_message(
        text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True
    )


async def ask(
    update: Update, context: BotContext, draft: Draft, state: int, error: str | None = None
) -> int:
    """Send the question for `state` (after an error line, if any) and remember the step."""
    services = context.services
    t = texts_for(update, context)
    draft.extra["step"] = STEP_NAMES[state]
    await services.drafts.save(draft)
    prefix = f"{error}\n\n" if error else ""
    markup: InlineKeyboardMarkup | None = None
    if state == AMOUNT:
        text = t("ask-amount")
    elif state == CURRENCY:
        text = t("ask-currency")
        markup = render.currency_keyboard(t, draft, await services.currencies.common())
    elif state == TITLE:
        text = t("ask-title")
    elif state == CUSTOMER:
        text = t("ask-customer")
        recent = await services.customers.recent(draft.merchant_id)
        markup = render.customer_keyboard(t, draft, recent)
    elif state == SENDER_TYPE:
        text = t("ask-sender-type")
        markup = render.sender_type_keyboard(t, draft)
    elif state == FIRST_NAME:
        text = t("ask-first-name")
    elif state == LAST_NAME:
        text = t("ask-last-name")
    elif state == BIRTH_DATE:
        text = t("ask-birth-date")
    elif state == LEGAL_NAME:
        text = t("ask-legal-name")
    elif state == COUNTRY:
        text = t("ask-country")
    elif state == EMAIL:
        text = t("ask-email")
    else:
        return await show_preview(update, context, draft, error=error)
    await _send(update, prefix + text, markup)
    return state


async def show_preview(
    update: Update, context: BotContext, draft: Draft, error: str | None = None
) -> int:
    services = context.services
    t = texts_for(update, context)
    draft.editing = False
    draft.extra["step"] = STEP_NAMES[PREVIEW]
    draft.extra["rev"] = str(int(draft.extra.get("rev", "0")) + 1)
    await services.drafts.save(draft)
    customer = await services.customers.get(draft.merchant_id, draft.customer_id)
    await _send(
        update,
        render.preview_text(t, draft, customer, note=error),
        render.preview_keyboard(t, draft),
    )
    return PREVIEW


async def next_after_title(update: Update, context: BotContext, draft: Draft) -> int:
    if not context.services.requirements.sender_data:
        return await show_preview(update, context, draft)
    recent = await context.services.customers.recent(draft.merchant_id, limit=1)
    return await ask(update, context, draft, CUSTOMER if recent else SENDER_TYPE)


async def next_after_sender(update: Update, context: BotContext, draft: Draft) -> int:
    """Ask for the email only where the provider needs it and we do not have it yet."""
    rule = context.services.requirements.email
    if rule is EmailRule.REQUIRED and not draft.email:
        customer = await context.services.customers.get(draft.merchant_id, draft.customer_id)
        if not (customer and customer.email):
            return await ask(update, context, draft, EMAIL)
    return await show_preview(update, context, draft)


def error_text(t: Texts, exc: InputError) -> str:
    return t(exc.key, **exc.params)


# --- entry, exit ---------------------------------------------------------------------------


async def start_new(update: Update, context: BotContext) -> int:
    """Opens a fresh draft (closing any open one) and asks for the amount."""
    if update.callback_query:
        await answer(update.callback_query)
    merchant_id, chat_id = _ids(update)
    services = context.services
    previous = await _draft(update, context)
    draft = await services.drafts.start(merchant_id, chat_id)
    t = texts_for(update, context)
    draft.extra["locale"] = t.locale
    intro = t("new-intro")
    if previous is not None and await services.invoices.abandoned(previous.id):
        intro = t("previous-attempt-settling") + "\n\n" + intro
    await _send(update, intro)
    return await ask(update, context, draft, AMOUNT)


async def _closed_text(context: BotContext, t: Texts, draft_id: str | None, key: str) -> str:
    """ "Nothing was created" only when that is known: an attempt of unknown outcome is
    settled in the background and the merchant is told then."""
    if draft_id is not None and await context.services.invoices.abandoned(draft_id):
        return t(f"{key}-settling")
    return t(key)


async def cancel(update: Update, context: BotContext) -> int:
    """Drops the draft; an attempt of unknown outcome is settled in the background."""
    merchant_id, chat_id = _ids(update)
    draft = await _draft(update, context)
    await context.services.drafts.cancel(merchant_id, chat_id)
    t = texts_for(update, context)
    text = await _closed_text(context, t, draft.id if draft else None, "cancelled")
    if update.callback_query:
        await answer(update.callback_query)
        await edit(update.callback_query, text)
    else:
        await _send(update, text)
    return END


async def timed_out(update: Update, context: BotContext) -> int:
    """Closes a draft left idle for longer than CONVERSATION_TIMEOUT_SECONDS."""
    if update.effective_user is None or update.effective_chat is None:
        return END
    merchant_id, chat_id = _ids(update)
    draft = await _draft(update, context)
    if await context.services.drafts.cancel(merchant_id, chat_id):
        t = texts_for(update, context)
        await _send(
            update, await _closed_text(context, t, draft.id if draft else None, "timed-out")
        )
    return END


async def unexpected(update: Update, context: BotContext) -> int | None:
    """Answers input that does not fit the current step and asks that step again."""
    draft = await _draft(update, context)
    t = texts_for(update, context)
    if update.callback_query:
        await answer(update.callback_query, t("stale-button"))
        if draft is None:
            return END
        # Re-ask the step the draft records: this also resyncs after a crash left the
        # conversation state a step behind the draft.
        return await ask(
            update, context, draft, STEPS_BY_NAME.get(draft.extra.get("step", ""), AMOUNT)
        )
    if draft is None:
        await _send(update, t("no-draft"))
        return END
    state = STEPS_BY_NAME.get(draft.extra.get("step", ""), AMOUNT)
    hint = (
        t("use-buttons")
        if state in (CURRENCY, CUSTOMER, SENDER_TYPE, PREVIEW)
        else t("not-understood")
    )
    if state == CURRENCY:
        hint = t("currency-hint")  # free text is accepted for currencies
    return await ask(update, context, draft, state, error=hint)


# --- text answers --------------------------------------------------------------------------


async def _text_step(update: Update, context: BotContext) -> tuple[Draft, str] | None:
    draft = await _draft(update, context)
    if draft is None or update.message is None or update.message.text is None:
        await _send(update, texts_for(update, context)("no-draft"))
        return None
    return draft, update.message.text


async def _parsed(
    update: Update, context: BotContext, state: int, parse: Callable[[str], T]
) -> tuple[Draft, T] | int:
    """The draft and the parsed answer, or the state to stay in (the question was re-asked)."""
    got = await _text_step(update, context)
    if got is None:
        return END
    draft, text = got
    try:
        return draft, parse(text)
    except InputError as exc:
        t = texts_for(update, context)
        return await ask(update, context, draft, state, error=error_text(t, exc))


async def on_amount(update: Update, context: BotContext) -> int:
    """Stores the amount and asks for the currency."""
    got = await _text_step(update, context)
    if got is None:
        return END
    draft, text = got
    t = texts_for(update, context)
    try:
        amount = parse_amount(text, max_amount=context.services.settings.max_invoice_amount)
        if draft.currency:
            currency = await context.services.currencies.get(draft.currency)
            if currency is not None:
                check_amount_precision(amount, currency.decimals, currency.code)
    except InputError as exc:
        return await ask(update, context, draft, AMOUNT, error=error_text(t, exc))
    draft.amount = amount
    if draft.currency is None:
        return await ask(update, context, draft, CURRENCY)
    # Back here after the currency refused the decimals, or editing from the preview.
    if draft.editing:
        return await show_preview(update, context, draft)
    return await ask(update, context, draft, TITLE)


async def _set_currency(update: Update, context: BotContext, draft: Draft, code: str) -> int:
    t = texts_for(update, context)
    currency = await context.services.currencies.get(code)
    if currency is None:
        error = t("error-currency-unsupported", currency=code)
        return await ask(update, context, draft, CURRENCY, error=error)
    draft.currency = currency.code
    if draft.amount is not None:
        try:
            check_amount_precision(draft.amount, currency.decimals, currency.code)
        except InputError as exc:
            draft.amount = None
            return await ask(update, context, draft, AMOUNT, error=error_text(t, exc))
    if draft.editing and draft.title:
        return await show_preview(update, context, draft)
    return await ask(update, context, draft, TITLE)


async def on_currency_text(update: Update, context: BotContext) -> int:
    """Accepts a currency typed by code."""
    got = await _parsed(update, context, CURRENCY, parse_currency_code)
    if isinstance(got, int):
        return got
    draft, code = got
    return await _set_currency(update, context, draft, code)


async def on_title(update: Update, context: BotContext) -> int:
    """Stores the title the payer will see."""
    got = await _parsed(update, context, TITLE, parse_title)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.title = value
    if draft.editing:
        return await show_preview(update, context, draft)
    return await next_after_title(update, context, draft)


async def on_first_name(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, FIRST_NAME, parse_name)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.first_name = value
    return await ask(update, context, draft, LAST_NAME)


async def on_last_name(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, LAST_NAME, parse_name)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.last_name = value
    return await ask(update, context, draft, BIRTH_DATE)


def _date_of_birth(text: str) -> dt.date:
    return parse_date_of_birth(text, today=dt.datetime.now(dt.UTC).date())


async def on_birth_date(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, BIRTH_DATE, _date_of_birth)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.date_of_birth = value
    return await next_after_sender(update, context, draft)


async def on_legal_name(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, LEGAL_NAME, parse_legal_name)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.legal_name = value
    return await ask(update, context, draft, COUNTRY)


async def on_country(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, COUNTRY, parse_country)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.country_alpha3 = value
    return await next_after_sender(update, context, draft)


async def on_email(update: Update, context: BotContext) -> int:
    got = await _parsed(update, context, EMAIL, parse_email)
    if isinstance(got, int):
        return got
    draft, value = got
    draft.email = value
    return await show_preview(update, context, draft)


# --- buttons -------------------------------------------------------------------------------


async def _pressed(update: Update, context: BotContext) -> tuple[Draft, str, str] | None:
    """The draft, action and argument of a press, or None (answered) for a stale button."""
    query = update.callback_query
    assert query is not None
    button = parse_callback_data(query.data)
    draft = await _draft(update, context)
    if not isinstance(button, DraftButton) or draft is None or draft.id != button.draft_id:
        await answer(query, texts_for(update, context)("stale-button"))
        return None
    await answer(query)
    return draft, button.action, button.arg


async def _mark_chosen(update: Update, choice: str) -> None:
    """Replace the keyboard by the choice, so the old buttons cannot be pressed again."""
    query = update.callback_query
    assert query is not None
    message = query.message
    text = message.text_html if message is not None and hasattr(message, "text_html") else ""
    chosen = f"→ <b>{html.escape(choice, quote=False)}</b>"
    await edit(query, f"{text}\n{chosen}" if text else chosen)


async def on_currency_button(update: Update, context: BotContext) -> int | None:
    """Stores a currency picked from the buttons."""
    pressed = await _pressed(update, context)
    if pressed is None:
        return None
    draft, _, code = pressed
    await _mark_chosen(update, code)
    return await _set_currency(update, context, draft, code)


async def on_customer_button(update: Update, context: BotContext) -> int | None:
    """Reuses a known customer (and its reference) or starts a new one."""
    pressed = await _pressed(update, context)
    if pressed is None:
        return None
    draft, _, arg = pressed
    t = texts_for(update, context)
    if arg == "new":
        await _mark_chosen(update, t("button-new-customer"))
        draft.customer_id = None
        return await ask(update, context, draft, SENDER_TYPE)
    customer = (
        await context.services.customers.get(draft.merchant_id, int(arg)) if arg.isdigit() else None
    )
    if customer is None:
        return await ask(update, context, draft, CUSTOMER, error=t("stale-button"))
    await _mark_chosen(update, render.customer_label(customer))
    draft.customer_id = customer.id
    draft.sender_type = None
    draft.first_name = draft.last_name = draft.legal_name = draft.country_alpha3 = None
    draft.date_of_birth = None
    draft.email = None
    return await next_after_sender(update, context, draft)


async def on_sender_type(update: Update, context: BotContext) -> int | None:
    pressed = await _pressed(update, context)
    if pressed is None:
        return None
    draft, _, arg = pressed
    t = texts_for(update, context)
    sender_type = SenderType(arg) if arg in {s.value for s in SenderType} else SenderType.NATURAL
    await _mark_chosen(
        update, t("button-natural" if sender_type is SenderType.NATURAL else "button-legal")
    )
    draft.sender_type = sender_type
    draft.customer_id = None
    return await ask(
        update, context, draft, FIRST_NAME if sender_type is SenderType.NATURAL else LEGAL_NAME
    )


async def on_preview_action(update: Update, context: BotContext) -> int | None:
    """Edit or cancel from the preview card."""
    pressed = await _pressed(update, context)
    if pressed is None:
        return None
    draft, action, arg = pressed
    t = texts_for(update, context)
    query = update.callback_query
    assert query is not None
    if action == "cancel":
        await context.services.drafts.cancel(draft.merchant_id, draft.chat_id)
        await edit(query, await _closed_text(context, t, draft.id, "cancelled"))
        return END
    if action == "edit":
        await edit(
            query,
            t("edit-which"),
            render.edit_keyboard(t, draft, context.services.requirements.sender_data),
        )
        return PREVIEW
    # action == "ed": one field chosen
    if arg == "back":
        await edit(query, t("edit-back"))
        return await show_preview(update, context, draft)
    target = {"amount": AMOUNT, "currency": CURRENCY, "title": TITLE, "customer": CUSTOMER}.get(arg)
    if target is None:
        return PREVIEW
    await edit(query, t("edit-chosen", field=t(f"button-edit-{arg}")))
    await context.services.invoices.abandoned(draft.id)  # the earlier attempt is not this one
    draft.editing = True
    if target == CUSTOMER:
        draft.email = None
        recent = await context.services.customers.recent(draft.merchant_id, limit=1)
        target = CUSTOMER if recent else SENDER_TYPE
    return await ask(update, context, draft, target)


async def confirm(update: Update, context: BotContext) -> int | None:
    """Creates the invoice once, turns the preview into the invoice card, adds a forwardable text.

    Works outside the conversation too: a Confirm pressed again on an old card shows the
    invoice that press already created instead of creating another.
    """
    query = update.callback_query
    assert query is not None and update.effective_user is not None
    button = parse_callback_data(query.data)
    services = context.services
    if not isinstance(button, DraftButton) or button.action != "confirm":
        await answer(query, texts_for(update, context)("stale-button"))
        return None
    draft_id, revision = button.draft_id, button.arg
    t = texts_for(update, context)
    if not await services.invoices.owns(draft_id, update.effective_user.id):
        await answer(query, t("stale-button"))
        return END
    await answer(query)
    if not await services.invoices.already_created(draft_id):  # a repeat shows the card at once
        await edit(query, t("progress-creating"))
    message_id = query.message.message_id if query.message is not None else None
    try:
        submission = await services.invoices.submit(
            draft_id, update.effective_user.id, revision or None, message_id
        )
    except SubmitError as exc:
        message = t(exc.key, **exc.params)
        if exc.key == "error-draft-changed":
            await edit(query, message)  # the newer preview below stays the one to confirm
            return None
        draft = await _draft(update, context)
        if exc.retry and draft is not None and draft.id == draft_id:
            customer = await services.customers.get(draft.merchant_id, draft.customer_id)
            note = f"⚠️ {message}"
            flagged = exc.key == "error-submit-flagged"
            await edit(
                query,
                render.preview_text(t, draft, customer, note=note),
                None if flagged else render.preview_keyboard(t, draft, retry=True),
            )
            return END if flagged else PREVIEW
        await edit(query, message)
        return END
    invoice = submission.invoice
    assert invoice.id is not None
    await present_invoice(
        context.bot, services, t, invoice, submission.customer,
        message_id=message_id, forwardable=not submission.repeated,
    )  # fmt: skip
    return END


def build_conversation(timeout_seconds: float) -> ConversationHandler[BotContext]:
    """The whole flow as a table: state → what it accepts."""
    new_entry: list[BaseHandler[Update, BotContext, Any]] = [
        CommandHandler("new", start_new),
        CallbackQueryHandler(start_new, pattern=matcher(NewInvoice)),
    ]
    # Buttons are bound to the draft id in their data, not to a message, so per_message=False
    # is intended; PTB warns about it regardless.
    warnings.filterwarnings("ignore", message=r"If 'per_message=False'", category=PTBUserWarning)
    return ConversationHandler(
        entry_points=new_entry,
        states={
            AMOUNT: [MessageHandler(TEXT_INPUT, on_amount)],
            CURRENCY: [
                CallbackQueryHandler(on_currency_button, pattern=matcher(DraftButton, "cur")),
                MessageHandler(TEXT_INPUT, on_currency_text),
            ],
            TITLE: [MessageHandler(TEXT_INPUT, on_title)],
            CUSTOMER: [
                CallbackQueryHandler(on_customer_button, pattern=matcher(DraftButton, "cus"))
            ],
            SENDER_TYPE: [CallbackQueryHandler(on_sender_type, pattern=matcher(DraftButton, "st"))],
            FIRST_NAME: [MessageHandler(TEXT_INPUT, on_first_name)],
            LAST_NAME: [MessageHandler(TEXT_INPUT, on_last_name)],
            BIRTH_DATE: [MessageHandler(TEXT_INPUT, on_birth_date)],
            LEGAL_NAME: [MessageHandler(TEXT_INPUT, on_legal_name)],
            COUNTRY: [MessageHandler(TEXT_INPUT, on_country)],
            EMAIL: [MessageHandler(TEXT_INPUT, on_email)],
            PREVIEW: [
                CallbackQueryHandler(confirm, pattern=matcher(DraftButton, "confirm")),
                CallbackQueryHandler(
                    on_preview_action, pattern=matcher(DraftButton, "edit", "cancel", "ed")
                ),
            ],
            ConversationHandler.TIMEOUT: [TypeHandler(Update, timed_out)],
        },
        fallbacks=[
            CommandHandler("cancel", cancel),
            MessageHandler(filters.UpdateType.MESSAGE & ~filters.COMMAND, unexpected),
            # Draft buttons that do not fit the step; Confirm is left to the handler after
            # the conversation, which shows the invoice an earlier press created.
            CallbackQueryHandler(
                unexpected, pattern=matcher(DraftButton, "cur", "cus", "st", "edit", "cancel", "ed")
            ),
        ],
        allow_reentry=True,
        conversation_timeout=timeout_seconds,
        name="new_invoice",
        persistent=True,
    )


def confirm_outside_conversation() -> CallbackQueryHandler[BotContext, int | None]:
    """Catches Confirm on a card whose conversation has ended (restart, double tap)."""
    return CallbackQueryHandler(confirm, pattern=matcher(DraftButton, "confirm"))
