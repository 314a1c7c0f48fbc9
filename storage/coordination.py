"""Tables that let several bot processes share one bot: the update inbox and heartbeats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select, update

from storage.models import BotProcessRow, TelegramUpdateRow
from storage.repositories import Sessions
from storage.types import utcnow

NOTIFY_CHANNEL = "crypto_invoice_bot"


class Busy:
    """Another live process is handling the update."""


BUSY = Busy()


class UpdateInbox:
    """PostgreSQL only: several processes share it (one process on SQLite needs no inbox)."""

    def __init__(self, sessions: Sessions, *, notify: bool) -> None:
        self._sessions = sessions
        self._notify = notify  # tell the other processes at commit (LISTEN/NOTIFY)

    async def store(self, update_id: int, chat_key: int, payload: str) -> bool:
        """Keep an update once; False when it was stored before (Telegram sent it again)."""
        async with self._sessions() as session:
            session.add(TelegramUpdateRow(update_id=update_id, chat_key=chat_key, payload=payload))
            if self._notify:
                await session.exec(
                    select(func.pg_notify(NOTIFY_CHANNEL, "updates"))  # delivered at commit
                )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
        return True

    async def store_many(self, updates: list[tuple[int, int, str]]) -> None:
        """Keep a batch of (update_id, chat_key, payload) in one transaction; those stored
        before are skipped. One notification for the whole batch."""
        if not updates:
            return
        rows = [{"update_id": u, "chat_key": c, "payload": p, "received_at": utcnow()}
                for u, c, p in updates]  # fmt: skip
        async with self._sessions() as session:
            statement = pg_insert(TelegramUpdateRow).values(rows).on_conflict_do_nothing()
            await session.exec(statement)
            if self._notify:
                await session.exec(select(func.pg_notify(NOTIFY_CHANNEL, "updates")))
            await session.commit()

    async def pending_chats(self, limit: int = 200) -> list[int]:
        """Chats with updates not processed yet, the longest waiting first."""
        async with self._sessions() as session:
            result = await session.exec(
                select(col(TelegramUpdateRow.chat_key))
                .where(col(TelegramUpdateRow.done_at).is_(None))
                .group_by(col(TelegramUpdateRow.chat_key))
                .order_by(func.min(col(TelegramUpdateRow.update_id)))
                .limit(limit)
            )
            return [int(key) for key in result.all()]

    async def claim_next(
        self, chat_key: int, owner: str, *, ttl: dt.timedelta, live_since: dt.datetime
    ) -> TelegramUpdateRow | Busy | None:
        """The chat's oldest unprocessed update, claimed for `owner`; BUSY while another
        live process (seen since `live_since`) still holds an unexpired claim on it."""
        now = utcnow()
        async with self._sessions() as session:
            row = (
                await session.exec(
                    select(TelegramUpdateRow)
                    .where(
                        col(TelegramUpdateRow.chat_key) == chat_key,
                        col(TelegramUpdateRow.done_at).is_(None),
                    )
                    .order_by(col(TelegramUpdateRow.update_id))
                    .limit(1)
                    .with_for_update()
                )
            ).first()
            if row is None:
                return None
            claimed = row.claimed_by not in (None, owner) and (row.claimed_until or now) > now
            if claimed:
                holder = await session.get(BotProcessRow, row.claimed_by)
                if holder is not None and holder.seen_at >= live_since:
                    await session.rollback()
                    return BUSY
            row.claimed_by, row.claimed_until = owner, now + ttl
            session.add(row)
            await session.commit()
            return row

    async def mark_done(self, update_id: int) -> None:
        """Done: only the id is kept (to recognise a re-send), not what the update said, which
        may be a payer's name or date of birth."""
        async with self._sessions() as session:
            await session.exec(
                update(TelegramUpdateRow)
                .where(col(TelegramUpdateRow.update_id) == update_id)
                .values(done_at=utcnow(), payload="", claimed_by=None, claimed_until=None)
            )
            await session.commit()

    async def purge_done(self, before: dt.datetime) -> int:
        """Forget processed updates (kept a while so a late re-send is still recognised)."""
        async with self._sessions() as session:
            result = await session.exec(
                delete(TelegramUpdateRow).where(
                    col(TelegramUpdateRow.done_at).is_not(None),
                    col(TelegramUpdateRow.done_at) < before,
                )
            )
            await session.commit()
            return int(result.rowcount or 0)


class ProcessRegistry:
    """Heartbeats of the running processes (`bot_process`)."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def beat(self, process_id: str, role: str, leader: bool) -> None:
        async with self._sessions() as session:
            result = await session.exec(
                update(BotProcessRow)
                .where(col(BotProcessRow.id) == process_id)
                .values(role=role, leader=leader, seen_at=utcnow())
            )
            if not result.rowcount:
                session.add(BotProcessRow(id=process_id, role=role, leader=leader))
            await session.commit()

    async def live(self, seen_since: dt.datetime) -> Sequence[BotProcessRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(BotProcessRow)
                .where(col(BotProcessRow.seen_at) >= seen_since)
                .order_by(col(BotProcessRow.started_at))
            )
            return result.all()

    async def forget(self, process_id: str, *, stale_before: dt.datetime) -> None:
        """Remove this process (stopping) and any not seen for long (killed)."""
        async with self._sessions() as session:
            await session.exec(
                delete(BotProcessRow).where(
                    (col(BotProcessRow.id) == process_id)
                    | (col(BotProcessRow.seen_at) < stale_before)
                )
            )
            await session.commit()
