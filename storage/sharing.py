"""Where invoices are shown beyond the merchant's chat: payer links, live views, Business."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update

from storage.models import BusinessChatRow, BusinessConnectionRow, InvoiceRow, InvoiceViewRow
from storage.repositories import Sessions
from storage.types import utcnow

UNPAID = ("created", "pending")  # nothing arrived yet


class ShareRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def set_token(self, invoice_id: int, token: str) -> str:
        """Give the invoice its payer token once; the token it has if it had one."""
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id, col(InvoiceRow.payer_token).is_(None))
                .values(payer_token=token)
            )
            await session.commit()
            row = await session.get(InvoiceRow, invoice_id)
            assert row is not None and row.payer_token is not None
            return row.payer_token

    async def by_token(self, token: str) -> InvoiceRow | None:
        async with self._sessions() as session:
            result = await session.exec(select(InvoiceRow).where(InvoiceRow.payer_token == token))
            return result.first()

    async def add_view(self, view: InvoiceViewRow) -> InvoiceViewRow:
        """Record a view; the existing one when the same place was recorded before."""
        async with self._sessions() as session:
            session.add(view)
            try:
                await session.commit()
                return view
            except IntegrityError:
                await session.rollback()
        existing = await self.find_view(view)
        if existing is None:
            raise RuntimeError("view insert failed without a conflicting row")
        return existing

    async def find_view(self, view: InvoiceViewRow) -> InvoiceViewRow | None:
        async with self._sessions() as session:
            query = select(InvoiceViewRow)
            if view.inline_message_id is not None:
                query = query.where(InvoiceViewRow.inline_message_id == view.inline_message_id)
            else:
                query = query.where(
                    InvoiceViewRow.invoice_id == view.invoice_id,
                    InvoiceViewRow.kind == view.kind,
                    InvoiceViewRow.chat_id == view.chat_id,
                )
            return (await session.exec(query)).first()

    async def has_payer_view(self, chat_id: int) -> bool:
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceViewRow.id)
                .where(InvoiceViewRow.kind == "payer", InvoiceViewRow.chat_id == chat_id)
                .limit(1)
            )
            return result.first() is not None

    async def update_view(self, view_id: int, **values: object) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceViewRow).where(col(InvoiceViewRow.id) == view_id).values(**values)
            )
            await session.commit()

    async def views_behind(self, limit: int = 200) -> Sequence[tuple[InvoiceViewRow, InvoiceRow]]:
        """Views whose card or payer notice lags the invoice's status."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceViewRow, InvoiceRow)
                .join(InvoiceRow, col(InvoiceRow.id) == col(InvoiceViewRow.invoice_id))
                .where(
                    col(InvoiceRow.status).is_not(None),
                    or_(
                        col(InvoiceViewRow.shown_status).is_(None),
                        col(InvoiceViewRow.shown_status) != col(InvoiceRow.status),
                    ),
                )
                .order_by(col(InvoiceViewRow.id))
                .limit(limit)
            )
            return result.all()

    async def views_of(self, invoice_id: int) -> Sequence[InvoiceViewRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceViewRow).where(InvoiceViewRow.invoice_id == invoice_id)
            )
            return result.all()

    async def expiring_unreminded(
        self, kind: str, before: dt.datetime
    ) -> Sequence[tuple[InvoiceViewRow, InvoiceRow]]:
        """Views of unpaid invoices expiring before `before` whose reader was not reminded."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceViewRow, InvoiceRow)
                .join(InvoiceRow, col(InvoiceRow.id) == col(InvoiceViewRow.invoice_id))
                .where(
                    InvoiceViewRow.kind == kind,
                    col(InvoiceViewRow.reminded_at).is_(None),
                    col(InvoiceRow.expires_at).is_not(None),
                    col(InvoiceRow.expires_at) < before,
                    col(InvoiceRow.expires_at) > utcnow(),
                    col(InvoiceRow.status).in_(UNPAID),
                )
            )
            return result.all()

    async def claim_reminder(self, view_id: int) -> bool:
        """Mark a view reminded; False if it was already (each reminder is sent once), or if
        its invoice is paid, cancelled or expired by now (never a reminder after paid)."""
        still_open = (
            select(col(InvoiceRow.id))
            .where(
                col(InvoiceRow.id) == col(InvoiceViewRow.invoice_id),
                col(InvoiceRow.status).in_((*UNPAID, "partial")),
            )
            .exists()
        )
        async with self._sessions() as session:
            result = await session.exec(
                update(InvoiceViewRow)
                .where(
                    col(InvoiceViewRow.id) == view_id,
                    col(InvoiceViewRow.reminded_at).is_(None),
                    still_open,
                )
                .values(reminded_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)

    async def merchant_due(self, before: dt.datetime) -> Sequence[InvoiceRow]:
        """Invoices to put in front of their merchant once: unpaid and expiring before
        `before`, or partly paid."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceRow)
                .where(
                    col(InvoiceRow.merchant_reminded_at).is_(None),
                    col(InvoiceRow.outcome) == "created",
                    or_(
                        col(InvoiceRow.status).in_(UNPAID)
                        & col(InvoiceRow.expires_at).is_not(None)
                        & (col(InvoiceRow.expires_at) < before)
                        & (col(InvoiceRow.expires_at) > utcnow()),
                        col(InvoiceRow.status) == "partial",
                    ),
                )
                .order_by(col(InvoiceRow.merchant_id), col(InvoiceRow.id))
            )
            return result.all()

    async def claim_merchant_reminder(self, invoice_id: int) -> bool:
        async with self._sessions() as session:
            result = await session.exec(
                update(InvoiceRow)
                .where(
                    col(InvoiceRow.id) == invoice_id,
                    col(InvoiceRow.merchant_reminded_at).is_(None),
                )
                .values(merchant_reminded_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)


class BusinessRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def save_connection(self, row: BusinessConnectionRow) -> None:
        async with self._sessions() as session:
            await session.merge(row)
            await session.commit()

    async def connection(self, connection_id: str) -> BusinessConnectionRow | None:
        async with self._sessions() as session:
            return await session.get(BusinessConnectionRow, connection_id)

    async def connections_of(self, merchant_id: int) -> Sequence[BusinessConnectionRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(BusinessConnectionRow).where(
                    BusinessConnectionRow.merchant_id == merchant_id,
                    col(BusinessConnectionRow.enabled).is_(True),
                    col(BusinessConnectionRow.can_reply).is_(True),
                )
            )
            return result.all()

    async def saw_incoming(
        self, connection_id: str, chat_id: int, name: str, language: str | None
    ) -> None:
        async with self._sessions() as session:
            await session.merge(
                BusinessChatRow(
                    connection_id=connection_id,
                    chat_id=chat_id,
                    name=name[:64],
                    language=(language or "")[:8] or None,
                    last_incoming_at=utcnow(),
                )
            )
            await session.commit()

    async def open_chats(
        self, connection_ids: Sequence[str], since: dt.datetime
    ) -> Sequence[BusinessChatRow]:
        """Chats whose customer wrote since `since`: the ones the bot may post in."""
        async with self._sessions() as session:
            result = await session.exec(
                select(BusinessChatRow)
                .where(
                    col(BusinessChatRow.connection_id).in_(connection_ids),
                    col(BusinessChatRow.last_incoming_at) >= since,
                )
                .order_by(col(BusinessChatRow.last_incoming_at).desc())
                .limit(10)
            )
            return result.all()

    async def chat(self, connection_id: str, chat_id: int) -> BusinessChatRow | None:
        async with self._sessions() as session:
            return await session.get(BusinessChatRow, (connection_id, chat_id))
