"""Self-test of the fake Bot API, driven by a real python-telegram-bot Application.

If PTB and the fake disagree on the wire format, every bot test built on the fake would
be testing fiction; these tests pin the contract down.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from telegram import (
    Bot,
    ChosenInlineResult,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultCachedPhoto,
    InlineQueryResultsButton,
    InputTextMessageContent,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChosenInlineResultHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_api import (
    BOT_USER,
    BUSINESS_CONNECTION_DISABLED,
    BUSINESS_CONNECTION_NOT_FOUND,
    BUSINESS_PEER_USAGE_MISSING,
    BUSINESS_REPLY_FORBIDDEN,
    INLINE_MESSAGE_ID_INVALID,
    MESSAGE_ID_INVALID,
    NOT_MODIFIED,
    QUERY_INVALID,
    FakeTelegram,
    HtmlParseError,
    InlineAnswer,
    UploadedFile,
    parse_telegram_html,
)

App = Application[Any, Any, Any, Any, Any, Any]

KEYBOARD = InlineKeyboardMarkup(
    [
        [
            InlineKeyboardButton("Yes", callback_data="yes"),
            InlineKeyboardButton("No", callback_data="no"),
        ],
        [InlineKeyboardButton("Docs", url="https://example.com/docs")],
    ]
)


def _ptb_message(description: str) -> str:
    """What PTB makes of a Bot API description: no "Bad Request: ", ``str.capitalize()``d,
    so "Bad Request: MESSAGE_ID_INVALID" arrives as "Message_id_invalid"."""
    return description.removeprefix("Bad Request: ").capitalize()


@dataclass
class EchoBot:
    app: App
    seen: list[Update] = field(default_factory=list)

    @property
    def bot(self) -> Bot:
        bot: Bot = self.app.bot
        return bot


def _build_echo_bot(tg: FakeTelegram) -> EchoBot:
    app: App = Application.builder().token(tg.token).base_url(tg.base_url).build()
    echo = EchoBot(app)

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        echo.seen.append(update)
        assert update.effective_message and update.effective_user
        await update.effective_message.reply_text(
            f"Hello, {update.effective_user.first_name}! args={context.args}"
        )

    async def multi(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message
        await update.effective_message.reply_text("one")
        await asyncio.sleep(0.05)
        await update.effective_message.reply_text("two")

    async def text(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        echo.seen.append(update)
        assert update.effective_message and update.effective_message.text is not None
        await update.effective_message.reply_text(
            f"You said: <b>{html.escape(update.effective_message.text)}</b>",
            parse_mode=ParseMode.HTML,
            reply_markup=KEYBOARD,
        )

    async def button(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        echo.seen.append(update)
        query = update.callback_query
        assert query is not None
        await query.answer(f"Chose {query.data}")
        await query.edit_message_text(f"You chose {query.data}")

    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("multi", multi))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, text))
    app.add_handler(CallbackQueryHandler(button))
    return echo


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@contextlib.asynccontextmanager
async def _polling(app: App) -> AsyncIterator[None]:
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        yield
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


@pytest.fixture
async def echo(tg: FakeTelegram) -> AsyncIterator[EchoBot]:
    bot = _build_echo_bot(tg)
    async with _polling(bot.app):
        yield bot


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    """PTB's own Bot talking to the fake, for tests that play the bot by hand."""
    async with Bot(tg.token, base_url=tg.base_url) as client:
        yield client


# --------------------------------------------------------------------------- end to end


async def test_start_command_reaches_handler(tg: FakeTelegram, echo: EchoBot) -> None:
    alice = tg.user(42, language_code="de")

    reply = await alice.reply("/start")

    assert reply.text == "Hello, Alice! args=[]"
    assert reply.chat_id == 42
    assert reply.raw["from"]["id"] == BOT_USER["id"]
    assert reply.raw["chat"] == {"id": 42, "first_name": "Alice", "type": "private"}
    update = echo.seen[-1]
    assert update.effective_user is not None
    assert update.effective_user.language_code == "de"
    # PTB only accepts "@botname" commands addressed to the username getMe reported.
    deep = await alice.reply("/start@invoice_test_bot inv_123")
    assert deep.text == "Hello, Alice! args=['inv_123']"
    assert tg.calls_to("GETME")


async def test_keyboard_press_edits_message(tg: FakeTelegram, echo: EchoBot) -> None:
    bob = tg.user(43, first_name="Bob", language_code=None)

    card = await bob.reply("1 < 2 & co")

    assert card.text == "You said: 1 < 2 & co"
    assert card.html == "You said: <b>1 &lt; 2 &amp; co</b>"
    assert card.raw["entities"] == [{"type": "bold", "offset": 10, "length": 10}]
    assert [b.text for b in card.buttons()] == ["Yes", "No", "Docs"]
    assert card.button("doc").url == "https://example.com/docs"
    assert "language_code" not in echo.seen[-1].to_dict()["message"]["from"]

    edited = await bob.click(card, "yes")

    assert edited.message_id == card.message_id
    assert edited.text == "You chose yes"
    assert edited.edits == 1
    assert edited.reply_markup is None
    assert card.edits == 0, "snapshots handed to tests must not change under them"
    assert bob.answers() == [
        {"callback_query_id": bob.answers()[0]["callback_query_id"], "text": "Chose yes"}
    ]
    assert len(tg.calls_to("answerCallbackQuery")) == 1
    query = echo.seen[-1].callback_query
    assert query is not None and isinstance(query.message, Message)
    assert query.message.reply_markup == KEYBOARD
    assert tg.chat_messages(43)[-1].text == "You chose yes"
    assert bob.last_message().edits == 1
    with pytest.raises(AssertionError, match="no callback_data"):
        await bob.press(card.button("Docs"), card)
    with pytest.raises(AssertionError, match="'Yes', 'No', 'Docs'"):
        card.button("Maybe")


