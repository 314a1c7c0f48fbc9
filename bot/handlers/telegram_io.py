"""Small wrappers over Bot API calls whose harmless failures must not break a conversation."""

from __future__ import annotations

import logging
from typing import Any

from telegram import CallbackQuery, InlineKeyboardMarkup, Message
from telegram.constants import ParseMode
from telegram.error import BadRequest

logger = logging.getLogger(__name__)


async def edit(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | bool:
    """Edit the pressed message; 'not modified' (a repeated tap) is not an error."""
    try:
        return await query.edit_message_text(
            text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True
        )
    except BadRequest as exc:
        if "not modified" in exc.message.lower():
            return False
        raise


async def reply(message: Message, text: str, markup: Any = None) -> Message:
    return await message.reply_text(
        text, parse_mode=ParseMode.HTML, reply_markup=markup, disable_web_page_preview=True
    )


async def answer(query: CallbackQuery, text: str | None = None) -> None:
    """Always answer a press, or the client shows a spinner; an expired query is fine."""
    try:
        await query.answer(text)
    except BadRequest as exc:
        logger.debug("callback answer failed: %s", exc.message)
