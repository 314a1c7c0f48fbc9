"""A fake Telegram Bot API server, so tests can drive the real PTB bot over real HTTP.

The bot under test is built with ``.base_url(fake.base_url)`` and long-polls this server;
tests then act as Telegram users through :class:`FakeUser`.  The fake deliberately mimics
the Bot API's picky behaviour (HTML validation, "message is not modified", button limits)
because those are the errors that break bots in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import html as html_lib
import itertools
import json
import re
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
    "BotMessage",
    "Button",
    "Call",
    "FakeTelegram",
    "FakeUser",
    "HtmlParseError",
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
    "supports_inline_queries": False,
    "can_connect_to_business": False,
    "has_main_web_app": False,
}

# Messages carry only the identity part of the bot user, as on the real API.
_BOT_FROM = {key: BOT_USER[key] for key in ("id", "is_bot", "first_name", "username")}

MAX_MESSAGE_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200
POLL_CAP_SECONDS = 1.0
"""Long-poll waits are capped so that stopping the bot never hangs a test for long."""
QUIET_PERIOD_SECONDS = 0.15
STEP_SECONDS = 0.01

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

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

_KNOWN_METHODS = (
    "getMe",
    "deleteWebhook",
    "setWebhook",
    "getWebhookInfo",
    "getUpdates",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
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


@dataclass
class BotMessage:
    """A message the bot sent, as the fake currently stores it.

    Values handed to tests are snapshots: they do not change when the bot edits later,
    so a test can compare "before" and "after" objects.
    """

    chat_id: int
    message_id: int
    text: str
    html: str | None
    reply_markup: dict[str, Any] | None
    edits: int = 0
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    """The Message object exactly as the Bot API returns it (and as callbacks carry it)."""
    activity: int = field(default=0, repr=False)
    """The chat's activity counter at this message's last send/edit; orders "most recent"."""

    def buttons(self) -> list[Button]:
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [
            Button(
                text=str(button.get("text", "")),
                callback_data=button.get("callback_data"),
                url=button.get("url"),
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
    id: int
    first_name: str
    blocked: bool = False
    next_message_id: int = 1
    activity: int = 0
    messages: dict[int, BotMessage] = field(default_factory=dict)
    user_message_ids: set[int] = field(default_factory=set)

    def as_telegram(self) -> dict[str, Any]:
        return {"id": self.id, "first_name": self.first_name, "type": "private"}

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass
class _Query:
    user_id: int
    chat_id: int
    answered: bool = False


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
        self._update_marks: dict[int, tuple[int, int]] = {}  # update_id -> (chat_id, activity)
        self._all_updates: dict[int, dict[str, Any]] = {}
        self._query_ids = itertools.count(4_000_000_000_001)
        self._queries: dict[str, _Query] = {}
        self._answers: dict[int, list[dict[str, Any]]] = {}
        self._chats: dict[int, _Chat] = {}
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
            "editMessageText": lambda call: self._edit_message(call, text=True),
            "editMessageReplyMarkup": lambda call: self._edit_message(call, text=False),
            "answerCallbackQuery": self._answer_callback_query,
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
        self, user_id: int, first_name: str = "Alice", language_code: str | None = "en"
    ) -> FakeUser:
        chat = self._chats.get(user_id)
        if chat is None:
            self._chats[user_id] = _Chat(id=user_id, first_name=first_name)
        else:
            chat.first_name = first_name
        return FakeUser(self, user_id, first_name, language_code)

    def calls_to(self, method: str) -> list[Call]:
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def chat_messages(self, chat_id: int) -> list[BotMessage]:
        chat = self._chats.get(chat_id)
        if chat is None:
            return []
        return [copy.deepcopy(chat.messages[key]) for key in sorted(chat.messages)]

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

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _enqueue(self, chat: _Chat, payload: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        update = {"update_id": update_id, **payload}
        self._updates.append(update)
        self._all_updates[update_id] = update
        self._update_marks[update_id] = (chat.id, chat.activity)
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
        }
        if text.startswith("/") and len(text) > 1:
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        return self._enqueue(chat, {"message": message})

    def _queue_callback(self, user: FakeUser, data: str, message: BotMessage) -> int:
        if message.chat_id != user.chat_id:
            raise AssertionError(
                f"message #{message.message_id} is in chat {message.chat_id}, "
                f"not in user {user.id}'s chat"
            )
        chat = self._chat(user.chat_id)
        current = chat.messages.get(message.message_id)
        query_id = str(next(self._query_ids))
        self._queries[query_id] = _Query(user_id=user.id, chat_id=chat.id)
        query = {
            "id": query_id,
            "from": user.as_telegram(),
            "message": copy.deepcopy((current or message).raw),
            "chat_instance": str(chat.id * 7919 + 1_000_000_007),
            "data": data,
        }
        return self._enqueue(chat, {"callback_query": query})

    async def _wait_for_reaction(
        self,
        update_id: int,
        what: str,
        timeout: float,  # noqa: ASYNC109 - checked between polls, like wait_for()
        also: Callable[[], bool] | None = None,
    ) -> BotMessage:
        """Wait for bot activity after ``update_id``, then for it to go quiet."""
        chat_id, mark = self._update_marks[update_id]
        chat = self._chat(chat_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (chat.activity > mark and (also is None or also())):
            if loop.time() >= deadline:
                raise AssertionError(
                    self._diagnostics(
                        f"timed out after {timeout}s waiting for the bot to react to {what} "
                        f"(update {update_id})",
                        chat_id,
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
                    self._diagnostics(f"the bot never went quiet after {what}", chat_id)
                )
        latest = max(chat.messages.values(), key=lambda m: m.activity)
        return copy.deepcopy(latest)

    def _messages_since(self, update_id: int) -> list[BotMessage]:
        chat_id, mark = self._update_marks[update_id]
        return [m for m in self.chat_messages(chat_id) if m.activity > mark]

    def _diagnostics(self, headline: str, chat_id: int | None = None) -> str:
        lines = [headline]
        if chat_id is not None:
            messages = self.chat_messages(chat_id)
            lines.append(f"bot messages in chat {chat_id}: {len(messages)}")
            for message in messages[-5:]:
                buttons = [b.text for b in message.buttons()]
                lines.append(
                    f"  #{message.message_id} edits={message.edits} "
                    f"{_shorten(message.text)!r} buttons={buttons}"
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

    def _send_message(self, call: Call) -> dict[str, Any]:
        chat = self._target_chat(call)
        text, html, entities = _message_content(call)
        markup = _validate_markup(call.params.get("reply_markup"))
        message_id = chat.take_message_id()
        raw: dict[str, Any] = {
            "message_id": message_id,
            "from": dict(_BOT_FROM),
            "chat": chat.as_telegram(),
            "date": int(time.time()),
            "text": text,
        }
        if entities:
            raw["entities"] = entities
        if markup is not None and "inline_keyboard" in markup:
            raw["reply_markup"] = markup
        message = BotMessage(
            chat_id=chat.id,
            message_id=message_id,
            text=text,
            html=html,
            reply_markup=markup,
            raw=raw,
        )
        chat.messages[message_id] = message
        self._touch(chat, message)
        return copy.deepcopy(raw)

    def _edit_message(self, call: Call, *, text: bool) -> dict[str, Any] | bool:
        if call.params.get("inline_message_id"):
            return True
        chat_id, message_id = call.as_int("chat_id"), call.as_int("message_id")
        chat = self._chats.get(chat_id) if chat_id is not None else None
        message = chat.messages.get(message_id) if chat and message_id is not None else None
        if chat is None or message is None:
            if chat is not None and message_id in chat.user_message_ids:
                raise _bad_request("message can't be edited")
            raise _bad_request("message to edit not found")
        if text:
            new_text, new_html, new_entities = _message_content(call)
        else:
            new_text, new_html = message.text, message.html
            new_entities = list(message.raw.get("entities", []))
        markup = _validate_markup(call.params.get("reply_markup"))
        if markup is not None and "inline_keyboard" not in markup:
            raise _bad_request("inline keyboard expected")
        if (
            new_text == message.text
            and new_entities == message.raw.get("entities", [])
            and markup == message.raw.get("reply_markup")
        ):
            raise _bad_request(NOT_MODIFIED.removeprefix("Bad Request: "))
        message.text, message.html, message.reply_markup = new_text, new_html, markup
        message.edits += 1
        message.raw["text"] = new_text
        message.raw["edit_date"] = int(time.time())
        for key, value in (("entities", new_entities), ("reply_markup", markup)):
            if value:
                message.raw[key] = value
            else:
                message.raw.pop(key, None)
        self._touch(chat, message)
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


def _message_content(call: Call) -> tuple[str, str | None, list[dict[str, Any]]]:
    """Validate and render ``text``/``parse_mode``/``entities`` the way Telegram does.

    Only HTML is rendered; Markdown/MarkdownV2 text is stored verbatim.
    """
    source = call.params.get("text")
    if not isinstance(source, str) or not source.strip():
        raise _bad_request("message text is empty")
    parse_mode = (call.as_str("parse_mode") or "").lower()
    html: str | None = None
    if parse_mode == "html":
        try:
            text, entities = parse_telegram_html(source)
        except HtmlParseError as error:
            raise _bad_request(f"can't parse entities: {error}") from None
        html = source
    else:
        text = source
        given = call.params.get("entities")
        entities = [e for e in given if isinstance(e, dict)] if isinstance(given, list) else []
    text, entities = _strip_text(text, entities)
    if not text:
        raise _bad_request("message text is empty")
    if len(text) > MAX_MESSAGE_LENGTH:
        raise _bad_request("message is too long")
    return text, html, entities


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
        self, fake: FakeTelegram, user_id: int, first_name: str, language_code: str | None
    ) -> None:
        self._fake = fake
        self.id = user_id
        self.chat_id = user_id
        self.first_name = first_name
        self.language_code = language_code

    def as_telegram(self) -> dict[str, Any]:
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
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
        button = message.button(button_text)
        update_id = await self.press(button, message)
        query = self._fake._queries[self._fake.update(update_id)["callback_query"]["id"]]
        return await self._fake._wait_for_reaction(
            update_id,
            f"pressing {button.text!r} (data={button.callback_data!r}; needs an "
            "answerCallbackQuery too)",
            timeout,
            also=lambda: query.answered,
        )

    def last_message(self) -> BotMessage:
        messages = self._fake.chat_messages(self.chat_id)
        if not messages:
            raise AssertionError(f"the bot has sent nothing to user {self.id}")
        return messages[-1]

    def messages_since(self, update_id: int) -> list[BotMessage]:
        return self._fake._messages_since(update_id)

    def answers(self) -> list[dict[str, Any]]:
        return [dict(answer) for answer in self._fake._answers.get(self.id, [])]
