"""The conversation a merchant lives in: as few inputs as possible, any order that is clear,
one field changed at a time, in their language, and it survives restarts and old buttons."""

from __future__ import annotations

import pytest

from bot.domain import Draft
from bot.services.conversation import STEPS, Flow, Step
from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import confirm, current
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import BotMessage, FakeTelegram, FakeUser

NBSP = "\u00a0"


class Counter:
    """Counts what the merchant does: messages sent plus buttons pressed."""

    def __init__(self, merchant: FakeUser) -> None:
        self.merchant, self.inputs = merchant, 0

    async def reply(self, text: str) -> BotMessage:
        self.inputs += 1
        return await self.merchant.reply(text)

    async def click(self, message: BotMessage, label: str) -> BotMessage:
        self.inputs += 1
        return await self.merchant.click(message, label)

    async def confirm(self, telegram: FakeTelegram, preview: BotMessage) -> BotMessage:
        self.inputs += 1
        return await confirm(telegram, self.merchant, preview)


async def new_person(m: Counter, question: BotMessage) -> BotMessage:
    await m.click(question, "Natural person")
    await m.reply("Ada")
    await m.reply("Lovelace")
    await m.reply("1990-12-10")
    return await m.reply("payer@example.org")


async def test_a_repeat_customer_is_three_inputs_and_a_new_person_seven(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = Counter(telegram.user(MERCHANT_ID))

    # A new natural person with the one-line start: the line, the kind, four answers, Confirm.
    question = await m.reply("/new 150 EUR Consulting March")
    assert "natural person" in question.text  # no customers yet: the payer's kind
    preview = await new_person(m, question)
    assert f"150.00{NBSP}EUR" in preview.text and "Consulting March" in preview.text
    card = await m.confirm(telegram, preview)
    assert card.button("pay link") and m.inputs == 7

    # The same customer again: the line, their button, Confirm.
    m.inputs = 0
    question = await m.reply("/new 150 EUR Consulting")
    preview = await m.click(question, "Ada Lovelace")
    card = await m.confirm(telegram, preview)
    assert card.button("pay link") and m.inputs == 3
    assert len(cryptoprocessing.invoices) == 2
    references = {i["request"]["end_user_reference"] for i in cryptoprocessing.invoices.values()}
    assert len(references) == 1  # the same person keeps one reference


@pytest.mark.parametrize("answer", ["150 USD", "USD 150", "$150", "150$", "150 usd"])
async def test_amount_and_currency_in_one_answer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter,
    answer: str,
) -> None:  # fmt: skip
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")
    question = await m.reply(answer)
    assert "Title" in question.text  # the currency was taken from the same answer


