"""Access gate, /start, /help, and the error handler."""

from __future__ import annotations

import html
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationHandlerStop

from bot.handlers import new_invoice, reach
from bot.handlers.callback_data import NewInvoice, PayerButton, parse_callback_data
from bot.handlers.context import BotContext, role_of, texts_for
from bot.handlers.telegram_io import answer
from bot.services.access import Role, commands_for

logger = logging.getLogger(__name__)


def _open_to_anyone(update: Update) -> bool:
    """What strangers may do: open an invoice by its link (`/start <token>`), press its
    payer buttons, and what reaches the bot from merchants' Business chats."""
    message = update.message
    if message is not None and message.text is not None:
        parts = message.text.split()
        if len(parts) == 2 and parts[0] in ("/start", f"/start@{update.get_bot().username}"):
            return True
    if update.callback_query is not None:
        return isinstance(parse_callback_data(update.callback_query.data), PayerButton)
    return bool(
        update.business_connection or update.business_message
        or update.edited_business_message or update.deleted_business_messages
    )  # fmt: skip


async def gate(update: Update, context: BotContext) -> None:
    """Stops every update from users who are neither merchants nor admins (group -1),
    except what payers may do."""
    if role_of(update, context) is not None or _open_to_anyone(update):
        return
    if update.inline_query is not None:  # an inline query from anyone else gets nothing
        await update.inline_query.answer([], cache_time=0, is_personal=True)
        raise ApplicationHandlerStop
    user = update.effective_user
    if user is None:
        raise ApplicationHandlerStop
    t = texts_for(update, context)
    text = t("not-allowed", user_id=user.id)
    if await context.services.sharing.is_payer(user.id):  # a customer, not a would-be merchant
        text = t("payer-hint")
    if update.callback_query:
        await answer(update.callback_query, t("not-allowed-short"))
    elif update.effective_chat is not None and update.effective_chat.type == "private":
        await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)
    logger.info("refused update from a user who is not configured")
    raise ApplicationHandlerStop


async def start(update: Update, context: BotContext) -> None:
    """Greets and offers the main actions; `/start <token>` opens a payer's invoice."""
    args = context.args or []
    role = role_of(update, context)
    if args and (
        role is None or args[0] not in (reach.START_ADD_CUSTOMER, reach.START_INLINE_HELP)
    ):
        await reach.payer_start(update, context, args[0])
        return
    if role is None:
        return
    if args and args[0] == reach.START_ADD_CUSTOMER:
        await new_invoice.start_from_inline(update, context)
        return
    if args and args[0] == reach.START_INLINE_HELP:
        assert update.effective_chat is not None
        t = texts_for(update, context)
        await update.effective_chat.send_message(
            t("inline-help", bot=context.bot.username), parse_mode=ParseMode.HTML
        )
        return
    t = texts_for(update, context)
    assert update.effective_chat is not None
    rows = [[InlineKeyboardButton(t("button-new-invoice"), callback_data=NewInvoice().build())]]
    text: str = t("welcome")
    if role_of(update, context) is Role.ADMIN:
        text += "\n\n" + t("welcome-admin")
    await update.effective_chat.send_message(
        text, parse_mode=ParseMode.HTML, reply_markup=InlineKeyboardMarkup(rows)
    )


async def help_command(update: Update, context: BotContext) -> None:
    """How it works, and exactly the commands this user may use."""
    t = texts_for(update, context)
    assert update.effective_chat is not None
    role = role_of(update, context) or Role.MERCHANT
    lines = [t("help"), "", t("help-commands")]
    # Menu descriptions are plain text (they may hold "<id>"): escaped for HTML here.
    lines += [
        f"/{name} — {html.escape(t(f'command-{name}'))}"
        for name in commands_for(role, refresh=context.services.payments.any_query)
    ]
    await update.effective_chat.send_message("\n".join(lines), parse_mode=ParseMode.HTML)


async def outside_conversation(update: Update, context: BotContext) -> None:
    """Text, /cancel or an old draft button when no invoice is being composed."""
    t = texts_for(update, context)
    if update.callback_query is not None:
        await answer(update.callback_query, t("stale-button"))
    elif update.effective_chat is not None:
        await update.effective_chat.send_message(t("no-draft"))


async def on_error(update: object, context: BotContext) -> None:
    """Logs the failure without the update (it holds personal data) and tells the user."""
    error = context.error
    logger.error(
        "unhandled %s while processing an update",
        type(error).__name__,
        exc_info=(type(error), error, error.__traceback__) if error is not None else None,
    )
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            t = texts_for(update, context)
            await update.effective_chat.send_message(t("internal-error"))
        except Exception:  # the chat may be unreachable; the failure is already logged
            logger.warning("could not tell the user about an internal error")
