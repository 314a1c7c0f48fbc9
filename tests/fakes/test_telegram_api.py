"""Self-test of the fake Bot API, driven by a real python-telegram-bot Application.

If PTB and the fake disagree on the wire format, every bot test built on the fake would
be testing fiction; these tests pin the contract down.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from tests.fakes.telegram_api import (
    BOT_USER,
    NOT_MODIFIED,
    FakeTelegram,
    HtmlParseError,
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


@pytest.fixture
async def echo(tg: FakeTelegram) -> AsyncIterator[EchoBot]:
    bot = _build_echo_bot(tg)
    app = bot.app
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0.0, timeout=1)
    try:
        yield bot
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


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
