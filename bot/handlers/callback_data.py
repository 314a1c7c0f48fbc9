"""The data behind every inline button, as typed values instead of hand-split strings.

Telegram hands back a button's `callback_data` verbatim, but any client can send any string
(up to 64 bytes) in its place, so reading one is parsing untrusted input: anything that is not
exactly a string these builders produce reads as None, never as an exception.

Formats (all ASCII, every field checked, numbers without leading zeros):

- `new`: start a new invoice (`NewInvoice`).
- `list|<page>`: a page of the invoice list, page 0-999999 (`ListPage`).
- `inv|<action>|<invoice id>`: a button on an invoice card, action `cancel` (ask to cancel),
  `cancelok` (cancel confirmed), `keep` (do not cancel), `refresh`, `again` (a new
  invoice for the same customer and currency), `qr` (the pay link as a QR code), `biz`
  (send it in a Business chat) or `remind` (remind the customer); id 1-999999999999
  (`InvoiceButton`).
- `pay|qr|<token>`: the payer's QR code button; the token is the invoice's payer token,
  16-48 characters of `A-Za-z0-9_-` (`PayerButton`).
- `biz|<invoice id>|<chat id>`: post the invoice in that Business chat (`BusinessSend`).
- `cus|<action>|<customer id>`: erasing a customer's data, action `forget` (confirmed) or
  `keep` (not erased); id 1-999999999999 (`CustomerButton`).
- `<draft id>|<action>|<arg>`: a button bound to one draft (16 lowercase hex digits), so a stale
  button can never act on another draft (`DraftButton`). Action and argument:

  ========= ==================================================================
  cur       a currency code, `[A-Z0-9_]{1,16}`
  cus       a customer id (1-12 digits), `natural` or `legal` (a new payer), or `new`
  st        a sender type, `natural` or `legal` (buttons of older versions)
  cty       a suggested country, ISO alpha-3
  confirm   the preview revision being confirmed, 0-9 digits
  edit      nothing (open the edit menu)
  cancel    nothing (cancel the draft)
  ed        the field to edit (a step name, e.g. `title`, `birth_date`) or `back`
  ========= ==================================================================

Every value validates itself when constructed (`ValueError` otherwise), so `build()` always
returns a string that `parse_callback_data` reads back to an equal value, at most 64 bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, cast, get_args

MAX_BYTES: Final = 64
"""Telegram's limit on `callback_data`, in bytes of UTF-8."""

DraftAction = Literal["cur", "cus", "st", "cty", "confirm", "edit", "cancel", "ed"]
InvoiceAction = Literal["cancel", "cancelok", "keep", "refresh", "again", "qr", "biz", "remind"]
PayerAction = Literal["qr"]
CustomerAction = Literal["forget", "keep"]

DRAFT_ACTIONS: Final[frozenset[str]] = frozenset(get_args(DraftAction))
INVOICE_ACTIONS: Final[frozenset[str]] = frozenset(get_args(InvoiceAction))
CUSTOMER_ACTIONS: Final[frozenset[str]] = frozenset(get_args(CustomerAction))
PAYER_ACTIONS: Final[frozenset[str]] = frozenset(get_args(PayerAction))
EDIT_FIELDS: Final = (
    "amount", "currency", "title", "customer", "first_name", "last_name", "birth_date",
    "legal_name", "country", "email", "back",
)  # fmt: skip
SENDER_TYPES: Final = ("natural", "legal")

MAX_INVOICE_ID: Final = 10**12 - 1
MAX_PAGE: Final = 10**6 - 1

_DRAFT_ID = re.compile(r"[0-9a-f]{16}")
_DRAFT_ARG: Final[dict[str, re.Pattern[str]]] = {
    "cur": re.compile(r"[A-Z0-9_]{1,16}"),
    "cus": re.compile(r"[0-9]{1,12}|new|natural|legal"),
    "st": re.compile("|".join(SENDER_TYPES)),
    "cty": re.compile(r"[A-Z]{3}"),
    "confirm": re.compile(r"[0-9]{0,9}"),
    "edit": re.compile(r""),
    "cancel": re.compile(r""),
    "ed": re.compile("|".join(EDIT_FIELDS)),
}
assert set(_DRAFT_ARG) == DRAFT_ACTIONS

# Whole-string shapes; fields are then checked by the dataclasses themselves.
_LIST = re.compile(r"list\|(0|[1-9][0-9]{0,5})")
_INVOICE = re.compile(r"inv\|([a-z]{1,16})\|([1-9][0-9]{0,11})")
_CUSTOMER = re.compile(r"cus\|([a-z]{1,16})\|([1-9][0-9]{0,11})")
_PAYER = re.compile(r"pay\|([a-z]{1,16})\|([A-Za-z0-9_-]{16,48})")
_BUSINESS = re.compile(r"biz\|([1-9][0-9]{0,11})\|([1-9][0-9]{0,15})")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,48}")
MAX_CHAT_ID: Final = 10**16 - 1
_DRAFT = re.compile(r"([0-9a-f]{16})\|([a-z]{1,16})\|([A-Za-z0-9_]{0,16})")


@dataclass(frozen=True, slots=True)
class NewInvoice:
    """The `new` button: start a new invoice."""

    def build(self) -> str:
        return "new"


@dataclass(frozen=True, slots=True)
class ListPage:
    """A pager button of the invoice list; `page` counts from 0."""

    page: int

    def __post_init__(self) -> None:
        if type(self.page) is not int or not 0 <= self.page <= MAX_PAGE:
            raise ValueError(f"list page out of range: {self.page!r}")

    def build(self) -> str:
        return f"list|{self.page}"