async def test_reply_returns_final_message_after_quiet_period(
    tg: FakeTelegram, echo: EchoBot
) -> None:
    carol = tg.user(44, first_name="Carol")

    last = await carol.reply("/multi")
    assert last.text == "two"

    update_id = await carol.send("/multi")
    fresh = await tg.wait_for(lambda: len(carol.messages_since(update_id)) == 2 or None)
    assert fresh is True
    assert [m.text for m in carol.messages_since(update_id)] == ["one", "two"]
    # User and bot messages share one id sequence per chat, as in Telegram.
    assert [m.message_id for m in tg.chat_messages(44)] == [2, 3, 5, 6]
    await tg.wait_for(lambda: tg.pending_updates() == 0)


async def test_identical_edit_is_not_modified(tg: FakeTelegram, echo: EchoBot) -> None:
    dave = tg.user(45)
    sent = await echo.bot.send_message(
        dave.chat_id, "<b>Card</b>\n", parse_mode=ParseMode.HTML, reply_markup=KEYBOARD
    )
    assert sent.text == "Card"

    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await echo.bot.edit_message_text(
            "<strong>Card</strong>",
            chat_id=dave.chat_id,
            message_id=sent.message_id,
            parse_mode=ParseMode.HTML,
            reply_markup=KEYBOARD,
        )
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await echo.bot.edit_message_reply_markup(
            chat_id=dave.chat_id, message_id=sent.message_id, reply_markup=KEYBOARD
        )
    # Leaving reply_markup out of editMessageText drops the keyboard, so that is a change.
    edited = await echo.bot.edit_message_text(
        "<b>Card</b>", chat_id=dave.chat_id, message_id=sent.message_id, parse_mode="HTML"
    )
    assert isinstance(edited, type(sent)) and edited.reply_markup is None
    assert edited.edit_date is not None
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await echo.bot.edit_message_text("x", chat_id=dave.chat_id, message_id=999)
    raw = tg.calls_to("editMessageText")[0]
    assert raw.as_int("message_id") == sent.message_id
    assert raw.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "yes"
    assert NOT_MODIFIED.startswith("Bad Request: message is not modified")


async def test_send_message_validation(tg: FakeTelegram, echo: EchoBot) -> None:
    erin = tg.user(46)
    bot = echo.bot

    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(erin.chat_id, "<b>unclosed", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)can't parse entities"):
        await bot.send_message(erin.chat_id, "Tom & Jerry", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match=r"(?i)message is too long"):
        await bot.send_message(erin.chat_id, "x" * 4097)
    assert (await bot.send_message(erin.chat_id, "x" * 4096)).text == "x" * 4096
    with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
        await bot.send_message(erin.chat_id, "  ")
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])
    with pytest.raises(BadRequest, match=r"(?i)button_data_invalid"):
        await bot.send_message(erin.chat_id, "hi", reply_markup=too_long_data)
    bad_url = InlineKeyboardMarkup([[InlineKeyboardButton("x", url="javascript:alert(1)")]])
    with pytest.raises(BadRequest, match=r"(?i)button_url_invalid"):
        await bot.send_message(erin.chat_id, "hi", reply_markup=bad_url)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(999_999, "hi")
    erin.blocked = True
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(erin.chat_id, "hi")
    assert [m.text for m in tg.chat_messages(erin.chat_id)] == ["x" * 4096]


async def test_commands_round_trip(tg: FakeTelegram, echo: EchoBot) -> None:
    await echo.bot.set_my_commands([("start", "Start"), ("new", "New invoice")])
    await echo.bot.set_my_commands([("start", "Starten")], language_code="de")

    assert [c.command for c in await echo.bot.get_my_commands()] == ["start", "new"]
    assert [c.description for c in await echo.bot.get_my_commands(language_code="de")] == [
        "Starten"
    ]
    with pytest.raises(BadRequest, match=r"(?i)bot_command_invalid"):
        await echo.bot.set_my_commands([("Start", "Start")])
    await echo.bot.delete_my_commands()
    assert await echo.bot.get_my_commands() == ()
    assert await echo.bot.send_chat_action(tg.user(47).chat_id, "typing") is True


async def test_wrong_token_is_unauthorized(tg: FakeTelegram) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{tg.base_url}999:WRONG/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}

    with pytest.raises(InvalidToken):
        async with Bot("999:WRONG", base_url=tg.base_url):
            pass
    assert tg.calls == []


# --------------------------------------------------------------------------- raw HTTP


async def test_get_updates_offset_limit_and_long_poll(tg: FakeTelegram) -> None:
    frank = tg.user(48, first_name="Frank")
    url = f"{tg.base_url}{tg.token}/getUpdates"
    first = await frank.send("/start@invoice_test_bot now")
    second = await frank.send("hello")
    assert second == first + 1 and tg.pending_updates() == 2

    async with httpx.AsyncClient(timeout=5) as client:
        body = (await client.post(url, data={"timeout": "0"})).json()
        assert [u["update_id"] for u in body["result"]] == [first, second]
        message = body["result"][0]["message"]
        assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 23}]
        assert message["from"] == {
            "id": 48,
            "is_bot": False,
            "first_name": "Frank",
            "language_code": "en",
        }
        assert "entities" not in body["result"][1]["message"]

        body = (await client.post(url, data={"offset": str(first + 1), "limit": "1"})).json()
        assert [u["update_id"] for u in body["result"]] == [second]
        assert tg.pending_updates() == 1

        # A long poll is woken by a new update instead of running out its timeout.
        loop = asyncio.get_running_loop()
        started = loop.time()
        poll = asyncio.create_task(client.post(url, data={"offset": second + 1, "timeout": 30}))
        await asyncio.sleep(0.05)
        third = await frank.send("wake up")
        assert [u["update_id"] for u in (await poll).json()["result"]] == [third]
        assert loop.time() - started < 0.9, "woken by the update, not by the 1 s cap"

        # With nothing to deliver, the wait is capped at 1 s whatever the bot asked for.
        started = loop.time()
        empty = await client.post(url, data={"offset": third + 1, "timeout": 50})
        assert empty.json() == {"ok": True, "result": []}
        assert 0.9 < loop.time() - started < 3
        assert tg.pending_updates() == 0

        hook = f"{tg.base_url}{tg.token}/setWebhook"
        assert (await client.post(hook, data={"url": "https://x.example/hook"})).json()["ok"]
        conflict = await client.post(url)
        assert conflict.status_code == 409
        info = (await client.get(f"{tg.base_url}{tg.token}/getWebhookInfo")).json()
        assert info["result"]["url"] == "https://x.example/hook"


