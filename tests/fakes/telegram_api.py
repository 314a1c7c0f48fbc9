"""A fake Telegram Bot API server, so tests can drive the real PTB bot over real HTTP.

The bot under test is built with ``.base_url(fake.base_url)`` and long-polls this server;
tests then act as Telegram users through :class:`FakeUser`.  The fake deliberately mimics
the Bot API's picky behaviour (HTML validation, "message is not modified", button limits)
because those are the errors that break bots in production.

Besides the bot's own private chats it models three places a bot's messages can live:

* inline messages: a user asks the bot inline (:meth:`FakeUser.ask_inline`) and posts a
  result into some chat (:meth:`FakeUser.choose_inline`); the bot edits them only by
  ``inline_message_id`` and sees button presses without a ``message``;
* Telegram Business chats: the owner connects the bot (:meth:`FakeTelegram.connect_business`),
  customers write to the owner (:meth:`FakeUser.write_business`) and the bot answers as the owner
  with ``business_connection_id``, only within 24 hours of the customer's last message;
* photos (``sendPhoto``), kept with their uploaded bytes so tests can decode them.

Error texts follow the Bot API server's source (tdlib/telegram-bot-api ``Client.cpp``) and
TDLib where they could be read; the few guesses are marked UNSURE next to their constant.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import html as html_lib
import itertools
import json
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qsl, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import serve

__all__ = [
    "BOT_USER",
    "BUSINESS_CONNECTION_DISABLED",
    "BUSINESS_CONNECTION_NOT_FOUND",
    "BUSINESS_PEER_USAGE_MISSING",
    "BUSINESS_REPLY_FORBIDDEN",
    "INLINE_MESSAGE_ID_INVALID",
    "MESSAGE_ID_INVALID",
    "NOT_MODIFIED",
    "QUERY_INVALID",
    "BotMessage",
    "Button",
    "Call",
    "FakeTelegram",
    "FakeUser",
    "HtmlParseError",
    "InlineAnswer",
    "TelegramError",
    "UploadedFile",
    "parse_telegram_html",
]

T = TypeVar("T")

BOT_USER: dict[str, Any] = {
    "id": 7000001,
    "is_bot": True,
    "first_name": "InvoiceBot",
    "username": "invoice_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    # Inline mode and Business are switched on in @BotFather for the bot under test.
    "supports_inline_queries": True,
    "can_connect_to_business": True,
    "has_main_web_app": False,
}

# Messages carry only the identity part of the bot user, as on the real API.
_BOT_FROM = {key: BOT_USER[key] for key in ("id", "is_bot", "first_name", "username")}

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
MAX_INLINE_RESULTS = 50
MAX_INLINE_QUERY_LENGTH = 256
MAX_INLINE_ID_BYTES = 64
"""Inline result ids and ``next_offset`` are limited to 64 bytes (Bot API docs)."""
INLINE_QUERY_TIMEOUT_SECONDS = 10.0
"""UNSURE: Telegram does not document how long a query stays answerable; ~10 s in practice."""
BUSINESS_REPLY_WINDOW_SECONDS = 24 * 60 * 60
"""BusinessBotRights.can_reply: "send and edit messages in the private chats that had incoming
messages in the last 24 hours" (Bot API docs)."""
MAX_PHOTO_BYTES = 10 * 1024 * 1024
POLL_CAP_SECONDS = 1.0
"""Long-poll waits are capped so that stopping the bot never hangs a test for long."""
QUIET_PERIOD_SECONDS = 0.15
STEP_SECONDS = 0.01

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
MESSAGE_ID_INVALID = "Bad Request: MESSAGE_ID_INVALID"
"""An ``inline_message_id`` of the right shape that names no message (Telegram's server error)."""
INLINE_MESSAGE_ID_INVALID = "Bad Request: invalid inline message identifier specified"
"""TDLib's answer to an ``inline_message_id`` that is not even well-formed."""
BUSINESS_CONNECTION_NOT_FOUND = "Bad Request: business connection not found"
"""Unknown ``business_connection_id``: the Bot API server's own text (Client.cpp), verified."""
BUSINESS_PEER_USAGE_MISSING = "Bad Request: BUSINESS_PEER_USAGE_MISSING"
"""No incoming message from the customer in the last 24 hours: the MTProto error documented for
messages.sendMessage ("You cannot send a message to a user through a business connection if the
user hasn't recently contacted us"), which the Bot API passes on verbatim.  UNSURE whether edits
past the window get the same error."""
BUSINESS_CONNECTION_DISABLED = "Bad Request: BUSINESS_CONNECTION_INVALID"
"""UNSURE: the error for a connection the owner disabled (TDLib leaves the check to the server)."""
BUSINESS_REPLY_FORBIDDEN = "Bad Request: BOT_ACCESS_FORBIDDEN"
"""UNSURE: the error for a connection without ``can_reply``; MTProto documents 403
BOT_ACCESS_FORBIDDEN for business operations the bot may not do, and the Bot API turns
upper-case 403 errors into 400s."""

# Form fields whose values are free text: never JSON-decode them, even if they look like JSON.
_TEXT_FIELDS = frozenset(
    {
        "text",
        "caption",
        "message_text",
        "description",
        "short_description",
        "title",
        "name",
        "query",
        "question",
        "explanation",
        "url",
        "data",
        "callback_data",
        "payload",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "inline_query_id",
        "next_offset",
        "business_connection_id",
        "photo",
        "switch_pm_text",
        "switch_pm_parameter",
    }
)
_INT_FIELDS = frozenset(
    {
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "timeout",
        "user_id",
        "from_chat_id",
        "message_thread_id",
        "reply_to_message_id",
        "cache_time",
    }
)
_BUTTON_ACTIONS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_INT_RE = re.compile(r"-?\d+")
_BASE64URL_RE = re.compile(r"[A-Za-z0-9_-]+")
_INLINE_RESULT_TYPES = frozenset(
    {
        "article",
        "audio",
        "contact",
        "document",
        "game",
        "gif",
        "location",
        "mpeg4_gif",
        "photo",
        "sticker",
        "venue",
        "video",
        "voice",
    }
)
_INLINE_CHAT_TYPES = frozenset({"sender", "private", "group", "supergroup", "channel"})
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_PHOTO_SIZE_LIMITS = (90, 320, 800, 1280)
_MAX_PHOTO_SIDE = 2560

_KNOWN_METHODS = (
    "getMe",
    "deleteWebhook",
    "setWebhook",
    "getWebhookInfo",
    "getUpdates",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "editMessageCaption",
    "sendPhoto",
    "answerCallbackQuery",
    "answerInlineQuery",
    "getBusinessConnection",
    "setMyCommands",
    "deleteMyCommands",
    "getMyCommands",
    "sendChatAction",
    "close",
    "logOut",
)
_CANONICAL = {name.lower(): name for name in _KNOWN_METHODS}


class TelegramError(Exception):
    """A Bot API error reply, raised by method handlers and by ``FakeTelegram.fail_next``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad_request(reason: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {reason}")


def _utf16_len(text: str) -> int:
    """Telegram entity offsets/lengths are measured in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, kept so tests can inspect uploads."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Call:
    """One authorised Bot API request as the fake decoded it."""

    method: str
    params: dict[str, Any]

    def as_str(self, name: str) -> str | None:
        """Form fields arrive as strings, JSON bodies as typed values; normalise to ``str``."""
        value = self.params.get(name)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return json.dumps(value)
        return str(value)

    def as_int(self, name: str) -> int | None:
        value = self.params.get(name)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return value
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value)
        return None

    def as_bool(self, name: str, default: bool = False) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in {"true", "1"}


@dataclass(frozen=True)
class Button:
    text: str
    callback_data: str | None
    url: str | None
    switch_inline_query: str | None = None
    """Set on a "share" button: the query the inline picker opens with, in any chat."""
    switch_inline_query_current_chat: str | None = None


@dataclass
class BotMessage:
    """A message the bot sent (or a user posted through its inline mode), as stored now.

    Values handed to tests are snapshots: they do not change when the bot edits later,
    so a test can compare "before" and "after" objects.
    """

    chat_id: int
    message_id: int
    text: str
    """The message text, or a photo's caption ("" for a photo without one)."""
    html: str | None
    reply_markup: dict[str, Any] | None
    edits: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The Message object exactly as the Bot API returns it (and as callbacks carry it)."""
    activity: int = field(default=0, repr=False)
    """The chat's activity counter at this message's last send/edit; orders "most recent"."""
    photo: bytes | None = field(default=None, repr=False)
    """The uploaded image of a photo message (None for text, or a photo sent by URL)."""
    caption: str | None = None
    inline_message_id: str | None = None
    """Set on a message a user posted through the bot's inline mode."""
    business_connection_id: str | None = None
    """Set on a message the bot sent on behalf of a Telegram Business account."""

    @property
    def is_photo(self) -> bool:
        return "photo" in self.raw

    def buttons(self) -> list[Button]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [
            Button(
                text=str(button.get("text", "")),
                callback_data=button.get("callback_data"),
                url=button.get("url"),
                switch_inline_query=button.get("switch_inline_query"),
                switch_inline_query_current_chat=button.get("switch_inline_query_current_chat"),
            )
            for row in rows
            for button in row
            if isinstance(button, dict)
        ]

    def button(self, text_contains: str) -> Button:
        needle = text_contains.casefold()
        buttons = self.buttons()
        for button in buttons:
            if needle in button.text.casefold():
                return button
        listed = ", ".join(repr(b.text) for b in buttons) or "no inline buttons"
        raise AssertionError(
            f"no button containing {text_contains!r} in message #{self.message_id} "
            f"({_shorten(self.text)!r}); buttons: {listed}"
        )


