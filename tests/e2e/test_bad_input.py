"""Every wrong answer gets a reason and the same question again; the invoice still comes out."""

from __future__ import annotations

from decimal import Decimal

from tests.conftest import MERCHANT_ID, BotStarter
from tests.e2e.flows import confirm
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram


async def test_bad_answers_at_every_step_are_explained_and_asked_again(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")

    # Amount
    for text, reason in [
        ("abc", "not an amount I can read"),
        ("-5", "greater than zero"),
        ("0", "greater than zero"),
        ("1,234", "a thousand times"),
        ("99999999999", "larger than this bot allows"),
    ]:
        answer = await m.reply(text)
        assert reason in answer.text, (text, answer.text)
        assert "What amount?" in answer.text
    assert "a thousand times" in (await m.reply("12.345")).text
    question = await m.reply("12.3456")  # fine for now; EUR will refuse 4 decimals

    # Currency
    assert "does not accept XYZ" in (await m.reply("XYZ")).text
    assert "letters or digits" in (await m.reply("€€")).text
    back_to_amount = await m.click(question, "EUR")
    assert (
        "at most 2 decimal places" in back_to_amount.text and "What amount?" in back_to_amount.text
    )
    title_question = await m.reply("12.30")
    assert "Title" in title_question.text

    # Title
    too_long = await m.reply("x" * 51)
    assert "51 characters long; the limit is 50" in too_long.text
    sender_question = await m.reply("  Spare parts \n batch 7 ")

    # Sender type wants a button
    assert "use the buttons" in (await m.reply("natural")).text
    await m.click(sender_question, "Natural person")

    # Names and date of birth
    assert "letters and no digits" in (await m.reply("R2D2")).text
    await m.reply("Ada")
    await m.reply("Lovelace")
    assert "does not exist" in (await m.reply("31.02.1990")).text
    assert "must be in the past" in (await m.reply("2999-01-01")).text
    assert "YYYY-MM-DD" in (await m.reply("10/12/1990")).text
    email_question = await m.reply("1990-12-10")
    assert "email" in email_question.text.lower()

    # Email
    assert "does not look like an email" in (await m.reply("payer at example")).text
    preview = await m.reply("payer@example.org")

    # A photo or sticker instead of text is not a crash either.
    card = await confirm(telegram, m, preview)
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["amount"] == Decimal("12.30")
    assert invoice["request"]["title"] == "Spare parts batch 7"
    assert "waiting for payment" in card.text


async def test_unknown_country_is_refused_and_codes_or_names_are_accepted(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")
    question = await m.reply("5")
    await m.click(question, "USD")
    sender_question = await m.reply("Service")
    await m.click(sender_question, "Legal entity")
    await m.reply("Acme Widgets GmbH")
    assert "do not know the country" in (await m.reply("Atlantis")).text
    email_question = await m.reply("fr")
    assert "email" in email_question.text.lower()
    preview = await m.reply("payer@example.org")
    assert "France (FRA)" in preview.text


async def test_edit_from_the_preview_changes_one_field_and_returns(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")
    question = await m.reply("100")
    await m.click(question, "EUR")
    sender_question = await m.reply("Old title")
    await m.click(sender_question, "Legal entity")
    await m.reply("Acme Widgets GmbH")
    await m.reply("DEU")
    preview = await m.reply("payer@example.org")

    menu = await m.click(preview, "Edit")
    await m.click(menu, "Title")
    preview = await m.reply("New title")
    assert "New title" in preview.text and "100.00\u00a0EUR" in preview.text

    menu = await m.click(preview, "Edit")
    await m.click(menu, "Amount")
    preview = await m.reply("250.5")
    assert "250.50\u00a0EUR" in preview.text and "New title" in preview.text

    await confirm(telegram, m, preview)
    [invoice] = cryptoprocessing.invoices.values()
    assert invoice["request"]["title"] == "New title"
    assert invoice["request"]["amount"] == Decimal("250.5")


async def test_cancel_leaves_nothing_behind(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")
    await m.reply("100")
    assert "Cancelled" in (await m.reply("/cancel")).text
    assert "No invoice is being prepared" in (await m.reply("150")).text
    assert "No invoices yet" in (await m.reply("/invoices")).text
    assert cryptoprocessing.create_calls == 0


async def test_idle_conversation_times_out_with_a_message(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing, conversation_timeout_seconds=1)
    m = telegram.user(MERCHANT_ID)
    await m.reply("/new")
    await m.reply("100")

    closed = await telegram.wait_for(
        lambda: m.last_message() if "long pause" in m.last_message().text else None, timeout=5
    )
    assert "Nothing was created" in closed.text
    assert "No invoice is being prepared" in (await m.reply("EUR")).text
