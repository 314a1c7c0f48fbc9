"""The invoice being composed, saved after every answer so a restart loses nothing."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from decimal import Decimal
from typing import Any

from bot.domain import Draft, SenderType
from storage.models import DraftRow
from storage.repositories import DraftRepository

_DECIMAL_FIELDS = {"amount"}
_DATE_FIELDS = {"date_of_birth"}


def _encode(draft: Draft) -> str:
    data: dict[str, Any] = {}
    for name in Draft.__slots__:
        if name in {"id", "merchant_id", "chat_id"}:
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
    known = set(Draft.__slots__)
    fields = {key: value for key, value in data.items() if key in known}
    return Draft(id=row.id, merchant_id=row.merchant_id, chat_id=row.chat_id, **fields)


class DraftService:
    def __init__(self, repository: DraftRepository) -> None:
        self._repository = repository

    async def start(self, merchant_id: int, chat_id: int) -> Draft:
        """A fresh draft; any draft left open in this chat is closed first."""
        row = DraftRow(id=secrets.token_hex(8), merchant_id=merchant_id, chat_id=chat_id)
        row.payload = _encode(Draft(id=row.id, merchant_id=merchant_id, chat_id=chat_id))
        return decode_draft(await self._repository.start(row))

    async def current(self, merchant_id: int, chat_id: int) -> Draft | None:
        row = await self._repository.open_for(merchant_id, chat_id)
        return decode_draft(row) if row is not None else None

    async def save(self, draft: Draft) -> bool:
        return await self._repository.save_payload(draft.id, _encode(draft))

    async def cancel(self, merchant_id: int, chat_id: int) -> bool:
        row = await self._repository.open_for(merchant_id, chat_id)
        return row is not None and await self._repository.transition(row.id, "open", "cancelled")
