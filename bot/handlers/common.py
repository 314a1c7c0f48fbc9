"""Access gate, /start, /help, and the error handler."""

from __future__ import annotations

import html
import logging

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.ext import ApplicationHandlerStop

from bot.handlers.callback_data import NewInvoice
from bot.handlers.context import BotContext, role_of, texts_for
from bot.handlers.telegram_io import answer
from bot.services.access import Role, commands_for

logger = logging.getLogger(__name__)


async def gate(update: Update, context: BotContext) -> None:
    """Stops every update from users who are neither merchants nor admins (group -1)."""
    if role_of(update, context) is not None:
        return
    user = update.effective_user
    if user is None:
        raise ApplicationHandlerStop
    t = texts_for(update, context)
    text = t("not-allowed", user_id=user.id)
    if update.callback_query:
        await answer(update.callback_query, t("not-allowed-short"))
    elif update.effective_chat is not None and update.effective_chat.type == "private":
        await update.effective_chat.send_message(text, parse_mode=ParseMode.HTML)
    logger.info("refused update from a user who is not configured")
    raise ApplicationHandlerStop


async def start(update: Update, context: BotContext) -> None:
    """Greets and offers the main actions."""
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
    lines += [f"/{name} — {html.escape(t(f'command-{name}'))}" for name in commands_for(role)]
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