@dataclass(frozen=True, slots=True)
class InvoiceButton:
    """A button on an invoice card: cancel (ask), cancelok (confirmed), keep, refresh."""

    action: InvoiceAction
    invoice_id: int

    def __post_init__(self) -> None:
        if self.action not in INVOICE_ACTIONS:
            raise ValueError(f"unknown invoice action: {self.action!r}")
        if type(self.invoice_id) is not int or not 1 <= self.invoice_id <= MAX_INVOICE_ID:
            raise ValueError(f"invoice id out of range: {self.invoice_id!r}")

    def build(self) -> str:
        return f"inv|{self.action}|{self.invoice_id}"


@dataclass(frozen=True, slots=True)
class CustomerButton:
    """The answer to "erase this customer's data?": forget (yes) or keep."""

    action: CustomerAction
    customer_id: int

    def __post_init__(self) -> None:
        if self.action not in CUSTOMER_ACTIONS:
            raise ValueError(f"unknown customer action: {self.action!r}")
        if type(self.customer_id) is not int or not 1 <= self.customer_id <= MAX_INVOICE_ID:
            raise ValueError(f"customer id out of range: {self.customer_id!r}")

    def build(self) -> str:
        return f"cus|{self.action}|{self.customer_id}"


@dataclass(frozen=True, slots=True)
class PayerButton:
    """A button on a payer's card; `token` is the invoice's payer token, never its id."""

    action: PayerAction
    token: str

    def __post_init__(self) -> None:
        if self.action not in PAYER_ACTIONS:
            raise ValueError(f"unknown payer action: {self.action!r}")
        if not isinstance(self.token, str) or not _TOKEN.fullmatch(self.token):
            raise ValueError("not a payer token")

    def build(self) -> str:
        return f"pay|{self.action}|{self.token}"


@dataclass(frozen=True, slots=True)
class BusinessSend:
    """Post invoice `invoice_id` in the merchant's Business chat with the customer `chat_id`."""

    invoice_id: int
    chat_id: int

    def __post_init__(self) -> None:
        if type(self.invoice_id) is not int or not 1 <= self.invoice_id <= MAX_INVOICE_ID:
            raise ValueError(f"invoice id out of range: {self.invoice_id!r}")
        if type(self.chat_id) is not int or not 1 <= self.chat_id <= MAX_CHAT_ID:
            raise ValueError(f"chat id out of range: {self.chat_id!r}")

    def build(self) -> str:
        return f"biz|{self.invoice_id}|{self.chat_id}"


@dataclass(frozen=True, slots=True)
class DraftButton:
    """A button bound to one draft; `arg` is what the action needs (see the module table)."""

    draft_id: str
    action: DraftAction
    arg: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.draft_id, str) or not _DRAFT_ID.fullmatch(self.draft_id):
            raise ValueError(f"not a draft id: {self.draft_id!r}")
        pattern = _DRAFT_ARG.get(self.action) if isinstance(self.action, str) else None
        if pattern is None:
            raise ValueError(f"unknown draft action: {self.action!r}")
        if not isinstance(self.arg, str) or not pattern.fullmatch(self.arg):
            raise ValueError(f"bad argument for {self.action}: {self.arg!r}")

    def build(self) -> str:
        return f"{self.draft_id}|{self.action}|{self.arg}"


CallbackData = (
    BusinessSend
    | CustomerButton
    | DraftButton
    | InvoiceButton
    | ListPage
    | NewInvoice
    | PayerButton
)


def parse_callback_data(data: str | None) -> CallbackData | None:
    """The button `data` stands for, or None for anything malformed. Never raises."""
    if not isinstance(data, str) or not 0 < len(data) <= MAX_BYTES or not data.isascii():
        return None  # all valid data is ASCII, so its length in characters is its size in bytes
    try:
        if data == "new":
            return NewInvoice()
        if match := _LIST.fullmatch(data):
            return ListPage(int(match[1]))
        if match := _INVOICE.fullmatch(data):
            if match[1] not in INVOICE_ACTIONS:
                return None
            return InvoiceButton(cast(InvoiceAction, match[1]), int(match[2]))
        if match := _CUSTOMER.fullmatch(data):
            if match[1] not in CUSTOMER_ACTIONS:
                return None
            return CustomerButton(cast(CustomerAction, match[1]), int(match[2]))
        if match := _PAYER.fullmatch(data):
            if match[1] not in PAYER_ACTIONS:
                return None
            return PayerButton(cast(PayerAction, match[1]), match[2])
        if match := _BUSINESS.fullmatch(data):
            return BusinessSend(int(match[1]), int(match[2]))
        if match := _DRAFT.fullmatch(data):
            if match[2] not in DRAFT_ACTIONS:
                return None
            return DraftButton(match[1], cast(DraftAction, match[2]), match[3])
    except ValueError:
        return None
    return None


def matcher(kind: type[CallbackData], *actions: str) -> Callable[[object], bool]:
    """A `CallbackQueryHandler(pattern=...)` predicate: data of `kind`, one of `actions` if any.

    For example `matcher(InvoiceButton, "cancel", "refresh")` or `matcher(ListPage)`.
    """
    wanted = frozenset(actions)
    known = {
        DraftButton: DRAFT_ACTIONS,
        InvoiceButton: INVOICE_ACTIONS,
        CustomerButton: CUSTOMER_ACTIONS,
        PayerButton: PAYER_ACTIONS,
    }.get(kind, frozenset())
    if not wanted <= known:
        raise ValueError(f"{kind.__name__} has no action(s) {sorted(wanted - known)}")

    def matches(data: object) -> bool:
        parsed = parse_callback_data(data if isinstance(data, str) else None)
        if not isinstance(parsed, kind):
            return False
        if wanted and isinstance(
            parsed, CustomerButton | DraftButton | InvoiceButton | PayerButton
        ):
            return parsed.action in wanted
        return True

    return matches