@dataclass
class _Chat:
    """A chat the fake keeps messages for.

    ``kind`` is ``"bot"`` for a user's private chat with the bot, ``"inline"`` for a chat
    where users posted inline results (the bot is not in it), and ``"business"`` for a
    business owner's private chat with a customer (``id`` is the customer's id, as the
    bot sees it).  Ids of different kinds may coincide, so each kind has its own table.
    """

    id: int
    first_name: str
    blocked: bool = False
    next_message_id: int = 1
    activity: int = 0
    messages: dict[int, BotMessage] = field(default_factory=dict)
    user_message_ids: set[int] = field(default_factory=set)
    kind: str = "bot"
    chat_type: str = "private"
    last_incoming: float | None = None
    """Business chats: time.time() of the customer's last message (opens the 24 h window)."""

    def as_telegram(self) -> dict[str, Any]:
        if self.kind == "inline":  # a chat the bot is not in: only what the test said
            return {"id": self.id, "type": self.chat_type}
        return {"id": self.id, "first_name": self.first_name, "type": "private"}

    def label(self) -> str:
        names = {"bot": "chat", "inline": "inline chat", "business": "business chat"}
        return f"{names[self.kind]} {self.id}"

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class _Query:
    user_id: int
    chat_id: int
    answered: bool = False


@dataclass
class InlineAnswer:
    """What the bot answered to an inline query (answerInlineQuery), as the user sees it."""

    query_id: str
    query: str
    results: list[dict[str, Any]]
    button: dict[str, Any] | None
    is_personal: bool
    cache_time: int
    next_offset: str = ""

    def ids(self) -> list[str]:
        return [str(result["id"]) for result in self.results]

    def result(self, id_or_title_contains: str) -> dict[str, Any]:
        """The result with this id, else the first whose title contains the text."""
        for result in self.results:
            if str(result["id"]) == id_or_title_contains:
                return copy.deepcopy(result)
        needle = id_or_title_contains.casefold()
        for result in self.results:
            if needle in str(result.get("title", "")).casefold():
                return copy.deepcopy(result)
        listed = ", ".join(f"{r['id']!r} ({r.get('title', r.get('type'))!r})" for r in self.results)
        raise AssertionError(
            f"no inline result with id or title {id_or_title_contains!r} for query "
            f"{self.query!r}; results: {listed or 'none'}"
        )


@dataclass
class _InlineQuery:
    id: str
    user: FakeUser
    query: str
    offset: str
    chat_type: str
    created: float
    """time.monotonic() when the user sent it; answers after the timeout are refused."""
    answer: InlineAnswer | None = None
    refusals: list[str] = field(default_factory=list)


@dataclass
class _BusinessConnection:
    id: str
    owner: FakeUser
    date: int
    can_reply: bool
    enabled: bool

    def as_telegram(self) -> dict[str, Any]:
        # As the Bot API server writes it: the deprecated top-level can_reply is still sent,
        # and BusinessBotRights lists only the rights that are granted.
        return {
            "id": self.id,
            "user": self.owner.as_telegram(),
            "user_chat_id": self.owner.chat_id,
            "date": self.date,
            "is_enabled": self.enabled,
            "can_reply": self.can_reply,
            "rights": {"can_reply": True} if self.can_reply else {},
        }


@dataclass
class _File:
    data: bytes | None
    sizes: list[dict[str, Any]]
    """The PhotoSize objects Telegram reports for it, smallest first."""


# --------------------------------------------------------------------------- HTML


class HtmlParseError(ValueError):
    """Text after "can't parse entities: " in Telegram's error description."""


_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "blockquote": "blockquote",
}
_CHAR_REF_RE = re.compile(r"&(?:#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6})|(lt|gt|amp|quot));")
_NAMED_REFS = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_TAG_NAME_RE = re.compile(r"[a-zA-Z][a-zA-Z0-9-]*")
_ATTR_RE = re.compile(
    r"([a-zA-Z][a-zA-Z0-9_-]*)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'=<>`]+)))?"
)


@dataclass
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the plain text
    language: str | None = None


def _find_tag_end(source: str, start: int) -> int:
    """Index of the ``>`` closing the tag opened at ``start``, honouring quoted attributes."""
    quote: str | None = None
    for index in range(start + 1, len(source)):
        char = source[index]
        if quote is not None:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == ">":
            return index
    return -1