async def test_parameter_decoding_and_generic_methods(tg: FakeTelegram) -> None:
    gina = tg.user(49)
    base = f"{tg.base_url}{tg.token}"
    markup = '{"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}'
    async with httpx.AsyncClient() as client:
        form = await client.post(
            f"{base}/SENDMESSAGE?disable_notification=true",
            data={"chat_id": "49", "text": "[1, 2]", "reply_markup": markup},
        )
        sent = form.json()["result"]
        assert sent["text"] == "[1, 2]"
        assert sent["reply_markup"]["inline_keyboard"][0][0]["text"] == "Go"
        as_json = await client.post(
            f"{base}/editMessageText",
            json={"chat_id": 49, "message_id": sent["message_id"], "text": "edited"},
        )
        assert as_json.json()["result"]["text"] == "edited"
        upload = await client.post(
            f"{base}/sendDocument",
            data={"chat_id": "49", "caption": "{not json"},
            files={"document": ("a.pdf", b"%PDF\r\n\n\x00", "application/pdf")},
        )
        assert upload.json() == {"ok": True, "result": True}
        answer = await client.post(f"{base}/answerCallbackQuery", data={"callback_query_id": "1"})
        assert answer.status_code == 400
        missing = await client.get(f"{tg.server_url}/nowhere")
        assert missing.status_code == 404

    call = tg.calls_to("sendMessage")[0]
    assert call.method == "sendMessage"
    assert call.params["chat_id"] == 49
    assert call.as_bool("disable_notification") is True
    assert call.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]
    }
    document = tg.calls_to("senddocument")[0].params
    assert document["caption"] == "{not json"
    assert document["document"] == UploadedFile("a.pdf", "application/pdf", b"%PDF\r\n\n\x00")
    message = gina.last_message()
    assert (message.text, message.edits, message.reply_markup) == ("edited", 1, None)

    update_id = await gina.press_data("forged" * 20, message)
    query_id = tg.update(update_id)["callback_query"]["id"]
    async with httpx.AsyncClient() as client:
        url = f"{base}/answerCallbackQuery"
        ok = await client.post(url, data={"callback_query_id": query_id, "text": "hi"})
        again = await client.post(url, data={"callback_query_id": query_id})
    assert ok.json()["result"] is True
    assert again.json()["description"].startswith("Bad Request: query is too old")
    assert gina.answers() == [{"callback_query_id": query_id, "text": "hi"}]


async def test_failures_and_diagnostics(tg: FakeTelegram) -> None:
    hank = tg.user(50)
    tg.fail_next("sendMessage", "Too Many Requests: retry after 3", 429, retry_after=3)
    async with httpx.AsyncClient() as client:
        url = f"{tg.base_url}{tg.token}/sendMessage"
        limited = await client.post(url, data={"chat_id": 50, "text": "a"})
        fine = await client.post(url, data={"chat_id": 50, "text": "b"})
    assert limited.status_code == 429
    assert limited.json()["parameters"] == {"retry_after": 3}
    assert fine.json()["ok"] is True

    with pytest.raises(AssertionError, match=r"(?s)never called getUpdates.*sendMessage"):
        await hank.reply("anyone there?", timeout=0.05)
    with pytest.raises(AssertionError, match="wait_for"):
        await tg.wait_for(lambda: tg.calls_to("editMessageText"), timeout=0.05)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("<b>bold", "Can't find end tag"),
        ("<b><i>x</b></i>", "Unmatched end tag"),
        ("</b>", "Unexpected end tag"),
        ("a & b", '"&"'),
        ("a &nbsp; b", '"&"'),
        ("1 < 2", "Unclosed start tag"),
        ("2 > 1", '">"'),
        ("<div>x</div>", 'Unsupported start tag "div"'),
        ("<br>", 'Unsupported start tag "br"'),
        ("<span>x</span>", "tg-spoiler"),
        ("<b", "Unclosed start tag"),
    ],
)
def test_html_rejects_bad_markup(source: str, error: str) -> None:
    with pytest.raises(HtmlParseError, match=error):
        parse_telegram_html(source)


def test_html_produces_text_and_utf16_entities() -> None:
    source = (
        '😀 <b>bold <i>both</i></b> <a href="https://x.example/?a=1&amp;b=2">link</a>\n'
        '<pre><code class="language-python">x = "&lt;&#65;&#x42;&quot;"</code></pre>'
        '<span class="tg-spoiler">s</span><blockquote expandable>q</blockquote>'
    )
    text, entities = parse_telegram_html(source)
    assert text == '😀 bold both link\nx = "<AB""sq'
    assert entities == [
        {"type": "bold", "offset": 3, "length": 9},
        {"type": "italic", "offset": 8, "length": 4},
        {"type": "text_link", "offset": 13, "length": 4, "url": "https://x.example/?a=1&b=2"},
        {"type": "pre", "offset": 18, "length": 10, "language": "python"},
        {"type": "spoiler", "offset": 28, "length": 1},
        {"type": "expandable_blockquote", "offset": 29, "length": 1},
    ]


