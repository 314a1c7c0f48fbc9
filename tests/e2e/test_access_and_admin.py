"""Only configured merchants and admins get in; admins see everything, merchants their own."""

from __future__ import annotations

from tests.conftest import ADMIN_ID, MERCHANT_ID, OTHER_MERCHANT_ID, STRANGER_ID, BotStarter
from tests.e2e.flows import add_natural_person, confirm, fill_basics
from tests.fakes.cryptocloud_api import FakeCryptoCloud
from tests.fakes.cryptoprocessing_api import FakeCryptoProcessing
from tests.fakes.telegram_api import FakeTelegram, FakeUser


async def _invoice(telegram: FakeTelegram, merchant: FakeUser, title: str) -> None:
    question = await fill_basics(merchant, "10", "EUR", title)
    preview = await add_natural_person(
        merchant, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    await confirm(telegram, merchant, preview)


async def test_strangers_are_refused_with_their_id_and_nothing_else(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    stranger = telegram.user(STRANGER_ID, "Eve")

    for command in ("/start", "/new", "/invoices", "/invoice 1", "100"):
        refusal = await stranger.reply(command)
        assert "private" in refusal.text and str(STRANGER_ID) in refusal.text
        assert "amount" not in refusal.text.lower()

    await stranger.press_data("list|0", refusal)
    await telegram.wait_for(lambda: stranger.answers())
    assert stranger.answers()[-1].get("text") == "This bot is private."
    assert cryptoprocessing.create_calls == 0


async def test_admin_pages_through_all_invoices_and_merchants_see_their_own(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    mira, olek = telegram.user(MERCHANT_ID, "Mira"), telegram.user(OTHER_MERCHANT_ID, "Olek")
    for n in range(11):
        await _invoice(telegram, mira, f"Mira order {n}")
    await _invoice(telegram, olek, "Olek order")

    admin = telegram.user(ADMIN_ID, "Root")
    page1 = await admin.reply("/invoices")
    assert "page 1 of 2" in page1.text
    assert "Olek order" in page1.text and "Mira order 10" in page1.text
    assert "Mira order 0" not in page1.text
    page2 = await admin.click(page1, "Older")
    assert "page 2 of 2" in page2.text and "Mira order 0" in page2.text

    own = await olek.reply("/invoices")
    assert "Olek order" in own.text and "Mira" not in own.text
    assert "merchant" not in own.text and f"merchant {MERCHANT_ID}" in page2.text

    details = await admin.reply("/invoice 12")
    assert "Olek order" in details.text and "History" in details.text
    # History in words, with times and their zone.
    assert "UTC · Sent to the provider" in details.text
    assert "UTC · Created at the provider" in details.text
    assert "Customer reference" in details.text
    assert "No invoice" in (await mira.reply("/invoice 12")).text  # not hers
    assert "Usage" in (await admin.reply("/invoice")).text


async def test_a_slow_provider_for_one_merchant_does_not_stall_another(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing, provider_timeout_seconds=5)
    mira, olek = telegram.user(MERCHANT_ID), telegram.user(OTHER_MERCHANT_ID)
    question = await fill_basics(mira, "10", "EUR", "Slow one")
    preview = await add_natural_person(
        mira, question, "Ada", "Lovelace", "1990-12-10", "payer@example.org"
    )
    cryptoprocessing.delay_next(2.0)
    await mira.press(preview.button("Confirm"), preview)
    await telegram.wait_for(lambda: cryptoprocessing.create_calls == 1)

    answer = await olek.reply("/new")

    assert "amount" in answer.text.lower()
    # Olek was answered while Mira's create call was still open at the provider.
    assert any(r.status is None for r in cryptoprocessing.requests)
    assert not any(m.text.startswith("Invoice:") for m in telegram.chat_messages(mira.chat_id))


async def test_help_lists_exactly_the_commands_each_user_may_use(
    telegram: FakeTelegram, cryptoprocessing: FakeCryptoProcessing, start_bot: BotStarter
) -> None:
    await start_bot(cryptoprocessing)
    merchant, admin = telegram.user(MERCHANT_ID, "Mira"), telegram.user(ADMIN_ID, "Root")

    merchant_help = await merchant.reply("/help")
    admin_help = await admin.reply("/help")

    def listed(text: str) -> set[str]:
        return {line.split(" ", 1)[0] for line in text.splitlines() if line.startswith("/")}

    # No /refresh: CryptoProcessing cannot be asked for a status, so it would always say no.
    merchant_commands = {"/new", "/cancel", "/invoices", "/invoice", "/cancel_invoice",
                         "/customers", "/forget", "/help"}  # fmt: skip
    assert listed(merchant_help.text) == merchant_commands
    assert listed(admin_help.text) == merchant_commands | {"/unmatched", "/callbacks"}
    # The command menu matches: everyone gets the merchant's, admins theirs in their chat.
    menus = [str(c.params["commands"]) for c in telegram.calls_to("setMyCommands")]
    assert menus and not [menu for menu in menus if "refresh" in menu]
    scoped = [c for c in telegram.calls_to("setMyCommands") if c.params.get("scope")]
    assert scoped and all(str(ADMIN_ID) in str(c.params["scope"]) for c in scoped)

    for command in ("/callbacks", "/unmatched"):
        refusal = await merchant.reply(command)
        assert refusal.text == "This command is for admins."


async def test_refresh_is_offered_where_the_provider_answers_status_queries(
    telegram: FakeTelegram, cryptocloud: FakeCryptoCloud, start_bot: BotStarter
) -> None:
    await start_bot(cryptocloud)
    shown = await telegram.user(MERCHANT_ID).reply("/help")
    assert "/refresh" in shown.text