def parse_telegram_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse like Telegram's ``parse_mode=HTML``: return plain text and message entities.

    Stricter than Telegram on bare ``>`` and ``&``: a bot that forgets ``html.escape`` on
    user input should fail loudly in tests rather than occasionally in production.
    """
    parts: list[str] = []
    offset = 0  # UTF-16 length of text emitted so far
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    index = 0

    def byte_offset(at: int) -> int:
        return len(source[:at].encode())

    def emit(text: str) -> None:
        nonlocal offset
        parts.append(text)
        offset += _utf16_len(text)

    while index < len(source):
        char = source[index]
        if char == "<":
            end = _find_tag_end(source, index)
            if end == -1:
                raise HtmlParseError(f"Unclosed start tag at byte offset {byte_offset(index)}")
            inner = source[index + 1 : end]
            if inner.startswith("/"):
                name = inner[1:].strip().lower()
                if not stack:
                    raise HtmlParseError(
                        f'Unexpected end tag "{name}" at byte offset {byte_offset(index)}'
                    )
                tag = stack.pop()
                if name != tag.name:
                    raise HtmlParseError(
                        f"Unmatched end tag at byte offset {byte_offset(index)}, "
                        f'expected "</{tag.name}>", found "</{name}>"'
                    )
                _close_tag(tag, offset, stack, entities)
            else:
                stack.append(_open_tag(inner, offset, byte_offset(index)))
            index = end + 1
        elif char == "&":
            match = _CHAR_REF_RE.match(source, index)
            if match is None:
                raise HtmlParseError(
                    f'Character "&" at byte offset {byte_offset(index)} must be escaped as "&amp;"'
                )
            emit(_decode_char_ref(match, byte_offset(index)))
            index = match.end()
        elif char == ">":
            raise HtmlParseError(
                f'Character ">" at byte offset {byte_offset(index)} must be escaped as "&gt;"'
            )
        else:
            end = index
            while end < len(source) and source[end] not in "<&>":
                end += 1
            emit(source[index:end])
            index = end
    if stack:
        raise HtmlParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(parts), entities


def _decode_char_ref(match: re.Match[str], at: int) -> str:
    decimal, hexadecimal, named = match.groups()
    if named is not None:
        return _NAMED_REFS[named]
    codepoint = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if codepoint == 0 or codepoint > 0x10FFFF or 0xD800 <= codepoint <= 0xDFFF:
        raise HtmlParseError(f"Invalid character reference at byte offset {at}")
    return chr(codepoint)


def _open_tag(inner: str, offset: int, at: int) -> _OpenTag:
    match = _TAG_NAME_RE.match(inner)
    if match is None:
        raise HtmlParseError(f"Empty or invalid start tag at byte offset {at}")
    name = match.group(0).lower()
    if name not in _ENTITY_TYPES:
        raise HtmlParseError(f'Unsupported start tag "{name}" at byte offset {at}')
    attrs: dict[str, str] = {}
    rest = inner[match.end() :]
    position = 0
    while True:
        while position < len(rest) and rest[position].isspace():
            position += 1
        if position >= len(rest):
            break
        attr = _ATTR_RE.match(rest, position)
        if attr is None or position == 0:
            raise HtmlParseError(f'Invalid attribute in tag "{name}" at byte offset {at}')
        value = next((g for g in attr.groups()[1:] if g is not None), "")
        attrs[attr.group(1).lower()] = html_lib.unescape(value)
        position = attr.end()
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {at}')
    return _OpenTag(name=name, attrs=attrs, start=offset)


def _close_tag(
    tag: _OpenTag, offset: int, stack: list[_OpenTag], entities: list[dict[str, Any]]
) -> None:
    length = offset - tag.start
    css_class = tag.attrs.get("class", "")
    in_pre = tag.name == "code" and stack and stack[-1].name == "pre"
    if in_pre and css_class.startswith("language-"):
        stack[-1].language = css_class.removeprefix("language-")
        return
    if length <= 0:
        return
    entity: dict[str, Any] = {
        "type": _ENTITY_TYPES[tag.name],
        "offset": tag.start,
        "length": length,
    }
    if tag.name == "a":
        href = tag.attrs.get("href")
        if not href:
            return
        entity["url"] = href
    elif tag.name == "pre" and tag.language:
        entity["language"] = tag.language
    elif tag.name == "blockquote" and "expandable" in tag.attrs:
        entity["type"] = "expandable_blockquote"
    entities.append(entity)


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims surrounding whitespace, which also affects "not modified" checks."""
    stripped = text.strip()
    lead = _utf16_len(text[: len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(int(entity.get("offset", 0)) - lead, 0)
        end = min(int(entity.get("offset", 0)) + int(entity.get("length", 0)) - lead, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


# --------------------------------------------------------------------------- request decoding


def _decode_field(name: str, value: str) -> Any:
    """PTB form-encodes nested objects as JSON strings; undo that for non-text fields."""
    if name in _TEXT_FIELDS or value[:1] not in ("{", "["):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _parse_multipart(content_type: str, body: bytes) -> dict[str, Any]:
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        raise ValueError("multipart body without boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    result: dict[str, Any] = {}
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, separator, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("malformed multipart part")
        data = data.removesuffix(b"\r\n")
        headers = {
            key.strip().lower(): value.strip()
            for key, _, value in (
                line.partition(":") for line in head.decode("utf-8").split("\r\n") if line
            )
        }
        disposition = headers.get("content-disposition", "")
        name_match = re.search(r'\bname="([^"]*)"', disposition)
        if name_match is None:
            continue
        name = name_match.group(1)
        file_match = re.search(r'\bfilename="([^"]*)"', disposition)
        if file_match is None:
            result[name] = _decode_field(name, data.decode("utf-8"))
        else:
            result[name] = UploadedFile(
                filename=file_match.group(1),
                content_type=headers.get("content-type"),
                data=data,
            )
    return result


async def _decode_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {
        key: _decode_field(key, value) for key, value in request.query_params.multi_items()
    }
    body = await request.body()
    if body:
        content_type = request.headers.get("content-type", "")
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type == "application/json":
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("JSON body must be an object")
            params.update(data)
        elif media_type == "application/x-www-form-urlencoded":
            for key, value in parse_qsl(body.decode("utf-8"), keep_blank_values=True):
                params[key] = _decode_field(key, value)
        elif media_type == "multipart/form-data":
            params.update(_parse_multipart(content_type, body))
    for key in _INT_FIELDS & params.keys():
        value = params[key]
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            params[key] = int(value)
    return params


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the fake


class FakeTelegram:
    """The fake Bot API server plus the test-side controls for it."""

    def __init__(self, token: str = "123456:TEST-TOKEN") -> None:
        self.token = token
        self.calls: list[Call] = []
        self.inline_feedback = True
        """Like @BotFather's /setinlinefeedback: send chosen_inline_result updates."""
        self.inline_query_timeout = INLINE_QUERY_TIMEOUT_SECONDS
        """Seconds an inline query stays answerable; lower it to test a late answer."""
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"]),
                Route("/{path:path}", _not_found, methods=["GET", "POST"]),
            ]
        )
        self._server_url: str | None = None
        self._exit_stack: contextlib.AsyncExitStack | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._update_marks: dict[int, tuple[_Chat, int]] = {}  # update_id -> (chat, activity)
        self._all_updates: dict[int, dict[str, Any]] = {}
        self._allowed_updates: frozenset[str] | None = None  # None: Telegram's default set
        self._dropped: list[int] = []  # update ids the bot's allowed_updates filtered out
        self._query_ids = itertools.count(4_000_000_000_001)
        self._queries: dict[str, _Query] = {}
        self._answers: dict[int, list[dict[str, Any]]] = {}
        self._chats: dict[int, _Chat] = {}
        self._inline_query_ids = itertools.count(5_000_000_000_001)
        self._inline_queries: dict[str, _InlineQuery] = {}
        self._inline_chats: dict[int, _Chat] = {}
        self._inline_index: dict[str, tuple[_Chat, int]] = {}  # inline_message_id -> message
        self._inline_message_ids = itertools.count(1)
        self._business: dict[str, _BusinessConnection] = {}
        self._business_ids = itertools.count(1)
        self._business_chats: dict[tuple[int, int], _Chat] = {}  # (owner id, customer id)
        self._files: dict[str, _File] = {}
        self._file_ids = itertools.count(1)
        self._commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._webhook_url = ""
        self._failures: dict[str, list[TelegramError]] = {}
        self._poll_generation = 0
        self._last_poll: float | None = None
        self._closing = False
        self._changed = asyncio.Event()
        self._handlers: dict[str, Callable[[Call], Any]] = {
            "getMe": lambda _call: dict(BOT_USER),
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "editMessageText": lambda call: self._edit_message(call, "text"),
            "editMessageReplyMarkup": lambda call: self._edit_message(call, "markup"),
            "editMessageCaption": lambda call: self._edit_message(call, "caption"),
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
            "getBusinessConnection": self._get_business_connection,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "sendChatAction": self._send_chat_action,
        }

    # ---- lifecycle

    @property
    def server_url(self) -> str:
        if self._server_url is None:
            raise RuntimeError("FakeTelegram is not started")
        return self._server_url

    @property
    def base_url(self) -> str:
        """What to pass to ``ApplicationBuilder.base_url``; PTB appends ``{token}/{method}``."""
        return f"{self.server_url}/bot"

    async def start(self) -> None:
        if self._exit_stack is not None:
            raise RuntimeError("FakeTelegram is already started")
        self._closing = False
        stack = contextlib.AsyncExitStack()
        self._server_url = await stack.enter_async_context(serve(self.app))
        self._exit_stack = stack

    async def stop(self) -> None:
        stack, self._exit_stack = self._exit_stack, None
        if stack is None:
            return
        # Release in-flight long polls now instead of letting shutdown wait for them.
        self._closing = True
        self._notify()
        await stack.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ---- test-side API

    def user(
        self,
        user_id: int,
        first_name: str = "Alice",
        language_code: str | None = "en",
        *,
        last_name: str | None = None,
        username: str | None = None,
    ) -> FakeUser:
        """A Telegram user with a private chat with the bot (a stranger until they write).

        Calling it again for the same id returns a fresh handle on the same chat.
        """
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = _Chat(id=user_id, first_name=first_name)
        else:
            chat.first_name = first_name
        return FakeUser(
            self, user_id, first_name, language_code, last_name=last_name, username=username
        )

    def calls_to(self, method: str) -> list[Call]:
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return _snapshots(chat)

    def inline_message(self, inline_message_id: str) -> BotMessage:
        """A message posted through inline mode, as it looks now (after the bot's edits)."""
        entry = self._inline_index.get(inline_message_id)
        if entry is None:
            known = ", ".join(repr(key) for key in self._inline_index) or "none"
            raise AssertionError(
                f"no inline message {inline_message_id!r}; inline messages: {known}"
            )
        chat, message_id = entry
        return copy.deepcopy(chat.messages[message_id])

    def inline_messages(self, chat_id: int | None = None) -> list[BotMessage]:
        """Messages users posted through inline mode, in one chat or in all of them."""
        if chat_id is None:
            chats = list(self._inline_chats.values())
        else:
            chats = [self._inline_chats[chat_id]] if chat_id in self._inline_chats else []
        return [message for chat in chats for message in _snapshots(chat)]

    def inline_answer(self, update_id: int) -> InlineAnswer | None:
        """The bot's answer to the inline query of ``update_id`` (None while unanswered)."""
        query = self._inline_queries[self._all_updates[update_id]["inline_query"]["id"]]
        return copy.deepcopy(query.answer)

    def connect_business(
        self,
        owner: FakeUser,
        *,
        can_reply: bool = True,
        enabled: bool = True,
        connection_id: str | None = None,
    ) -> str:
        """``owner`` connects the bot to their Business account (or changes the connection).

        Queues a ``business_connection`` update and returns the connection id.  Without
        ``connection_id`` the owner's existing connection is changed, if there is one.
        """
        if connection_id is None:
            existing = [c for c in self._business.values() if c.owner.id == owner.id]
            connection_id = existing[-1].id if existing else self._new_business_id(owner)
        connection = self._business.get(connection_id)
        if connection is None:
            connection = _BusinessConnection(
                id=connection_id,
                owner=owner,
                date=int(time.time()),
                can_reply=can_reply,
                enabled=enabled,
            )
            self._business[connection_id] = connection
        elif connection.owner.id != owner.id:
            raise AssertionError(
                f"business connection {connection_id!r} belongs to user {connection.owner.id}"
            )
        connection.owner, connection.can_reply, connection.enabled = owner, can_reply, enabled
        self._enqueue(self._chat(owner.chat_id), {"business_connection": connection.as_telegram()})
        return connection_id

    def business_messages(self, connection_id: str, customer_chat_id: int) -> list[BotMessage]:
        """What the bot sent (as the owner) in the owner's chat with this customer."""
        connection = self._connection(connection_id)
        chat = self._business_chats.get((connection.owner.id, customer_chat_id))
        return _snapshots(chat) if chat is not None else []

    def age_business_chat(self, connection_id: str, chat_id: int, hours: float) -> None:
        """Pretend the customer's last message in this business chat is ``hours`` older."""
        connection = self._connection(connection_id)
        chat = self._business_chats.get((connection.owner.id, chat_id))
        if chat is None or chat.last_incoming is None:
            raise AssertionError(
                f"user {chat_id} never wrote to {connection.owner.first_name} "
                "(use customer.write_business(owner, text) first)"
            )
        chat.last_incoming -= hours * 3600

    def pending_updates(self) -> int:
        return len(self._updates)

    def update(self, update_id: int) -> dict[str, Any]:
        """The Update JSON a user action produced, e.g. to learn a callback query's id."""
        return copy.deepcopy(self._all_updates[update_id])

    def fail_next(
        self,
        method: str,
        description: str = "Internal Server Error",
        error_code: int = 500,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call to ``method`` fail, to exercise the bot's error handling."""
        error = TelegramError(error_code, description, retry_after)
        self._failures.setdefault(method.lower(), []).append(error)

    async def wait_for(
        self,
        predicate: Callable[[], T | None],
        timeout: float = 5.0,  # noqa: ASYNC109 - a plain argument reads best in tests
    ) -> T:
        """Poll ``predicate`` because the bot reacts asynchronously to whatever the test did.

        A predicate returning ``bool`` binds ``T`` to ``bool``; falsy results keep polling.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if loop.time() >= deadline:
                raise AssertionError(
                    self._diagnostics(f"wait_for: condition not met within {timeout}s")
                )
            await asyncio.sleep(STEP_SECONDS)

    # ---- internals used by FakeUser

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            raise AssertionError(f"no chat {chat_id}; create it with FakeTelegram.user()")
        return chat

    def _connection(self, connection_id: str) -> _BusinessConnection:
        connection = self._business.get(connection_id)
        if connection is None:
            known = ", ".join(repr(key) for key in self._business) or "none"
            raise AssertionError(f"no business connection {connection_id!r}; known: {known}")
        return connection

    def _new_business_id(self, owner: FakeUser) -> str:
        raw = struct.pack("<qq", owner.id, next(self._business_ids))
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _business_chat(self, owner_id: int, customer: FakeUser) -> _Chat:
        chat = self._business_chats.get((owner_id, customer.id))
        if chat is None:
            chat = _Chat(id=customer.id, first_name=customer.first_name, kind="business")
            self._business_chats[(owner_id, customer.id)] = chat
        return chat

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _enqueue(self, chat: _Chat, payload: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **payload}
        self._all_updates[update_id] = update
        self._update_marks[update_id] = (chat, chat.activity)
        kind = next(iter(payload))
        if self._allowed_updates is None:
            delivered = kind not in _DEFAULT_EXCLUDED_UPDATES
        else:
            delivered = kind in self._allowed_updates
        if delivered:
            self._updates.append(update)
        else:
            self._dropped.append(update_id)
        self._notify()
        return update_id

    def _queue_message(self, user: FakeUser, text: str) -> int:
        chat = self._chat(user.chat_id)
        message_id = chat.take_message_id()
        chat.user_message_ids.add(message_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": user.as_telegram(),
            "chat": chat.as_telegram(),
            "date": int(time.time()),
            "text": text,
            **_command_entities(text),
        }
        return self._enqueue(chat, {"message": message})

    def _queue_callback(self, user: FakeUser, data: str, message: BotMessage) -> int:
        chat, current = self._locate(message)
        if chat.kind == "bot" and message.chat_id != user.chat_id:
            raise AssertionError(
                f"message #{message.message_id} is in chat {message.chat_id}, "
                f"not in user {user.id}'s chat"
            )
        if chat.kind == "business":
            # UNSURE: Telegram documents no exception, so presses on business messages
            # reach the bot like any callback query (the message names the connection).
            owner_id = self._connection(message.business_connection_id or "").owner.id
            if user.id not in (owner_id, chat.id):
                raise AssertionError(
                    f"user {user.id} is not in the business chat of {owner_id} and {chat.id}"
                )
        query_id = str(next(self._query_ids))
        self._queries[query_id] = _Query(user_id=user.id, chat_id=chat.id)
        query: dict[str, Any] = {"id": query_id, "from": user.as_telegram()}
        if message.inline_message_id:
            # Telegram sends no message for inline messages: the bot never saw that chat.
            query["inline_message_id"] = message.inline_message_id
        else:
            query["message"] = copy.deepcopy((current or message).raw)
        query["chat_instance"] = _chat_instance(chat)
        query["data"] = data
        return self._enqueue(chat, {"callback_query": query})

    def _locate(self, message: BotMessage) -> tuple[_Chat, BotMessage | None]:
        """The chat holding ``message`` (a snapshot) and its current state there."""
        if message.inline_message_id:
            entry = self._inline_index.get(message.inline_message_id)
            if entry is None:
                raise AssertionError(f"unknown inline message {message.inline_message_id!r}")
            chat, message_id = entry
            return chat, chat.messages[message_id]
        if message.business_connection_id:
            owner = self._connection(message.business_connection_id).owner
            chat = self._business_chats[(owner.id, message.chat_id)]
            return chat, chat.messages.get(message.message_id)
        chat = self._chat(message.chat_id)
        return chat, chat.messages.get(message.message_id)

    def _queue_inline_query(self, user: FakeUser, query: str, chat_type: str, offset: str) -> int:
        if chat_type not in _INLINE_CHAT_TYPES:
            raise AssertionError(
                f"chat_type must be one of {sorted(_INLINE_CHAT_TYPES)}, not {chat_type!r}"
            )
        if len(query) > MAX_INLINE_QUERY_LENGTH:
            raise AssertionError(f"Telegram cuts inline queries at {MAX_INLINE_QUERY_LENGTH} chars")
        query_id = str(next(self._inline_query_ids))
        self._inline_queries[query_id] = _InlineQuery(
            id=query_id,
            user=user,
            query=query,
            offset=offset,
            chat_type=chat_type,
            created=time.monotonic(),
        )
        payload = {
            "id": query_id,
            "from": user.as_telegram(),
            "query": query,
            "offset": offset,
            "chat_type": chat_type,
        }
        return self._enqueue(self._chat(user.chat_id), {"inline_query": payload})

    async def _wait_for_inline_answer(
        self,
        update_id: int,
        timeout: float,  # noqa: ASYNC109 - checked between polls, like wait_for()
    ) -> InlineAnswer:
        record = self._inline_queries[self._all_updates[update_id]["inline_query"]["id"]]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while record.answer is None:
            if loop.time() >= deadline:
                refused = "".join(f"\n  refused: {reason}" for reason in record.refusals)
                raise AssertionError(
                    self._diagnostics(
                        f"timed out after {timeout}s waiting for the bot to answer inline "
                        f"query {record.query!r} (update {update_id}, query id {record.id})"
                        + (refused or "; the bot never called answerInlineQuery for it")
                    )
                )
            await asyncio.sleep(STEP_SECONDS)
        return copy.deepcopy(record.answer)

    def _post_inline(
        self, user: FakeUser, answer: InlineAnswer, result_id: str, chat_id: int
    ) -> BotMessage:
        """Telegram's part when a user taps an inline result in the chat ``chat_id``."""
        record = self._inline_queries.get(answer.query_id)
        if record is None or record.user.id != user.id:
            raise AssertionError(
                f"user {user.id} did not send inline query {answer.query_id}; only the user "
                "who typed the query sees and can choose its results"
            )
        result = next((r for r in answer.results if str(r["id"]) == result_id), None)
        if result is None:
            raise AssertionError(f"no inline result {result_id!r}; results: {answer.ids()}")
        text, html, content, photo, caption = self._inline_content(result)
        markup = result.get("reply_markup")
        # Inline mode in the user's own chat with the bot posts a message the bot receives.
        bot_chat = self._chats.get(chat_id) if chat_id == user.chat_id else None
        chat = self._inline_chats.get(chat_id)
        if chat is None:
            chat_type = "private" if record.chat_type == "sender" else record.chat_type
            chat = _Chat(id=chat_id, first_name="", kind="inline", chat_type=chat_type)
            self._inline_chats[chat_id] = chat
        message_id = (bot_chat or chat).take_message_id()
        inline_message_id = self._new_inline_message_id(chat_id)
        raw: dict[str, Any] = {
            "message_id": message_id,
            "from": user.as_telegram(),
            "chat": (bot_chat or chat).as_telegram(),
            "date": int(time.time()),
            **content,
            "via_bot": dict(_BOT_FROM),
        }
        if markup is not None:
            raw["reply_markup"] = copy.deepcopy(markup)
        message = BotMessage(
            chat_id=chat_id,
            message_id=message_id,
            text=text,
            html=html,
            reply_markup=copy.deepcopy(markup),
            raw=raw,
            photo=photo,
            caption=caption,
            inline_message_id=inline_message_id,
        )
        chat.messages[message_id] = message
        self._inline_index[inline_message_id] = (chat, message_id)
        self._touch(chat, message)
        if bot_chat is not None:
            bot_chat.user_message_ids.add(message_id)
            self._enqueue(bot_chat, {"message": copy.deepcopy(raw)})
        if self.inline_feedback:
            chosen: dict[str, Any] = {"result_id": result_id, "from": user.as_telegram()}
            # Telegram names the message only when it has an inline keyboard (Bot API docs).
            if isinstance(markup, dict) and markup.get("inline_keyboard"):
                chosen["inline_message_id"] = inline_message_id
            chosen["query"] = record.query
            self._enqueue(chat, {"chosen_inline_result": chosen})
        return copy.deepcopy(message)

    def _new_inline_message_id(self, chat_id: int) -> str:
        # Shaped like the real thing: base64url of a 24-byte inputBotInlineMessageID64.
        counter = next(self._inline_message_ids)
        raw = struct.pack("<iqiq", 2, chat_id, counter, 0x5EED_0000_0000 + counter)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _inline_content(
        self, result: dict[str, Any]
    ) -> tuple[str, str | None, dict[str, Any], bytes | None, str | None]:
        """(text, html, Message fields, photo bytes, caption) of the message a result posts."""
        source, parse_mode, entities = _inline_text(result)
        if isinstance(source, str) and source:
            text, html, rendered = _render(source, parse_mode, entities)
            return text, html, _present({"text": text, "entities": rendered}), None, None
        if result["type"] == "photo":
            file = self._photo_by_id(str(result.get("photo_url") or result.get("photo_file_id")))
            caption, html, rendered = _render(
                str(result.get("caption") or ""),
                result.get("parse_mode"),
                result.get("caption_entities"),
            )
            html = html if caption else None
            content = {
                "photo": copy.deepcopy(file.sizes),
                "caption": caption,
                "caption_entities": rendered,
            }
            return caption, html, _present(content), file.data, caption or None
        raise AssertionError(
            f"the fake posts only article/photo results or results with a text "
            f"input_message_content, not a {result['type']!r} result"
        )

    async def _wait_for_reaction(
        self,
        update_id: int,
        what: str,
        timeout: float,  # noqa: ASYNC109 - checked between polls, like wait_for()
        also: Callable[[], bool] | None = None,
        message_id: int | None = None,
    ) -> BotMessage:
        """Wait for bot activity after ``update_id``, then for it to go quiet.

        With ``message_id``, wait for that message of the chat to change and return it.
        """
        chat, mark = self._update_marks[update_id]

        def activity() -> int:
            return chat.activity if message_id is None else chat.messages[message_id].activity

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (activity() > mark and (also is None or also())):
            if loop.time() >= deadline:
                raise AssertionError(
                    self._diagnostics(
                        f"timed out after {timeout}s waiting for the bot to react to {what} "
                        f"(update {update_id})",
                        chat,
                    )
                )
            await asyncio.sleep(STEP_SECONDS)
        seen = chat.activity
        quiet_since = loop.time()
        while loop.time() - quiet_since < QUIET_PERIOD_SECONDS:
            await asyncio.sleep(STEP_SECONDS)
            if chat.activity != seen:
                seen, quiet_since = chat.activity, loop.time()
            if loop.time() >= deadline + timeout:
                raise AssertionError(
                    self._diagnostics(f"the bot never went quiet after {what}", chat)
                )
        if message_id is not None:
            return copy.deepcopy(chat.messages[message_id])
        latest = max(chat.messages.values(), key=lambda m: m.activity)
        return copy.deepcopy(latest)

    def _messages_since(self, update_id: int) -> list[BotMessage]:
        chat, mark = self._update_marks[update_id]
        return [m for m in _snapshots(chat) if m.activity > mark]

    def _diagnostics(self, headline: str, chat: _Chat | None = None) -> str:
        lines = [headline]
        if chat is not None:
            messages = _snapshots(chat)
            lines.append(f"bot messages in {chat.label()}: {len(messages)}")
            lines.extend(_describe(message) for message in messages[-5:])
        inline = [m for c in self._inline_chats.values() if c is not chat for m in _snapshots(c)]
        if inline:
            lines.append(f"inline messages elsewhere: {len(inline)}")
            lines.extend(_describe(message) for message in inline[-5:])
        unanswered = [q for q in self._inline_queries.values() if q.answer is None]
        for query in unanswered[-3:]:
            lines.append(f"unanswered inline query {query.query!r} from user {query.user.id}")
            lines.extend(f"  refused: {reason}" for reason in query.refusals[-2:])
        for connection in self._business.values():
            lines.append(
                f"business connection {connection.id!r} of user {connection.owner.id}: "
                f"enabled={connection.enabled} can_reply={connection.can_reply}"
            )
        for (owner_id, _customer), business_chat in self._business_chats.items():
            if business_chat is chat:
                continue
            age = (
                "never written to"
                if business_chat.last_incoming is None
                else f"customer wrote {(time.time() - business_chat.last_incoming) / 3600:.1f}h ago"
            )
            messages = _snapshots(business_chat)
            lines.append(
                f"business chat of {owner_id} with {business_chat.id} ({age}): "
                f"{len(messages)} sent by the bot"
            )
            lines.extend(_describe(message) for message in messages[-3:])
        if self._dropped:
            kinds = sorted({_update_kind(self._all_updates[u]) for u in self._dropped})
            lines.append(
                f"{len(self._dropped)} updates ({', '.join(kinds)}) were not delivered: the "
                f"bot's allowed_updates is {sorted(self._allowed_updates or [])}"
            )
        loop = asyncio.get_running_loop()
        if self._last_poll is None:
            polled = "the bot never called getUpdates: is the Application polling this fake?"
        else:
            polled = f"last getUpdates {loop.time() - self._last_poll:.2f}s ago"
        lines.append(f"pending updates: {len(self._updates)}; {polled}")
        interesting = [c for c in self.calls if c.method != "getUpdates"]
        lines.append(
            f"last calls ({len(interesting)} total, getUpdates omitted; "
            "handler exceptions are only in the bot's log):"
        )
        lines.extend(f"  {c.method} {_shorten(repr(c.params), 300)}" for c in interesting[-10:])
        return "\n".join(lines)

    # ---- HTTP

    async def _endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            return _reply(TelegramError(401, "Unauthorized"))
        raw_method: str = request.path_params["method"]
        method = _CANONICAL.get(raw_method.lower(), raw_method)
        try:
            params = await _decode_params(request)
        except ValueError as error:
            return _reply(_bad_request(f"can't parse request: {error}"))
        call = Call(method=method, params=params)
        self.calls.append(call)
        try:
            failures = self._failures.get(method.lower())
            if failures:
                raise failures.pop(0)
            result: Any
            if method == "getUpdates":
                result = await self._get_updates(call)
            else:
                handler = self._handlers.get(method)
                result = handler(call) if handler is not None else True
        except TelegramError as error:
            return _reply(error)
        return _json({"ok": True, "result": result})

    # ---- Bot API methods

    async def _get_updates(self, call: Call) -> list[dict[str, Any]]:
        if self._webhook_url:
            raise TelegramError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        allowed = call.params.get("allowed_updates")
        with contextlib.suppress(ValueError):
            allowed = _json_param(allowed)
        if isinstance(allowed, list):
            # Kept until the next call that sets it; [] means Telegram's default set.
            self._allowed_updates = frozenset(str(kind) for kind in allowed) or None
        loop = asyncio.get_running_loop()
        self._last_poll = loop.time()
        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # a newer poll terminates an older one, as on the real server
        offset = call.as_int("offset")
        if offset is not None and offset < 0:
            self._updates = self._updates[offset:]
        elif offset is not None:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        limit = min(max(call.as_int("limit") or 100, 1), 100)
        timeout = max(call.as_int("timeout") or 0, 0)
        deadline = loop.time() + min(timeout, POLL_CAP_SECONDS)
        while not self._updates and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
            if self._poll_generation != generation:
                raise TelegramError(
                    409,
                    "Conflict: terminated by other getUpdates request; "
                    "make sure that only one bot instance is running",
                )
        self._last_poll = loop.time()
        return self._updates[:limit]

    def _delete_webhook(self, call: Call) -> bool:
        self._webhook_url = ""
        if call.as_bool("drop_pending_updates"):
            self._updates.clear()
        return True

    def _set_webhook(self, call: Call) -> bool:
        url = call.as_str("url") or ""
        if url and urlsplit(url).scheme != "https":
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook_url = url
        if call.as_bool("drop_pending_updates"):
            self._updates.clear()
        return True

    def _get_webhook_info(self, _call: Call) -> dict[str, Any]:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _target_chat(self, call: Call) -> _Chat:
        chat_id = call.as_int("chat_id")
        chat = self._chats.get(chat_id) if chat_id is not None else None
        if chat is None:
            raise _bad_request("chat not found")
        if chat.blocked:
            raise TelegramError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _business_target(self, call: Call, connection_id: str) -> tuple[_BusinessConnection, _Chat]:
        """Check a call made on behalf of a business account, in the order Telegram does:
        the Bot API server (chat id, connection), TDLib (private chat, not to self),
        then Telegram's server (enabled, can_reply, the 24-hour window)."""
        raw_chat_id = call.as_str("chat_id") or ""
        if not raw_chat_id:
            raise _bad_request("chat identifier is empty")
        chat_id = call.as_int("chat_id")
        if chat_id is None:
            raise _bad_request("chat identifier must be a valid Integer")
        connection = self._business.get(connection_id)
        if connection is None:
            raise TelegramError(400, BUSINESS_CONNECTION_NOT_FOUND)
        if chat_id <= 0:
            raise _bad_request("chat must be a private chat")
        if chat_id == connection.owner.id:
            raise _bad_request("messages must not be sent to self")
        if not connection.enabled:
            raise TelegramError(400, BUSINESS_CONNECTION_DISABLED)
        if not connection.can_reply:
            raise TelegramError(400, BUSINESS_REPLY_FORBIDDEN)
        chat = self._business_chats.get((connection.owner.id, chat_id))
        last = chat.last_incoming if chat is not None else None
        if chat is None or last is None or time.time() - last > BUSINESS_REPLY_WINDOW_SECONDS:
            raise TelegramError(400, BUSINESS_PEER_USAGE_MISSING)
        return connection, chat

    def _send_target(self, call: Call) -> tuple[_Chat, dict[str, Any], dict[str, Any]]:
        """The chat a send goes to, its ``from`` and extra Message fields."""
        connection_id = call.as_str("business_connection_id")
        if connection_id:
            connection, chat = self._business_target(call, connection_id)
            extra = {"business_connection_id": connection_id, "sender_business_bot": _BOT_FROM}
            return chat, connection.owner.as_telegram(), copy.deepcopy(extra)
        return self._target_chat(call), dict(_BOT_FROM), {}

    def _send_message(self, call: Call) -> dict[str, Any]:
        chat, sender, extra = self._send_target(call)
        text, html, entities = _message_content(call)
        markup = _validate_markup(call.params.get("reply_markup"))
        content = _present({"text": text, "entities": entities})
        return self._post(chat, sender, extra, content, text=text, html=html, markup=markup)

    def _send_photo(self, call: Call) -> dict[str, Any]:
        file = self._photo_input(call)
        caption, html, entities = _caption_content(call)
        markup = _validate_markup(call.params.get("reply_markup"))
        chat, sender, extra = self._send_target(call)
        content = _present(
            {"photo": copy.deepcopy(file.sizes), "caption": caption, "caption_entities": entities}
        )
        return self._post(
            chat,
            sender,
            extra,
            content,
            text=caption or "",
            html=html,
            markup=markup,
            photo=file.data,
            caption=caption,
        )

    def _post(
        self,
        chat: _Chat,
        sender: dict[str, Any],
        extra: dict[str, Any],
        content: dict[str, Any],
        *,
        text: str,
        html: str | None,
        markup: dict[str, Any] | None,
        photo: bytes | None = None,
        caption: str | None = None,
    ) -> dict[str, Any]:
        message_id = chat.take_message_id()
        raw: dict[str, Any] = {
            "message_id": message_id,
            "from": sender,
            "chat": chat.as_telegram(),
            "date": int(time.time()),
            **content,
            **extra,
        }
        if markup is not None and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        message = BotMessage(
            chat_id=chat.id,
            message_id=message_id,
            text=text,
            html=html,
            reply_markup=markup,
            raw=raw,
            photo=photo,
            caption=caption,
            business_connection_id=extra.get("business_connection_id"),
        )
        chat.messages[message_id] = message
        self._touch(chat, message)
        return copy.deepcopy(raw)

    def _photo_input(self, call: Call) -> _File:
        """The ``photo`` of a call: an upload, ``attach://<part>``, a file_id or a URL."""
        value = call.params.get("photo")
        if isinstance(value, str) and value.startswith("attach://"):
            value = call.params.get(value.removeprefix("attach://"))
            if not isinstance(value, UploadedFile):
                raise _bad_request("there is no photo in the request")
        if isinstance(value, UploadedFile):
            return self._store_photo(value.data)
        if isinstance(value, str) and value:
            return self._photo_by_id(value)
        raise _bad_request("there is no photo in the request")

    def _photo_by_id(self, file_id_or_url: str) -> _File:
        known = self._files.get(file_id_or_url)
        if known is not None:
            return known
        parts = urlsplit(file_id_or_url)
        if parts.scheme in {"http", "https"} and parts.netloc:
            # Telegram would download it; the fake invents a size and keeps no bytes.
            return self._new_photo(None, 512, 512)
        raise _bad_request("wrong file identifier/HTTP URL specified")

    def _store_photo(self, data: bytes) -> _File:
        if len(data) > MAX_PHOTO_BYTES:
            raise _bad_request("file is too big")  # UNSURE: Telegram's text for a >10 MB photo
        size = _image_size(data)
        if size is None:
            raise _bad_request("IMAGE_PROCESS_FAILED")
        width, height = size
        # Bot API docs: "The photo's width and height must not exceed 10000 in total.
        # Width and height ratio must be at most 20."
        if (
            not width
            or not height
            or width + height > 10000
            or max(width, height) > 20 * min(width, height)
        ):
            raise _bad_request("PHOTO_INVALID_DIMENSIONS")
        return self._new_photo(data, width, height)

    def _new_photo(self, data: bytes | None, width: int, height: int) -> _File:
        number = next(self._file_ids)
        longest = max(width, height)
        dimensions = [
            (max(1, round(width * limit / longest)), max(1, round(height * limit / longest)))
            for limit in _PHOTO_SIZE_LIMITS
            if longest > limit
        ]
        scale = min(1.0, _MAX_PHOTO_SIDE / longest)
        dimensions.append((max(1, round(width * scale)), max(1, round(height * scale))))
        sizes: list[dict[str, Any]] = []
        for index, (size_width, size_height) in enumerate(dimensions):
            sizes.append(
                {
                    "file_id": f"AgACAgIAAxkDAAI{number:08d}{'smxyw'[index]}",
                    "file_unique_id": f"AQAD{number:06d}{'smxyw'[index]}",
                    "width": size_width,
                    "height": size_height,
                }
            )
        if data is not None:
            sizes[-1]["file_size"] = len(data)
        file = _File(data=data, sizes=sizes)
        for size in sizes:
            self._files[size["file_id"]] = file
        return file

    def _edit_target(self, call: Call) -> tuple[_Chat, BotMessage]:
        """The message an edit names: inline, in a business chat, or in a bot chat."""
        chat_id, message_id = call.as_int("chat_id"), call.as_int("message_id")
        if call.params.get("chat_id") in (None, "") and not message_id:
            inline_message_id = call.as_str("inline_message_id") or ""
            if not inline_message_id:
                raise _bad_request("message identifier is not specified")
            entry = self._inline_index.get(inline_message_id)
            if entry is None:
                if not _inline_message_id_is_well_formed(inline_message_id):
                    raise TelegramError(400, INLINE_MESSAGE_ID_INVALID)
                raise TelegramError(400, MESSAGE_ID_INVALID)
            inline_chat, inline_id = entry
            return inline_chat, inline_chat.messages[inline_id]
        connection_id = call.as_str("business_connection_id")
        if connection_id:
            chat = self._business_target(call, connection_id)[1]
        else:
            found = self._chats.get(chat_id) if chat_id is not None else None
            if found is None:
                raise _bad_request("message to edit not found")
            chat = found
        message = chat.messages.get(message_id) if message_id is not None else None
        if message is None:
            if message_id in chat.user_message_ids:
                raise _bad_request("message can't be edited")
            raise _bad_request("message to edit not found")
        return chat, message

    def _edit_message(self, call: Call, kind: str) -> dict[str, Any] | bool:
        """editMessageText (``kind`` "text"), editMessageCaption ("caption") and
        editMessageReplyMarkup ("markup"); inline messages answer ``true``."""
        chat, message = self._edit_target(call)
        entities_key = "caption_entities" if message.is_photo else "entities"
        if kind == "text":
            if message.is_photo:
                raise _bad_request("there is no text in the message to edit")
            new_text, new_html, new_entities = _message_content(call)
        elif kind == "caption":
            if not message.is_photo:
                raise _bad_request("there is no caption in the message to edit")
            caption, new_html, new_entities = _caption_content(call)
            new_text = caption or ""
        else:
            new_text, new_html = message.text, message.html
            new_entities = list(message.raw.get(entities_key, []))
        markup = _validate_markup(call.params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad_request("inline keyboard expected")
        if (
            new_text == message.text
            and new_entities == message.raw.get(entities_key, [])
            and markup == message.raw.get("reply_markup")
        ):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.text, message.html, message.reply_markup = new_text, new_html, markup
        message.edits += 1
        if message.is_photo:
            message.caption = new_text or None
            message.raw.pop("caption", None)
            if new_text:
                message.raw["caption"] = new_text
        else:
            message.raw["text"] = new_text
        message.raw["edit_date"] = int(time.time())
        for key, value in ((entities_key, new_entities), ("reply_markup", markup)):
            if value:
                message.raw[key] = value
            else:
                message.raw.pop(key, None)
        self._touch(chat, message)
        if message.inline_message_id:
            return True  # the Bot API returns True, not a Message, for inline messages
        return copy.deepcopy(message.raw)

    def _touch(self, chat: _Chat, message: BotMessage) -> None:
        chat.activity += 1
        message.activity = chat.activity
        self._notify()

    def _answer_callback_query(self, call: Call) -> bool:
        query_id = call.as_str("callback_query_id") or ""
        query = self._queries.get(query_id)
        if query is None or query.answered:
            raise _bad_request(QUERY_INVALID.removeprefix("Bad Request: "))
        if len(call.as_str("text") or "") > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        query.answered = True
        self._answers.setdefault(query.user_id, []).append(dict(call.params))
        return True

    def _answer_inline_query(self, call: Call) -> bool:
        query = self._inline_queries.get(call.as_str("inline_query_id") or "")
        try:
            answer = self._read_inline_answer(call, query)
        except TelegramError as error:
            if query is not None:
                query.refusals.append(error.description)
            raise
        assert query is not None
        query.answer = answer
        self._notify()
        return True

    def _read_inline_answer(self, call: Call, query: _InlineQuery | None) -> InlineAnswer:
        """Validate answerInlineQuery in Telegram's order: the Bot API server's parsing,
        then TDLib's checks, then Telegram's server (query id, result ids)."""
        button = _inline_results_button(call)
        raw_results = call.params.get("results")
        try:
            raw_results = _json_param(raw_results) if raw_results not in (None, "") else []
        except ValueError as error:
            raise _bad_request(f"can't parse JSON encoded inline query results: {error}") from None
        if not isinstance(raw_results, list):
            raise _bad_request("expected an Array of inline query results")
        if len(raw_results) > MAX_INLINE_RESULTS:
            raise _bad_request("too many inline query results specified")
        results = [_parse_inline_result(value) for value in raw_results]
        _check_start_parameter(button)
        for result in results:
            markup = result.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" not in markup:
                raise _bad_request("inline keyboard expected")
            source, _mode, _entities = _inline_text(result)
            if isinstance(source, str) and source and not source.strip():
                raise _bad_request("message text is empty")
            if result["type"] == "photo" and not result.get("photo_url"):
                # UNSURE: the text for an unknown photo_file_id in an inline answer.
                self._photo_by_id(str(result["photo_file_id"]))
        if (
            query is None
            or query.answer is not None
            or time.monotonic() - query.created > self.inline_query_timeout
        ):
            raise TelegramError(400, QUERY_INVALID)
        seen: set[str] = set()
        for result in results:
            result_id = result["id"]
            # UNSURE: RESULT_ID_EMPTY/RESULT_ID_INVALID are the MTProto errors of
            # messages.setInlineBotResults; which limit triggers which is not documented.
            if not result_id:
                raise _bad_request("RESULT_ID_EMPTY")
            if len(result_id.encode()) > MAX_INLINE_ID_BYTES:
                raise _bad_request("RESULT_ID_INVALID")
            if result_id in seen:
                raise _bad_request("RESULT_ID_DUPLICATE")
            seen.add(result_id)
            if result["type"] == "article" and not str(result.get("title", "")).strip():
                raise _bad_request("ARTICLE_TITLE_EMPTY")
            thumbnail = result.get("thumbnail_url") or result.get("thumb_url")
            if result["type"] == "photo" and result.get("photo_url") and not thumbnail:
                raise _bad_request("PHOTO_THUMB_URL_EMPTY")  # UNSURE, MTProto's name
        next_offset = call.as_str("next_offset") or ""
        if len(next_offset.encode()) > MAX_INLINE_ID_BYTES:
            raise _bad_request("NEXT_OFFSET_INVALID")  # UNSURE, MTProto's name
        cache_time = call.as_int("cache_time")
        return InlineAnswer(
            query_id=query.id,
            query=query.query,
            results=results,
            button=button,
            is_personal=call.as_bool("is_personal"),
            # The Bot API server clamps cache_time to 0..86400 and defaults it to 300.
            cache_time=300 if cache_time is None else min(max(cache_time, 0), 86400),
            next_offset=next_offset,
        )

    def _get_business_connection(self, call: Call) -> dict[str, Any]:
        connection = self._business.get(call.as_str("business_connection_id") or "")
        if connection is None:
            raise TelegramError(400, BUSINESS_CONNECTION_NOT_FOUND)
        return connection.as_telegram()

    def _queue_business_message(
        self, sender: FakeUser, owner: FakeUser, customer: FakeUser, text: str
    ) -> int:
        enabled = [c for c in self._business.values() if c.owner.id == owner.id and c.enabled]
        if not enabled:
            raise AssertionError(
                f"{owner.first_name} ({owner.id}) has no enabled business connection; call "
                "telegram.connect_business(owner) first"
            )
        if customer.id == owner.id:
            raise AssertionError("a business chat needs two different users")
        chat = self._business_chat(owner.id, customer)
        message_id = chat.take_message_id()
        chat.user_message_ids.add(message_id)
        if sender.id == customer.id:
            chat.last_incoming = time.time()
        message: dict[str, Any] = {
            "business_connection_id": enabled[-1].id,
            "message_id": message_id,
            "from": sender.as_telegram(),
            "chat": chat.as_telegram(),
            "date": int(time.time()),
            "text": text,
            **_command_entities(text),
        }
        return self._enqueue(chat, {"business_message": message})

    def _commands_key(self, call: Call) -> tuple[str, str]:
        scope = call.params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), call.as_str("language_code") or ""

    def _set_my_commands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand")
            if not _COMMAND_RE.fullmatch(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad_request("command description is empty or too long")
        self._commands[self._commands_key(call)] = [dict(c) for c in commands]
        return True

    def _delete_my_commands(self, call: Call) -> bool:
        self._commands.pop(self._commands_key(call), None)
        return True

    def _get_my_commands(self, call: Call) -> list[dict[str, Any]]:
        return list(self._commands.get(self._commands_key(call), []))

    def _send_chat_action(self, call: Call) -> bool:
        self._target_chat(call)
        return True


def _snapshots(chat: _Chat) -> list[BotMessage]:
    return [copy.deepcopy(chat.messages[key]) for key in sorted(chat.messages)]


def _describe(message: BotMessage) -> str:
    kind = " photo" if message.is_photo else ""
    where = f" inline={message.inline_message_id}" if message.inline_message_id else ""
    buttons = [b.text for b in message.buttons()]
    return (
        f"  #{message.message_id}{kind}{where} chat={message.chat_id} edits={message.edits} "
        f"{_shorten(message.text)!r} buttons={buttons}"
    )


def _update_kind(update: dict[str, Any]) -> str:
    return next(key for key in update if key != "update_id")


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """Message fields as Telegram writes them: empty and missing ones are left out."""
    return {key: value for key, value in fields.items() if value}


def _command_entities(text: str) -> dict[str, Any]:
    """A message starting with /command gets a bot_command entity, as Telegram adds."""
    if not text.startswith("/") or len(text) < 2:
        return {}
    command = text.split(maxsplit=1)[0]
    return {"entities": [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]}


def _chat_instance(chat: _Chat) -> str:
    salt = {"bot": 1_000_000_007, "inline": 2_000_000_011, "business": 3_000_000_019}[chat.kind]
    return str(chat.id * 7919 + salt)


def _render(
    source: str, parse_mode: Any, given_entities: Any
) -> tuple[str, str | None, list[dict[str, Any]]]:
    """Render text or a caption like Telegram: plain text, the HTML source, entities.

    Only HTML is rendered; Markdown/MarkdownV2 text is stored verbatim.  Raises
    :class:`HtmlParseError` for bad HTML; callers word the error for their method.
    """
    html: str | None = None
    if str(parse_mode or "").lower() == "html":
        text, entities = parse_telegram_html(source)
        html = source
    else:
        text = source
        entities = (
            [e for e in given_entities if isinstance(e, dict)]
            if isinstance(given_entities, list)
            else []
        )
    text, entities = _strip_text(text, entities)
    return text, html, entities


def _message_content(call: Call) -> tuple[str, str | None, list[dict[str, Any]]]:
    """Validate and render ``text``/``parse_mode``/``entities`` the way Telegram does."""
    source = call.params.get("text")
    if not isinstance(source, str) or not source.strip():
        raise _bad_request("message text is empty")
    try:
        text, html, entities = _render(
            source, call.as_str("parse_mode"), call.params.get("entities")
        )
    except HtmlParseError as error:
        raise _bad_request(f"can't parse entities: {error}") from None
    if not text:
        raise _bad_request("message text is empty")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise _bad_request("message is too long")
    return text, html, entities


def _caption_content(call: Call) -> tuple[str | None, str | None, list[dict[str, Any]]]:
    """``caption``/``parse_mode``/``caption_entities``; an empty caption means none."""
    source = call.params.get("caption")
    if source is None or source == "":
        return None, None, []
    try:
        text, html, entities = _render(
            str(source), call.as_str("parse_mode"), call.params.get("caption_entities")
        )
    except HtmlParseError as error:
        raise _bad_request(f"can't parse entities: {error}") from None
    if not text:
        return None, None, []
    if len(text) > MAX_CAPTION_LENGTH:
        raise _bad_request("message caption is too long")
    return text, html, entities


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a PNG, JPEG or GIF image, or None if it is none of those."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:2] != b"\xff\xd8":
        return None
    index = 2
    while index + 9 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return int(width), int(height)
        index += 2 + int(length)
    return None


def _inline_message_id_is_well_formed(inline_message_id: str) -> bool:
    """TDLib accepts base64url of a 20- or 24-byte InputBotInlineMessageID."""
    if not _BASE64URL_RE.fullmatch(inline_message_id):
        return False
    try:
        raw = base64.urlsafe_b64decode(inline_message_id + "=" * (-len(inline_message_id) % 4))
    except (binascii.Error, ValueError):
        return False
    return len(raw) in (20, 24)


def _required_str(obj: dict[str, Any], name: str, prefix: str = "") -> str:
    """Like the Bot API's JSON reader: numbers pass as strings, anything else is refused."""
    if name not in obj:
        raise _bad_request(f'{prefix}Can\'t find field "{name}"')
    value = obj[name]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _bad_request(f'{prefix}Field "{name}" must be of type String')
    return str(value)


def _json_param(value: Any) -> Any:
    """A parameter that should be JSON: form fields that failed to decode stay strings."""
    if isinstance(value, str):
        return json.loads(value)
    return value


def _inline_results_button(call: Call) -> dict[str, Any] | None:
    """Parse ``button`` (or the legacy ``switch_pm_*``) like the Bot API server does."""
    value = call.params.get("button")
    if value is None or value == "":
        text = call.as_str("switch_pm_text")
        if not text:
            return None
        return {"text": text, "start_parameter": call.as_str("switch_pm_parameter") or ""}
    try:
        value = _json_param(value)
    except ValueError:
        raise _bad_request("can't parse inline query results button JSON object") from None
    prefix = "can't parse inline query results button: "
    if not isinstance(value, dict):
        raise _bad_request(prefix + "InlineQueryResultsButton must be an Object")
    _required_str(value, "text", prefix)
    has_start, has_web_app = "start_parameter" in value, "web_app" in value
    # Stricter than the server, which silently prefers start_parameter when both are given:
    # the docs say "You must use exactly one of the optional fields".
    if has_start == has_web_app:
        raise _bad_request(prefix + "InlineQueryResultsButton must have exactly one optional field")
    if has_start:
        _required_str(value, "start_parameter", prefix)
    else:
        web_app = value["web_app"]
        if not isinstance(web_app, dict):
            raise _bad_request(prefix + 'Field "web_app" must be of type Object')
        _required_str(web_app, "url", prefix)
    return dict(value)


def _check_start_parameter(button: dict[str, Any] | None) -> None:
    """TDLib's checks of the deep-link parameter (texts from its InlineQueriesManager)."""
    if button is None or "start_parameter" not in button:
        return
    parameter = str(button["start_parameter"])
    if not parameter:
        raise _bad_request("can't use empty start_parameter")
    if len(parameter) > MAX_INLINE_ID_BYTES:
        raise _bad_request("too long start_parameter specified")
    if not _BASE64URL_RE.fullmatch(parameter):
        raise _bad_request("unallowed characters in start_parameter are used")


def _parse_inline_result(value: Any) -> dict[str, Any]:
    """The Bot API server's parsing of one InlineQueryResult (its errors are prefixed)."""
    prefix = "can't parse inline query result: "
    if not isinstance(value, dict):
        raise _bad_request(prefix + "Inline query result must be an object")
    result_type = _required_str(value, "type", prefix).lower()
    _required_str(value, "id", prefix)
    content = value.get("input_message_content")
    if content is not None and not isinstance(content, dict):
        raise _bad_request(prefix + 'Field "input_message_content" must be of type Object')
    if content is None and result_type == "article":
        _required_str(value, "message_text", prefix)  # the legacy top-level form
    elif isinstance(content, dict) and not content.get("message_text"):
        known = {"latitude", "phone_number", "payload"} & content.keys()
        if result_type == "article" and not known:
            raise _bad_request(prefix + "Input message content is not specified")
    for source, parse_mode, entities in (
        _inline_text(value),
        (value.get("caption"), value.get("parse_mode"), value.get("caption_entities")),
    ):
        if isinstance(source, str) and source:
            try:
                _render(source, parse_mode, entities)
            except HtmlParseError as error:
                raise _bad_request(f"{prefix}Can't parse entities: {error}") from None
    markup = value.get("reply_markup")
    if markup is not None:
        if not isinstance(markup, dict):
            raise _bad_request(prefix + 'Field "reply_markup" must be of type Object')
        _validate_markup(markup)
    if result_type == "article":
        _required_str(value, "title", prefix)
    elif result_type == "photo" and not value.get("photo_url"):
        _required_str(value, "photo_file_id", prefix)
    elif result_type not in _INLINE_RESULT_TYPES:
        raise _bad_request(
            f'{prefix}type "{result_type}" is unsupported for the inline query result'
        )
    return {**value, "type": result_type, "id": str(value["id"])}


def _inline_text(result: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The text message an inline result posts: (message_text, parse_mode, entities)."""
    content = result.get("input_message_content")
    if isinstance(content, dict):
        return content.get("message_text"), content.get("parse_mode"), content.get("entities")
    return result.get("message_text"), result.get("parse_mode"), result.get("entities")


def _validate_markup(markup: Any) -> dict[str, Any] | None:
    if markup is None:
        return None
    if isinstance(markup, str):  # a JSON body may still carry the markup JSON-encoded
        with contextlib.suppress(ValueError):
            markup = json.loads(markup)
    if not isinstance(markup, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return markup
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request(
            "can't parse inline keyboard button: "
            'field "inline_keyboard" must be an Array of Arrays'
        )
    for row in rows:
        for button in row:
            _validate_button(button)
    return markup


def _validate_button(button: Any) -> None:
    if not isinstance(button, dict):
        raise _bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
        )
    if not isinstance(button.get("text"), str) or not button["text"].strip():
        raise _bad_request("can't parse inline keyboard button: Text must be non-empty")
    actions = _BUTTON_ACTIONS & button.keys()
    if len(actions) != 1:
        raise _bad_request(
            "can't parse inline keyboard button: InlineKeyboardButton must have exactly one "
            "optional field"
        )
    if "callback_data" in button:
        data = button["callback_data"]
        if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
            raise _bad_request("BUTTON_DATA_INVALID")
    if "url" in button:
        url = button["url"]
        parts = urlsplit(url) if isinstance(url, str) else None
        valid = parts is not None and (
            (parts.scheme in {"http", "https"} and bool(parts.netloc)) or parts.scheme == "tg"
        )
        if not valid:
            raise _bad_request("BUTTON_URL_INVALID")


def _json(body: dict[str, Any], status_code: int = 200) -> JSONResponse:
    """A Bot API JSON reply (``serve()`` sets TCP_NODELAY, so keep-alive stays fast)."""
    return JSONResponse(body, status_code=status_code)


def _reply(error: TelegramError) -> JSONResponse:
    return _json(error.to_json(), error.error_code)


async def _not_found(_request: Request) -> JSONResponse:
    return _reply(TelegramError(404, "Not Found"))


# --------------------------------------------------------------------------- users


class FakeUser:
    """A Telegram user in a private chat with the bot; all actions become queued updates."""

    def __init__(
        self,
        fake: FakeTelegram,
        user_id: int,
        first_name: str,
        language_code: str | None,
        *,
        last_name: str | None = None,
        username: str | None = None,
    ) -> None:
        self._fake = fake
        self.id = user_id
        self.chat_id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code

    def as_telegram(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name is not None:
            user["last_name"] = self.last_name
        if self.username is not None:
            user["username"] = self.username
        if self.language_code is not None:
            user["language_code"] = self.language_code
        return user

    @property
    def blocked(self) -> bool:
        """While True, sendMessage to this user fails with 403 like a blocked bot."""
        return self._fake._chat(self.chat_id).blocked

    @blocked.setter
    def blocked(self, value: bool) -> None:
        self._fake._chat(self.chat_id).blocked = value

    async def send(self, text: str) -> int:
        return self._fake._queue_message(self, text)

    async def press(self, button: Button, message: BotMessage) -> int:
        """Press an inline button of a bot message, an inline message or a business message.

        Anybody who sees an inline message may press its buttons; the callback query then
        carries ``inline_message_id`` and ``chat_instance`` instead of ``message``.
        """
        if button.callback_data is None:
            raise AssertionError(
                f"button {button.text!r} has no callback_data (url={button.url!r})"
            )
        return await self.press_data(button.callback_data, message)

    async def press_data(self, data: str, message: BotMessage) -> int:
        return self._fake._queue_callback(self, data, message)

    async def reply(self, text: str, timeout: float = 5.0) -> BotMessage:  # noqa: ASYNC109
        update_id = await self.send(text)
        return await self._fake._wait_for_reaction(update_id, f"message {text!r}", timeout)

    async def click(
        self,
        message: BotMessage,
        button_text: str,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> BotMessage:
        """Press a button and wait for the bot's reaction in that chat (for an inline
        message: for that message to change); returns the changed or newest message."""
        button = message.button(button_text)
        update_id = await self.press(button, message)
        query = self._fake._queries[self._fake.update(update_id)["callback_query"]["id"]]
        return await self._fake._wait_for_reaction(
            update_id,
            f"pressing {button.text!r} (data={button.callback_data!r}; needs an "
            "answerCallbackQuery too)",
            timeout,
            also=lambda: query.answered,
            message_id=message.message_id if message.inline_message_id else None,
        )

    def inline_query(self, query: str, *, chat_type: str = "sender", offset: str = "") -> int:
        """Type ``@bot query`` in a chat of type ``chat_type``; returns the update id.

        ``chat_type`` is as the Bot API reports it: "sender" (the user's chat with the bot),
        "private", "group", "supergroup" or "channel".
        """
        return self._fake._queue_inline_query(self, query, chat_type, offset)

    async def ask_inline(
        self,
        query: str,
        *,
        chat_type: str = "sender",
        offset: str = "",
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> InlineAnswer:
        """Send an inline query and wait for the bot's accepted answerInlineQuery."""
        update_id = self.inline_query(query, chat_type=chat_type, offset=offset)
        return await self._fake._wait_for_inline_answer(update_id, timeout)

    async def choose_inline(self, answer: InlineAnswer, result_id: str, chat_id: int) -> BotMessage:
        """Tap a result: it is posted in ``chat_id`` as this user's message "via" the bot.

        Queues ``chosen_inline_result`` (unless ``telegram.inline_feedback`` is off), with
        ``inline_message_id`` when the message has an inline keyboard.  The returned message
        carries its ``inline_message_id``; see :meth:`FakeTelegram.inline_message`.
        """
        return self._fake._post_inline(self, answer, result_id, chat_id)

    async def write_business(self, owner: FakeUser, text: str) -> int:
        """This customer writes to a Business account ``owner``; the bot gets a
        ``business_message`` and may answer (as the owner) for 24 hours.  Returns the
        update id."""
        return self._fake._queue_business_message(self, owner, self, text)

    async def write_business_as_owner(self, customer: FakeUser, text: str) -> int:
        """This Business account owner writes to ``customer`` by hand (``from`` is the
        owner); the bot sees it, and it does not open the 24-hour window."""
        return self._fake._queue_business_message(self, self, customer, text)

    def last_message(self) -> BotMessage:
        messages = self._fake.chat_messages(self.chat_id)
        if not messages:
            raise AssertionError(f"the bot has sent nothing to user {self.id}")
        return messages[-1]

    def newest(self, containing: str) -> BotMessage:
        """The newest message in this chat whose text contains `containing` (another message,
        say a background notice, may have arrived after it)."""
        for message in reversed(self._fake.chat_messages(self.chat_id)):
            if containing in message.text:
                return message
        raise AssertionError(f"no message with {containing!r} in the chat of user {self.id}")

    def messages_since(self, update_id: int) -> list[BotMessage]:
        """What the bot sent or edited, after ``update_id``, in the chat of that update."""
        return self._fake._messages_since(update_id)

    def answers(self) -> list[dict[str, Any]]:
        return [dict(answer) for answer in self._fake._answers.get(self.id, [])]
