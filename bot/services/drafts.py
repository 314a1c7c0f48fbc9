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
from storage.sealing import Sealer

_DECIMAL_FIELDS = {"amount"}
# What identifies the payer: kept only while the draft is open (the provider needs it at
# Confirm, and the customer record keeps what a repeat invoice needs), removed on close.
PERSONAL_FIELDS = ("first_name", "last_name", "date_of_birth", "legal_name", "country_alpha3",
                   "email")  # fmt: skip
_DATE_FIELDS = {"date_of_birth"}
SEALED_KEY = "sealed"


def _payload(draft: Draft) -> dict[str, Any]:
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
    return data


def closed_payload(draft: Draft) -> str:
    """The draft as it is kept once closed: without the payer's personal data."""
    data = _payload(draft)
    for name in PERSONAL_FIELDS:
        data.pop(name, None)
    return json.dumps(data, ensure_ascii=False)


def _scrub_row(row: DraftRow) -> str:
    data: dict[str, Any] = json.loads(row.payload or "{}")
    for name in (*PERSONAL_FIELDS, SEALED_KEY):
        data.pop(name, None)
    return json.dumps(data, ensure_ascii=False)


class DraftCodec:
    """A draft to and from its stored payload; personal fields travel sealed (DATA_KEY),
    bound to the draft's id, so they never touch the disk in plaintext."""

    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def digest(self, *parts: str) -> str:
        return self._sealer.digest(*parts)

    def encode(self, draft: Draft) -> str:
        data = _payload(draft)
        personal = {name: data.pop(name) for name in PERSONAL_FIELDS}
        personal = {name: value for name, value in personal.items() if value is not None}
        if personal:
            data[SEALED_KEY] = self._sealer.seal(personal, f"draft:{draft.id}")
        return json.dumps(data, ensure_ascii=False)

    def decode(self, row: DraftRow) -> Draft:
        data: dict[str, Any] = json.loads(row.payload or "{}")
        sealed = data.pop(SEALED_KEY, None)
        if sealed is not None:
            data.update(self._sealer.open(sealed, f"draft:{row.id}"))
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


class DraftService:
    def __init__(self, repository: DraftRepository, codec: DraftCodec) -> None:
        self._repository = repository
        self._codec = codec

    async def start(self, draft: Draft) -> Draft:
        """Open `draft` (made by `new`); any draft left open in this chat is closed first."""
        row = DraftRow(
            id=draft.id, merchant_id=draft.merchant_id, chat_id=draft.chat_id, step=draft.step,
            payload=self._codec.encode(draft),
        )  # fmt: skip
        return self._codec.decode(await self._repository.start(row, scrub=_scrub_row))

    def fingerprint(self, text: str) -> str:
        """A keyed digest of an answer (never the answer itself: it may be a name), to
        recognise the same answer typed again."""
        return self._codec.digest("answer", " ".join(text.split()))[:16]

    @staticmethod
    def new(merchant_id: int, chat_id: int) -> Draft:
        return Draft(id=secrets.token_hex(8), merchant_id=merchant_id, chat_id=chat_id)

    async def current(self, merchant_id: int, chat_id: int) -> Draft | None:
        row = await self._repository.open_for(merchant_id, chat_id)
        return self._codec.decode(row) if row is not None else None

    async def save(self, draft: Draft) -> bool:
        """Store the answers and the step; False when the draft was closed meanwhile."""
        return await self._repository.save_payload(draft.id, self._codec.encode(draft), draft.step)

    async def cancel(self, merchant_id: int, chat_id: int) -> Draft | None:
        """Close the chat's open draft; the draft as it was, or None if none was open."""
        row = await self._repository.open_for(merchant_id, chat_id)
        if row is None or not await self._repository.transition(
            row.id, "open", "cancelled", payload=_scrub_row(row)
        ):
            return None
        return self._codec.decode(row)

    async def expire_idle(self, idle_since: dt.datetime) -> list[Draft]:
        """Close drafts nobody touched since `idle_since`; each is closed once (CAS)."""
        closed = []
        for row in await self._repository.idle_open(idle_since):
            if await self._repository.transition(
                row.id, "open", "cancelled", payload=_scrub_row(row)
            ):
                closed.append(self._codec.decode(row))
        return closed

    async def sweep_closed(self, limit: int = 200) -> int:
        """Remove personal data any closed draft still holds (closed by an older version, or
        by a process that died between closing and scrubbing). Returns how many."""
        rows = await self._repository.unscrubbed_closed(limit)
        for row in rows:
            await self._repository.scrub(row.id, _scrub_row(row))
        return len(rows)
