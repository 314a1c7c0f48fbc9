"""What a merchant types, step by step; tests compose these into stories."""

from __future__ import annotations

from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser


async def fill_basics(merchant: FakeUser, amount: str, currency: str, title: str) -> BotMessage:
    """/new → amount → currency button → title; returns the bot's next question."""
    await merchant.reply("/new")
    question = await merchant.reply(amount)
    question = await merchant.click(question, currency)
    return await merchant.reply(title)


async def add_natural_person(
    merchant: FakeUser, question: BotMessage, first: str, last: str, born: str, email: str | None
) -> BotMessage:
    """From the customer question (recent customers, or the payer's kind) to the preview."""
    await merchant.click(question, "Natural person")
    await merchant.reply(first)
    await merchant.reply(last)
    reply = await merchant.reply(born)
    if email is not None:
        reply = await merchant.reply(email)
    return reply


async def add_legal_entity(
    merchant: FakeUser, question: BotMessage, name: str, country: str, email: str | None
) -> BotMessage:
    await merchant.click(question, "Legal entity")
    await merchant.reply(name)
    reply = await merchant.reply(country)
    if email is not None:
        reply = await merchant.reply(email)
    return reply


async def confirm(telegram: FakeTelegram, merchant: FakeUser, preview: BotMessage) -> BotMessage:
    """Press Confirm (or Retry); returns the card (the preview message, edited in place)."""
    edits = current(telegram, preview).edits
    # Confirm (or Retry) is the first button of a preview, whatever the language.
    await merchant.press(preview.buttons()[0], preview)

    # The press is answered at once; the card follows once the provider has answered.
    def settled() -> BotMessage | None:
        card = current(telegram, preview)
        return card if card.edits > edits else None

    return await telegram.wait_for(settled)


def current(telegram: FakeTelegram, message: BotMessage) -> BotMessage:
    """The message as the merchant sees it now, after any edits."""
    return next(
        m for m in telegram.chat_messages(message.chat_id) if m.message_id == message.message_id
    )