# --------------------------------------------------------------------------- deep links


async def test_start_payload_of_a_stranger_reaches_command_args(
    tg: FakeTelegram, echo: EchoBot
) -> None:
    # A payer the bot has never seen opens t.me/invoice_test_bot?start=<token>.
    token = "inv_AbC-9" + "x" * 55
    assert len(token) == 64
    payer = tg.user(900, "Ada", language_code="fr", last_name="Lovelace", username="ada")

    update_id = await payer.send(f"/start {token}")
    reply = await tg.wait_for(lambda: payer.messages_since(update_id))

    assert reply[-1].text == f"Hello, Ada! args=['{token}']"
    message = tg.update(update_id)["message"]
    assert message["text"] == f"/start {token}"
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert message["from"] == {
        "id": 900,
        "is_bot": False,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": "ada",
        "language_code": "fr",
    }
    assert message["chat"] == {"id": 900, "first_name": "Ada", "type": "private"}
    seen = echo.seen[-1]
    assert seen.effective_user is not None and seen.effective_user.language_code == "fr"


# --------------------------------------------------------------------------- inline mode

PAY = InlineKeyboardMarkup([[InlineKeyboardButton("Pay", callback_data="pay")]])


@dataclass
class InlineBot:
    app: App
    seen: list[Update] = field(default_factory=list)

    def chosen(self) -> list[ChosenInlineResult]:
        return [u.chosen_inline_result for u in self.seen if u.chosen_inline_result]