async def test_a_card_starts_the_next_invoice_for_the_same_customer(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = Counter(telegram.user(MERCHANT_ID))
    card = await m.confirm(
        telegram, await new_person(m, await m.reply("/new 80 EUR Lessons"))
    )  # fmt: skip

    m.inputs = 0
    question = await m.click(card, "New invoice for this customer")
    assert "What amount?" in question.text
    preview = await m.reply("95 April lessons")  # only the amount and title are missing
    assert "Ada Lovelace" in preview.text and f"95.00{NBSP}EUR" in preview.text
    assert "April lessons" in preview.text
    await m.confirm(telegram, preview)
    assert m.inputs == 3 and len(cryptoprocessing.invoices) == 2


@pytest.mark.parametrize(
    ("language", "line", "asks", "amount"),
    [
        ("en", "/new 1234.5 EUR Consulting", "natural person", f"1,234.50{NBSP}EUR"),
        ("de", "/new 1.234,50 EUR Beratung", "natürliche", f"1.234,50{NBSP}EUR"),
        ("ru", "/new 1 234,50 EUR Консультация", "физическое", f"1{NBSP}234,50{NBSP}EUR"),
    ],
)
async def test_one_line_starts_and_cards_in_the_merchant_s_language(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    language: str,
    line: str,
    asks: str,
    amount: str,
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID, language_code=language)
    question = await m.reply(line)
    assert asks in question.text
    await m.click(question, {"en": "Legal entity", "de": "Juristische", "ru": "Юридическое"}[
        language
    ])  # fmt: skip
    await m.reply("Acme Widgets GmbH")
    country = {"en": "Germany", "de": "Deutschland", "ru": "Германия"}[language]
    await m.reply(country)
    preview = await m.reply("payer@example.org")
    assert amount in preview.text and country in preview.text
    card = await confirm(telegram, m, preview)
    assert amount in card.text and "#1" in card.text
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["sender_data"]["country_of_registration"] == "DEU"


async def test_a_country_near_miss_offers_suggestions(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID, language_code="de")
    question = await m.reply("/new 10 EUR Test")
    await m.click(question, "Juristische")
    await m.reply("Acme Widgets GmbH")
    suggestion = await m.reply("Deutchland")
    assert "Deutchland" in suggestion.text and 1 <= len(suggestion.buttons()) <= 3
    email_question = await m.click(suggestion, "Deutschland")
    assert "E-Mail" in email_question.text


EDITS = [
    ("Amount", "250.5", f"250.50{NBSP}EUR"),
    ("Title", "New title", "New title"),
    ("First name", "Augusta", "Augusta Lovelace"),
    ("Last name", "King", "Ada King"),
    ("Date of birth", "11.12.1990", "1990-12-11"),
    ("Email", "other@example.org", "other@example.org"),
]


@pytest.mark.parametrize(("field", "typed", "shown"), EDITS)
async def test_edit_changes_exactly_one_field_and_returns_to_the_preview(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    field: str,
    typed: str,
    shown: str,
) -> None:
    await start_bot(cryptoprocessing)
    m = Counter(telegram.user(MERCHANT_ID))
    preview = await new_person(m, await m.reply("/new 100 EUR Widgets"))
    before = preview.text

    menu = await m.click(preview, "Edit")
    question = await m.click(menu, field)
    assert "?" in question.text
    preview = await m.reply(typed)

    assert "Check the invoice" in preview.text and shown in preview.text
    changed = [(a, b) for a, b in zip(before.splitlines(), preview.text.splitlines(), strict=True)
               if a != b]  # fmt: skip
    assert len(changed) == 1, changed
    card = await confirm(telegram, m.merchant, preview)
    assert card.button("pay link")


async def test_edit_currency_and_customer_from_the_preview(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = Counter(telegram.user(MERCHANT_ID))
    preview = await new_person(m, await m.reply("/new 100 EUR Widgets"))
    menu = await m.click(preview, "Edit")
    question = await m.click(menu, "Currency")
    preview = await m.click(question, "USD")
    assert f"100.00{NBSP}USD" in preview.text and "Ada Lovelace" in preview.text

    menu = await m.click(preview, "Edit")
    question = await m.click(menu, "Customer")  # another payer altogether
    await m.click(question, "Legal entity")
    await m.reply("Acme Widgets GmbH")
    await m.reply("DE")
    preview = await m.reply("billing@example.org")
    assert "Acme Widgets GmbH" in preview.text and "Ada" not in preview.text
    assert f"100.00{NBSP}USD" in preview.text and "Widgets" in preview.text

    back = await m.click(await m.click(preview, "Edit"), "Back")
    assert "Check the invoice" in back.text


async def test_an_old_confirm_of_one_draft_leaves_the_next_draft_alone(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    c = Counter(m)
    preview_a = await new_person(c, await m.reply("/new 10 EUR Draft A"))
    question = await m.reply("/new 20 EUR Draft B")  # A is closed, B is open
    preview_b = await new_person(c, question)
    answered = len(m.answers())

    await m.press(preview_a.button("Confirm"), preview_a)  # A's old Confirm
    await telegram.wait_for(lambda: len(m.answers()) > answered or None)
    await telegram.wait_for(lambda: "closed" in current(telegram, preview_a).text or None)

    # B's own buttons still work and B ends as an invoice; A never became one.
    menu = await m.click(preview_b, "Edit")
    await m.click(menu, "Title")
    preview_b = await m.reply("Draft B, final")
    card = await confirm(telegram, m, preview_b)
    assert "Draft B, final" in card.text and card.button("pay link")
    assert [i["request"]["title"] for i in cryptoprocessing.invoices.values()] == ["Draft B, final"]


async def test_a_restart_between_every_step(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    m = telegram.user(MERCHANT_ID)
    bot = await start_bot(cryptoprocessing)

    async def restart() -> None:
        nonlocal bot
        await bot.stop()
        bot = await start_bot(cryptoprocessing)

    question = await m.reply("/new")
    for answer in ("42", "EUR", "Restarted widgets"):
        await restart()
        question = await (m.click(question, answer) if answer == "EUR" else m.reply(answer))
    await restart()
    await m.click(question, "Natural person")
    for answer in ("Ada", "Lovelace", "1990-12-10"):
        await restart()
        await m.reply(answer)
    await restart()
    preview = await m.reply("payer@example.org")
    await restart()
    card = await confirm(telegram, m, preview)

    assert f"42.00{NBSP}EUR" in card.text and "Restarted widgets" in card.text
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["sender_data"]["last_name"] == "Lovelace"


async def test_an_answer_typed_again_after_a_restart_is_not_taken_for_the_next_question(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    """The bot died after saving "Ada" and before asking for the last name: the merchant,
    seeing no question, types "Ada" again. That is not the payer's last name."""
    m = telegram.user(MERCHANT_ID)
    bot = await start_bot(cryptoprocessing)
    question = await m.reply("/new 10 EUR Lessons")
    await m.click(question, "Natural person")
    await m.reply("Ada")
    await bot.stop()
    await start_bot(cryptoprocessing)

    again = await m.reply("Ada")
    assert "restarted right after saving your last answer" in again.text
    assert "last name?" in again.text
    same = await m.reply("Ada")  # now it is the answer: a last name may equal the first
    assert "date of birth?" in same.text
    await m.reply("1990-12-10")
    preview = await m.reply("payer@example.org")
    assert "Ada Ada, born 1990-12-10" in preview.text


async def test_cryptocloud_one_line_goes_straight_to_the_preview(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    m = Counter(telegram.user(MERCHANT_ID))
    preview = await m.reply("/new 150 USD Lamp")
    assert "Check the invoice" in preview.text
    card = await m.confirm(telegram, preview)
    assert card.button("pay link") and m.inputs == 2

    await m.reply("/new 5 EUR")
    title_question = m.merchant.last_message()
    assert "CryptoCloud shows the payer none" in title_question.text  # what the title is for


async def test_a_step_is_one_row_in_the_table(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    """A throwaway step (an internal order reference) added as one row, walked end to end."""

    def store(draft: Draft, value: str, flow: Flow) -> None:
        draft.extra["order_ref"] = value

    order_ref = Step(
        "order_ref",
        needed=lambda draft, flow: "order_ref" not in draft.extra,
        store=store,
        parse=lambda text, flow: text.strip()[:20],
        prompt=lambda draft, flow: "ask-title",  # an existing text stands in for its own key
    )
    steps = (*STEPS[:3], order_ref, *STEPS[3:])
    bot = await start_bot(cryptoprocessing, steps=steps)
    m = telegram.user(MERCHANT_ID)

    await m.reply("/new 10 EUR Widgets")  # amount, currency, title: the new row comes next
    question = await m.reply("REF-7")
    assert "natural person" in question.text
    draft = await bot.services.conversation.current(MERCHANT_ID, m.chat_id)
    assert draft is not None and draft.extra["order_ref"] == "REF-7"
    assert draft.step == "customer"


@pytest.mark.parametrize(
    ("field", "typed", "shown"),
    [("Legal name", "Acme Holding AG", "Acme Holding AG"), ("Country", "AT", "Austria (AUT)")],
)
async def test_edit_a_legal_entity_detail(
    telegram: FakeTelegram,
    cryptoprocessing: FakeCryptoProcessing,
    start_bot: BotStarter,
    field: str,
    typed: str,
    shown: str,
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    question = await m.reply("/new 100 EUR Widgets")
    await m.click(question, "Legal entity")
    await m.reply("Acme Widgets GmbH")
    await m.reply("DE")
    preview = await m.reply("billing@example.org")
    before = preview.text

    await m.click(await m.click(preview, "Edit"), field)
    preview = await m.reply(typed)

    changed = [(a, b) for a, b in zip(before.splitlines(), preview.text.splitlines(), strict=True)
               if a != b]  # fmt: skip
    assert len(changed) == 1 and shown in changed[0][1], changed
    await confirm(telegram, m, preview)
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["sender_type"] == "legal"
