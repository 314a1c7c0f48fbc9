"""The invoice being composed, saved after every answer so a restart loses nothing."""

from __future__ import annotations

import copy
import datetime as dt
import json
import secrets
from decimal import Decimal
from typing import Any

from bot.domain import Draft, SenderType
from storage.models import DraftRow
from storage.repositories import DraftRepository

_DECIMAL_FIELDS = {"amount"}
# What identifies the payer: kept only while the draft is open (the provider needs it at
# Confirm, and the customer record keeps what a repeat invoice needs), removed on close.
PERSONAL_FIELDS = ("first_name", "last_name", "date_of_birth", "legal_name", "country_alpha3",
                   "email")  # fmt: skip
_DATE_FIELDS = {"date_of_birth"}


def _encode(draft: Draft) -> str:
    data: dict[str, Any] = {}
    for name in Draft.__slots__:
        if name in {"id", "merchant_id", "chat_id", "step"}:
            continue
        value = getattr(draft, name)
        if isinstance(value, Decimal):
            value = format(value, "f")
        elif isinstance(value, dt.date):
            value = value.isoformat()
        data[name] = value
    return json.dumps(data, ensure_ascii=False)


def decode_draft(row: DraftRow) -> Draft:
    data: dict[str, Any] = json.loads(row.payload or "{}")
    for name in _DECIMAL_FIELDS:
        if data.get(name) is not None:
            data[name] = Decimal(data[name])
    for name in _DATE_FIELDS:
        if data.get(name) is not None:
            data[name] = dt.date.fromisoformat(data[name])
    if data.get("sender_type") is not None:
        data["sender_type"] = SenderType(data["sender_type"])
    known = set(Draft.__slots__) - {"id", "merchant_id", "chat_id", "step"}
    fields = {key: value for key, value in data.items() if key in known}
    return Draft(
        id=row.id, merchant_id=row.merchant_id, chat_id=row.chat_id, step=row.step, **fields
    )


def closed_payload(draft: Draft) -> str:
    """The draft as it is kept once closed: without the payer's personal data."""
    scrubbed = copy.copy(draft)
    for name in PERSONAL_FIELDS:
        setattr(scrubbed, name, None)
    return _encode(scrubbed)


def _scrub_row(row: DraftRow) -> str:
    return closed_payload(decode_draft(row))


class DraftService:
    def __init__(self, repository: DraftRepository) -> None:
        self._repository = repository

    async def start(self, draft: Draft) -> Draft:
        """Open `draft` (made by `new`); any draft left open in this chat is closed first."""
        row = DraftRow(
            id=draft.id, merchant_id=draft.merchant_id, chat_id=draft.chat_id, step=draft.step,
            payload=_encode(draft),
        )  # fmt: skip
        return decode_draft(await self._repository.start(row, scrub=_scrub_row))

    @staticmethod
    def new(merchant_id: int, chat_id: int) -> Draft:
        return Draft(id=secrets.token_hex(8), merchant_id=merchant_id, chat_id=chat_id)

    async def current(self, merchant_id: int, chat_id: int) -> Draft | None:
        row = await self._repository.open_for(merchant_id, chat_id)
        return decode_draft(row) if row is not None else None

    async def save(self, draft: Draft) -> bool:
        """Store the answers and the step; False when the draft was closed meanwhile."""
        return await self._repository.save_payload(draft.id, _encode(draft), draft.step)

    async def cancel(self, merchant_id: int, chat_id: int) -> Draft | None:
        """Close the chat's open draft; the draft as it was, or None if none was open."""
        row = await self._repository.open_for(merchant_id, chat_id)
        if row is None or not await self._repository.transition(
            row.id, "open", "cancelled", payload=_scrub_row(row)
        ):
            return None
        return decode_draft(row)

    async def expire_idle(self, idle_since: dt.datetime) -> list[Draft]:
        """Close drafts nobody touched since `idle_since`; each is closed once (CAS)."""
        closed = []
        for row in await self._repository.idle_open(idle_since):
            if await self._repository.transition(
                row.id, "open", "cancelled", payload=_scrub_row(row)
            ):
                closed.append(decode_draft(row))
        return closed

    async def sweep_closed(self, limit: int = 200) -> int:
        """Remove personal data any closed draft still holds (closed by an older version, or
        by a process that died between closing and scrubbing). Returns how many."""
        rows = await self._repository.unscrubbed_closed(limit)
        for row in rows:
            await self._repository.scrub(row.id, _scrub_row(row))
        return len(rows)