@pytest.fixture
async def inline_bot(tg: FakeTelegram) -> AsyncIterator[InlineBot]:
    app: App = Application.builder().token(tg.token).base_url(tg.base_url).build()
    inline = InlineBot(app)

    async def on_query(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        inline.seen.append(update)
        query = update.inline_query
        assert query is not None
        text = f"<b>Invoice</b> {html.escape(query.query)}"
        await query.answer(
            [
                InlineQueryResultArticle(
                    "card-1",
                    f"Invoice {query.query}",
                    InputTextMessageContent(text, parse_mode=ParseMode.HTML),
                    reply_markup=PAY,
                ),
                InlineQueryResultArticle("plain", "Plain", InputTextMessageContent("plain")),
            ],
            cache_time=0,
            is_personal=True,
            button=InlineQueryResultsButton("Add a customer", start_parameter="add_customer"),
        )

    async def on_chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        inline.seen.append(update)
        chosen = update.chosen_inline_result
        assert chosen is not None
        if chosen.inline_message_id:
            await context.bot.edit_message_text(
                f"Invoice for {chosen.query}: waiting",
                inline_message_id=chosen.inline_message_id,
                reply_markup=PAY,
            )

    async def on_press(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        inline.seen.append(update)
        query = update.callback_query
        assert query is not None
        await query.answer("ok")
        await query.edit_message_text(f"Paid by {query.from_user.first_name}")

    async def on_message(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        inline.seen.append(update)

    app.add_handler(InlineQueryHandler(on_query))
    app.add_handler(ChosenInlineResultHandler(on_chosen))
    app.add_handler(CallbackQueryHandler(on_press))
    app.add_handler(MessageHandler(filters.ALL, on_message))
    async with _polling(app):
        yield inline


async def test_inline_card_is_posted_edited_and_pressed_by_anyone(
    tg: FakeTelegram, inline_bot: InlineBot
) -> None:
    merchant = tg.user(60, "Grace")
    payer = tg.user(61, "Ada")

    answer = await merchant.ask_inline("150 EUR Consulting", chat_type="private")

    assert answer.ids() == ["card-1", "plain"]
    assert answer.result("consulting")["id"] == "card-1"
    assert answer.button == {"text": "Add a customer", "start_parameter": "add_customer"}
    assert (answer.is_personal, answer.cache_time) == (True, 0)
    query = inline_bot.seen[0].inline_query
    assert query is not None
    assert (query.query, query.chat_type, query.offset) == ("150 EUR Consulting", "private", "")
    with pytest.raises(AssertionError, match="'card-1' \\('Invoice"):
        answer.result("nothing like this")

    # The merchant taps the result in their chat with the payer (chat id = payer's id).
    card = await merchant.choose_inline(answer, "card-1", chat_id=payer.id)

    assert card.inline_message_id is not None
    assert (card.chat_id, card.text) == (payer.id, "Invoice 150 EUR Consulting")
    assert card.html == "<b>Invoice</b> 150 EUR Consulting"
    assert card.raw["from"]["id"] == merchant.id
    assert card.raw["via_bot"]["username"] == BOT_USER["username"]
    assert card.raw["entities"] == [{"type": "bold", "offset": 0, "length": 7}]
    assert [b.text for b in card.buttons()] == ["Pay"]
    assert tg.chat_messages(payer.id) == [], "the payer's chat with the bot is another chat"

    edited = await tg.wait_for(lambda: tg.inline_message(card.inline_message_id or "").edits)
    assert edited == 1
    waiting = tg.inline_message(card.inline_message_id)
    assert waiting.text == "Invoice for 150 EUR Consulting: waiting"
    chosen = inline_bot.chosen()[-1]
    assert (chosen.result_id, chosen.query) == ("card-1", "150 EUR Consulting")
    assert chosen.inline_message_id == card.inline_message_id
    assert chosen.from_user.id == merchant.id

    # Anyone in that chat may press it; the query names the inline message, not a Message.
    paid = await payer.click(waiting, "Pay")

    assert paid.text == "Paid by Ada"
    assert paid.inline_message_id == card.inline_message_id and paid.edits == 2
    press = inline_bot.seen[-1].callback_query
    assert press is not None and press.message is None
    assert press.inline_message_id == card.inline_message_id
    assert press.chat_instance and press.from_user.id == payer.id
    assert payer.answers()[-1]["text"] == "ok"
    assert tg.calls_to("ANSWERINLINEQUERY") and tg.calls_to("editmessagetext")

    # Without an inline keyboard Telegram gives the bot no inline_message_id.
    await merchant.choose_inline(answer, "plain", chat_id=payer.id)
    await tg.wait_for(lambda: len(inline_bot.chosen()) == 2)
    assert inline_bot.chosen()[-1].inline_message_id is None
    assert [m.text for m in tg.inline_messages(payer.id)] == ["Paid by Ada", "plain"]
    with pytest.raises(AssertionError, match="only the user who typed"):
        await payer.choose_inline(answer, "card-1", chat_id=merchant.id)


async def test_inline_result_posted_in_the_bots_own_chat_is_a_message_too(
    tg: FakeTelegram, inline_bot: InlineBot
) -> None:
    merchant = tg.user(62, "Grace")
    answer = await merchant.ask_inline("own chat")

    posted = await merchant.choose_inline(answer, "plain", chat_id=merchant.chat_id)

    seen = await tg.wait_for(lambda: [u.message for u in inline_bot.seen if u.message])
    assert seen[0].via_bot is not None and seen[0].via_bot.id == BOT_USER["id"]
    assert seen[0].text == "plain" and seen[0].message_id == posted.message_id
    # The posted message took its id from the chat it is in: the user's chat with the bot.
    assert tg.inline_message(posted.inline_message_id or "").raw["chat"]["id"] == merchant.id


async def test_answer_inline_query_is_validated_like_telegram(tg: FakeTelegram, bot: Bot) -> None:
    user = tg.user(63, "Grace")
    update_id = user.inline_query("x")
    query_id = tg.update(update_id)["inline_query"]["id"]

    def article(result_id: str, **extra: Any) -> dict[str, Any]:
        content = {"message_text": "hi"}
        return {
            "type": "article",
            "id": result_id,
            "title": "T",
            "input_message_content": content,
        } | extra

    async def refused(match: str, **kwargs: Any) -> None:
        # api_kwargs override what PTB would send, to send what PTB's classes cannot.
        with pytest.raises(BadRequest, match=f"(?i){re.escape(match)}"):
            await bot.answer_inline_query(query_id, [], api_kwargs=kwargs)

    await refused("too many inline query results", results=[article(str(i)) for i in range(51)])
    await refused("RESULT_ID_DUPLICATE", results=[article("a"), article("a")])
    await refused("RESULT_ID_INVALID", results=[article("x" * 65)])
    await refused(
        'Can\'t find field "title"',
        results=[{"type": "article", "id": "1", "input_message_content": {"message_text": "hi"}}],
    )
    await refused("ARTICLE_TITLE_EMPTY", results=[article("1", title="")])
    await refused(
        "Input message content is not specified",
        results=[article("1", input_message_content={"parse_mode": "HTML"})],
    )
    await refused(
        "can't parse inline query result: Can't parse entities",
        results=[
            article("1", input_message_content={"message_text": "<b>x", "parse_mode": "HTML"})
        ],
    )
    await refused('type "poll" is unsupported', results=[{"type": "poll", "id": "1"}])
    await refused(
        "inline keyboard expected",
        results=[article("1", reply_markup={"keyboard": [[{"text": "x"}]]})],
    )
    await refused(
        "BUTTON_DATA_INVALID",
        results=[
            article("1", reply_markup={"inline_keyboard": [[{"text": "x", "callback_data": ""}]]})
        ],
    )
    await refused(
        "unallowed characters in start_parameter", button={"text": "Go", "start_parameter": "a b"}
    )
    await refused("too long start_parameter", button={"text": "Go", "start_parameter": "a" * 65})
    await refused("can't use empty start_parameter", button={"text": "Go", "start_parameter": ""})
    await refused("exactly one optional field", button={"text": "Go"})
    await refused(
        "exactly one optional field",
        button={"text": "Go", "start_parameter": "a", "web_app": {"url": "https://x.example"}},
    )
    await refused(
        "PHOTO_THUMB_URL_EMPTY",
        results=[{"type": "photo", "id": "p", "photo_url": "https://x.example/a.jpg"}],
    )
    await refused(
        "wrong file identifier", results=[{"type": "photo", "id": "p", "photo_file_id": "nope"}]
    )
    await refused("NEXT_OFFSET_INVALID", results=[], next_offset="o" * 65)
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_inline_query("123", [])

    # Refused answers do not use the query up; the first accepted one does.
    ok = await bot.answer_inline_query(
        query_id,
        [InlineQueryResultArticle("a", "A", InputTextMessageContent("a"))],
        next_offset="page-2",
        button=InlineQueryResultsButton("Add", start_parameter="add-1_X"),
    )
    assert ok is True
    answer = tg.inline_answer(update_id)
    assert answer is not None and answer.ids() == ["a"] and answer.next_offset == "page-2"
    assert answer.cache_time == 300 and answer.is_personal is False
    with pytest.raises(BadRequest) as again:
        await bot.answer_inline_query(query_id, [])
    assert again.value.message == _ptb_message(QUERY_INVALID)

    tg.inline_query_timeout = 0.0
    late = tg.update(user.inline_query("late"))["inline_query"]["id"]
    with pytest.raises(BadRequest, match=r"(?i)query is too old"):
        await bot.answer_inline_query(late, [])
    assert len(tg.calls_to("answerInlineQuery")) == 22


async def test_ask_inline_explains_a_refused_answer(tg: FakeTelegram, bot: Bot) -> None:
    user = tg.user(64, "Grace")

    async def answer_badly() -> None:
        await tg.wait_for(lambda: tg.pending_updates() == 1)
        query = (await bot.get_updates())[0].inline_query
        assert query is not None
        with pytest.raises(BadRequest):
            await bot.answer_inline_query(
                query.id, [InlineQueryResultArticle("a", "", InputTextMessageContent("a"))]
            )

    task = asyncio.create_task(answer_badly())
    with pytest.raises(
        AssertionError,
        match=r"(?s)answer inline query 'q'.*refused: Bad Request: ARTICLE_TITLE_EMPTY",
    ):
        await user.ask_inline("q", timeout=0.5)
    await task


async def test_edit_by_inline_message_id(tg: FakeTelegram, bot: Bot) -> None:
    merchant = tg.user(65, "Grace")
    update_id = merchant.inline_query("card", chat_type="supergroup")
    query_id = tg.update(update_id)["inline_query"]["id"]
    await bot.answer_inline_query(
        query_id,
        [
            InlineQueryResultArticle(
                "a", "Card", InputTextMessageContent("Card v1"), reply_markup=KEYBOARD
            )
        ],
    )
    answer = tg.inline_answer(update_id)
    assert answer is not None
    card = await merchant.choose_inline(answer, "a", chat_id=-1001234)
    inline_id = card.inline_message_id
    assert inline_id is not None and card.raw["chat"] == {"id": -1001234, "type": "supergroup"}

    updates = await bot.get_updates()
    chosen = updates[-1].chosen_inline_result
    assert chosen is not None and chosen.inline_message_id == inline_id
    assert updates[-1].to_dict()["chosen_inline_result"] == {
        "result_id": "a",
        "from": merchant.as_telegram(),
        "query": "card",
        "inline_message_id": inline_id,
    }

    edited = await bot.edit_message_text(
        "<b>Card</b> v2", inline_message_id=inline_id, parse_mode=ParseMode.HTML
    )
    assert edited is True, "the Bot API answers True, not a Message, for inline messages"
    now = tg.inline_message(inline_id)
    assert (now.text, now.edits, now.reply_markup) == ("Card v2", 1, None)
    assert now.raw["entities"] == [{"type": "bold", "offset": 0, "length": 4}]
    assert card.edits == 0 and card.text == "Card v1"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text(
            "<b>Card</b> v2", inline_message_id=inline_id, parse_mode="HTML"
        )
    assert await bot.edit_message_reply_markup(inline_message_id=inline_id, reply_markup=KEYBOARD)
    assert tg.inline_message(inline_id).buttons()[0].callback_data == "yes"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_reply_markup(inline_message_id=inline_id, reply_markup=KEYBOARD)
    with pytest.raises(BadRequest, match=r"(?i)there is no caption in the message to edit"):
        await bot.edit_message_caption(inline_message_id=inline_id, caption="x")
    unknown = base64.urlsafe_b64encode(bytes(24)).decode().rstrip("=")
    with pytest.raises(BadRequest) as error:
        await bot.edit_message_text("x", inline_message_id=unknown)
    assert error.value.message == _ptb_message(MESSAGE_ID_INVALID)
    with pytest.raises(BadRequest) as error:
        await bot.edit_message_text("x", inline_message_id="not an id!")
    assert error.value.message == _ptb_message(INLINE_MESSAGE_ID_INVALID)
    assert tg.calls_to("editMessageText")[0].params["inline_message_id"] == inline_id
    with pytest.raises(AssertionError, match="no inline message 'nope'"):
        tg.inline_message("nope")


# --------------------------------------------------------------------------- photos


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00" + b"\x0d\x0a" * (width // 2) + b"\xff" * (width % 2) for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def _jpeg(width: int, height: int) -> bytes:
    """Just the markers a reader needs for the size (the fake does not decode pixels)."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0 + b"\xff\xd9"


async def test_send_photo_upload_round_trips_bytes(tg: FakeTelegram, bot: Bot) -> None:
    ada = tg.user(70, "Ada")
    png = _png(410, 410)

    sent = await bot.send_photo(
        ada.chat_id,
        png,
        caption="<b>150 EUR</b> · Consulting",
        parse_mode=ParseMode.HTML,
        reply_markup=KEYBOARD,
    )

    assert [(p.width, p.height) for p in sent.photo] == [(90, 90), (320, 320), (410, 410)]
    assert sent.photo[-1].file_size == len(png)
    assert sent.caption == "150 EUR · Consulting"
    assert [e.type for e in sent.caption_entities] == ["bold"]
    upload = tg.calls_to("sendPhoto")[0].params["photo"]
    assert isinstance(upload, UploadedFile) and upload.data == png, "sent as multipart"
    message = ada.last_message()
    assert message.photo == png and message.is_photo
    assert (message.text, message.caption) == ("150 EUR · Consulting", "150 EUR · Consulting")
    assert message.html == "<b>150 EUR</b> · Consulting"
    assert message.button("Yes").callback_data == "yes"

    again = await bot.send_photo(ada.chat_id, sent.photo[-1].file_id)
    assert again.photo == sent.photo and again.caption is None
    assert ada.last_message().photo == png and ada.last_message().text == ""
    by_url = await bot.send_photo(ada.chat_id, "https://x.example/qr.png", caption="url")
    assert by_url.photo[-1].width == 512 and ada.last_message().photo is None
    tall = await bot.send_photo(ada.chat_id, _jpeg(300, 1000))
    assert (tall.photo[-1].width, tall.photo[-1].height) == (300, 1000)

    edited = await bot.edit_message_caption(ada.chat_id, sent.message_id, caption="Paid")
    assert isinstance(edited, Message) and edited.caption == "Paid" and not edited.caption_entities
    assert edited.reply_markup is None, "leaving reply_markup out drops the keyboard"
    assert tg.chat_messages(ada.chat_id)[0].text == "Paid"
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_caption(ada.chat_id, sent.message_id, caption="Paid")
    with pytest.raises(BadRequest, match=r"(?i)there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=ada.chat_id, message_id=sent.message_id)
    removed = await bot.edit_message_caption(ada.chat_id, sent.message_id, caption="")
    assert isinstance(removed, Message) and removed.caption is None

    with pytest.raises(BadRequest, match=r"(?i)IMAGE_PROCESS_FAILED"):
        await bot.send_photo(ada.chat_id, b"not an image")
    with pytest.raises(BadRequest, match=r"(?i)PHOTO_INVALID_DIMENSIONS"):
        await bot.send_photo(ada.chat_id, _jpeg(2100, 100))
    with pytest.raises(BadRequest, match=r"(?i)wrong file identifier/HTTP URL specified"):
        await bot.send_photo(ada.chat_id, "AgACAgunknown")
    with pytest.raises(BadRequest, match=r"(?i)message caption is too long"):
        await bot.send_photo(ada.chat_id, png, caption="x" * 1025)
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_photo(999_999, png)


async def test_send_photo_attach_and_inline_photo_result(tg: FakeTelegram, bot: Bot) -> None:
    ada = tg.user(71, "Ada")
    png = _png(64, 32)
    async with httpx.AsyncClient() as client:
        response = await client.post(
            f"{tg.base_url}{tg.token}/sendPhoto",
            data={"chat_id": "71", "photo": "attach://qr", "caption": "{not json"},
            files={"qr": ("qr.png", png, "image/png")},
        )
        missing = await client.post(f"{tg.base_url}{tg.token}/sendPhoto", data={"chat_id": "71"})
    photo = response.json()["result"]["photo"]
    assert photo[-1]["width"] == 64 and ada.last_message().photo == png
    assert ada.last_message().caption == "{not json"
    assert missing.json()["description"] == "Bad Request: there is no photo in the request"

    # An inline photo result re-sends a stored photo by file_id, with its caption.
    update_id = ada.inline_query("qr")
    query_id = tg.update(update_id)["inline_query"]["id"]
    await bot.answer_inline_query(
        query_id,
        [
            InlineQueryResultCachedPhoto(
                "p", photo[-1]["file_id"], caption="<i>Scan</i>", parse_mode=ParseMode.HTML
            )
        ],
    )
    answer = tg.inline_answer(update_id)
    assert answer is not None
    posted = await ada.choose_inline(answer, "p", chat_id=555)
    assert posted.photo == png and posted.caption == "Scan" and posted.is_photo
    assert await bot.edit_message_caption(
        inline_message_id=posted.inline_message_id, caption="Paid"
    )
    assert tg.inline_message(posted.inline_message_id or "").text == "Paid"


# --------------------------------------------------------------------------- Telegram Business


async def test_business_connection_and_messages(tg: FakeTelegram, bot: Bot) -> None:
    owner = tg.user(80, "Grace", username="grace_shop")
    customer = tg.user(81, "Ada")

    connection_id = tg.connect_business(owner)
    update_id = await customer.write_business(owner, "Hi, is the invoice ready?")

    updates = await bot.get_updates()
    connection = updates[0].business_connection
    assert connection is not None and connection.id == connection_id
    assert connection.user.id == owner.id and connection.user_chat_id == owner.chat_id
    assert connection.is_enabled and connection.rights is not None and connection.rights.can_reply
    incoming = updates[1].business_message
    assert incoming is not None and updates[1].update_id == update_id
    raw = tg.update(update_id)["business_message"]
    assert raw["business_connection_id"] == connection_id
    assert raw["from"]["id"] == customer.id
    assert raw["chat"] == {"id": customer.id, "first_name": "Ada", "type": "private"}
    fetched = await bot.get_business_connection(connection_id)
    assert fetched.id == connection_id and fetched.user.username == "grace_shop"
    with pytest.raises(BadRequest) as unknown:
        await bot.get_business_connection("nope")
    assert unknown.value.message == _ptb_message(BUSINESS_CONNECTION_NOT_FOUND)

    # The bot answers as the owner, in the owner's chat with the customer.
    sent = await bot.send_message(
        customer.id,
        "<b>150 EUR</b>",
        parse_mode="HTML",
        reply_markup=PAY,
        business_connection_id=connection_id,
    )
    assert sent.from_user is not None and sent.from_user.id == owner.id
    assert sent.sender_business_bot is not None and sent.sender_business_bot.id == BOT_USER["id"]
    assert sent.business_connection_id == connection_id and sent.chat.id == customer.id
    card = tg.business_messages(connection_id, customer.id)[0]
    press_id = await customer.press(card.button("Pay"), card)
    press = tg.update(press_id)["callback_query"]
    assert press["message"]["business_connection_id"] == connection_id
    assert press["from"]["id"] == customer.id
    with pytest.raises(AssertionError, match="not in the business chat"):
        await tg.user(85, "Eve").press(card.button("Pay"), card)
    qr = await bot.send_photo(
        customer.id, _png(100, 100), caption="QR", business_connection_id=connection_id
    )
    assert qr.photo and qr.business_connection_id == connection_id
    edited = await bot.edit_message_text(
        "Paid",
        chat_id=customer.id,
        message_id=sent.message_id,
        business_connection_id=connection_id,
    )
    assert isinstance(edited, Message) and edited.text == "Paid" and edited.reply_markup is None
    assert await bot.edit_message_caption(
        customer.id, qr.message_id, caption="QR paid", business_connection_id=connection_id
    )
    messages = tg.business_messages(connection_id, customer.id)
    assert [(m.message_id, m.text) for m in messages] == [(2, "Paid"), (3, "QR paid")]
    assert messages[0].business_connection_id == connection_id and messages[1].photo
    assert tg.chat_messages(customer.id) == [], "the customer's chat with the bot is another chat"
    with pytest.raises(BadRequest, match=r"(?i)message can't be edited"):
        await bot.edit_message_text(
            "x", chat_id=customer.id, message_id=1, business_connection_id=connection_id
        )
    assert tg.calls_to("getBusinessConnection") and len(tg.calls_to("sendPhoto")) == 1


async def test_business_sends_are_refused_like_telegram(tg: FakeTelegram, bot: Bot) -> None:
    owner = tg.user(82, "Grace")
    customer = tg.user(83, "Ada")
    stranger = tg.user(84, "Bob")
    connection_id = tg.connect_business(owner)
    await customer.write_business(owner, "hello")

    async def send(chat_id: int, connection: str = connection_id) -> Message:
        return await bot.send_message(chat_id, "Invoice", business_connection_id=connection)

    async def refused(description: str, chat_id: int, connection: str = connection_id) -> None:
        with pytest.raises(BadRequest) as error:
            await send(chat_id, connection)
        assert error.value.message == _ptb_message(description)

    card = await send(customer.id)
    await refused(BUSINESS_CONNECTION_NOT_FOUND, customer.id, "unknown")
    await refused(BUSINESS_PEER_USAGE_MISSING, stranger.id)
    await refused("Bad Request: messages must not be sent to self", owner.id)
    await refused("Bad Request: chat must be a private chat", -100123)

    # More than 24 hours after the customer's last message, sends and edits are refused.
    tg.age_business_chat(connection_id, customer.id, hours=24.5)
    await refused(BUSINESS_PEER_USAGE_MISSING, customer.id)
    with pytest.raises(BadRequest, match=r"(?i)BUSINESS_PEER_USAGE_MISSING"):
        await bot.edit_message_text(
            "Paid",
            chat_id=customer.id,
            message_id=card.message_id,
            business_connection_id=connection_id,
        )
    # The owner's own messages do not reopen the window; the customer's do.
    by_owner = await owner.write_business_as_owner(customer, "Still there?")
    assert tg.update(by_owner)["business_message"]["from"]["id"] == owner.id
    await refused(BUSINESS_PEER_USAGE_MISSING, customer.id)
    await customer.write_business(owner, "yes")
    assert (await send(customer.id)).text == "Invoice"

    assert tg.connect_business(owner, can_reply=False) == connection_id
    await refused(BUSINESS_REPLY_FORBIDDEN, customer.id)
    tg.connect_business(owner, enabled=False)
    await refused(BUSINESS_CONNECTION_DISABLED, customer.id)
    fetched = await bot.get_business_connection(connection_id)
    # Each call states the whole connection: can_reply is back to its default, True.
    assert not fetched.is_enabled and fetched.rights is not None and fetched.rights.can_reply
    updates = [u for u in await bot.get_updates() if u.business_connection]
    assert [u.business_connection.is_enabled for u in updates if u.business_connection] == [
        True,
        True,
        False,
    ]
    with pytest.raises(AssertionError, match="no enabled business connection"):
        await customer.write_business(owner, "anyone?")
    with pytest.raises(AssertionError, match="never wrote"):
        tg.age_business_chat(connection_id, stranger.id, hours=1)


# --------------------------------------------------------------------------- delivery, diagnostics


async def test_allowed_updates_filter_what_the_bot_receives(tg: FakeTelegram) -> None:
    user = tg.user(90, "Grace")
    url = f"{tg.base_url}{tg.token}/getUpdates"
    async with httpx.AsyncClient(timeout=5) as client:
        await client.post(url, data={"timeout": 0, "allowed_updates": json.dumps(["message"])})
        dropped = user.inline_query("invisible")
        kept = await user.send("visible")
        body = (await client.post(url, data={"timeout": 0})).json()
        assert [u["update_id"] for u in body["result"]] == [kept]
        with pytest.raises(AssertionError, match=r"2 updates \(inline_query\) were not delivered"):
            await user.ask_inline("still invisible", timeout=0.05)
        # An empty list restores Telegram's default set, which includes inline queries.
        await client.post(url, data={"timeout": 0, "offset": kept + 1, "allowed_updates": "[]"})
        update_id = user.inline_query("seen")
        body = (await client.post(url, data={"timeout": 0, "offset": kept + 1})).json()
    assert [u["update_id"] for u in body["result"]] == [update_id]
    assert tg.update(dropped)["inline_query"]["query"] == "invisible"


async def test_wait_for_diagnostics_show_inline_and_business_messages(
    tg: FakeTelegram, bot: Bot
) -> None:
    owner = tg.user(91, "Grace")
    customer = tg.user(92, "Ada")
    connection_id = tg.connect_business(owner)
    await customer.write_business(owner, "hi")
    await bot.send_message(customer.id, "Card in business", business_connection_id=connection_id)
    update_id = owner.inline_query("x")
    await bot.answer_inline_query(
        tg.update(update_id)["inline_query"]["id"],
        [InlineQueryResultArticle("a", "A", InputTextMessageContent("Inline card"))],
    )
    answer = tg.inline_answer(update_id)
    assert isinstance(answer, InlineAnswer)
    await owner.choose_inline(answer, "a", chat_id=customer.id)
    owner.inline_query("never answered")

    with pytest.raises(AssertionError) as error:
        await tg.wait_for(lambda: False, timeout=0.05)

    text = str(error.value)
    assert "inline messages elsewhere: 1" in text and "'Inline card'" in text
    assert f"business connection {connection_id!r} of user 91: enabled=True" in text
    assert "business chat of 91 with 92 (customer wrote 0.0h ago): 1 sent by the bot" in text
    assert "'Card in business'" in text
    assert "unanswered inline query 'never answered' from user 91" in text


def test_inline_answer_helpers() -> None:
    answer = InlineAnswer(
        "1", "q", [{"id": "7", "type": "article", "title": "Invoice #7"}], None, False, 0
    )
    assert answer.result("7")["title"] == "Invoice #7"
    assert answer.result("#7")["id"] == "7"
    assert answer.ids() == ["7"]
