"""Data access. Each method is one short transaction, so no session outlives a call."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    LIVE_OUTCOMES,
    ConversationStateRow,
    CustomerRow,
    DraftRow,
    InvoiceEventRow,
    InvoiceRow,
    ProviderEventRow,
)
from storage.types import utcnow

Sessions = async_sessionmaker[AsyncSession]


class LiveAttemptExists(Exception):
    """Another attempt for the same draft is creating, created or of unknown outcome."""


class CustomerRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, merchant_id: int, customer_id: int) -> CustomerRow | None:
        async with self._sessions() as session:
            row = await session.get(CustomerRow, customer_id)
            return row if row is not None and row.merchant_id == merchant_id else None

    async def find(self, merchant_id: int, lookup_key: str) -> CustomerRow | None:
        async with self._sessions() as session:
            result = await session.exec(
                select(CustomerRow).where(
                    CustomerRow.merchant_id == merchant_id, CustomerRow.lookup_key == lookup_key
                )
            )
            return result.first()

    async def add_or_get(self, row: CustomerRow) -> CustomerRow:
        """Insert, or return the row a concurrent insert of the same customer won with."""
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.commit()
                return row
            except IntegrityError:
                await session.rollback()
        existing = await self.find(row.merchant_id, row.lookup_key)
        if existing is None:
            raise RuntimeError("customer insert failed without a conflicting row")
        return existing

    async def update_contact(self, customer_id: int, email: str | None) -> None:
        async with self._sessions() as session:
            values: dict[str, Any] = {"last_used_at": utcnow()}
            if email:
                values["email"] = email
            await session.exec(
                update(CustomerRow).where(col(CustomerRow.id) == customer_id).values(**values)
            )
            await session.commit()

    async def recent(self, merchant_id: int, limit: int) -> Sequence[CustomerRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(CustomerRow)
                .where(CustomerRow.merchant_id == merchant_id)
                .order_by(col(CustomerRow.last_used_at).desc(), col(CustomerRow.id).desc())
                .limit(limit)
            )
            return result.all()


class DraftRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def get(self, draft_id: str) -> DraftRow | None:
        async with self._sessions() as session:
            return await session.get(DraftRow, draft_id)

    async def open_for(self, merchant_id: int, chat_id: int) -> DraftRow | None:
        async with self._sessions() as session:
            result = await session.exec(
                select(DraftRow).where(
                    DraftRow.merchant_id == merchant_id,
                    DraftRow.chat_id == chat_id,
                    DraftRow.state == "open",
                )
            )
            return result.first()

    async def start(self, row: DraftRow) -> DraftRow:
        """Open a new draft, closing any draft still open in that chat in the same transaction."""
        async with self._sessions() as session:
            await session.exec(
                update(DraftRow)
                .where(
                    col(DraftRow.merchant_id) == row.merchant_id,
                    col(DraftRow.chat_id) == row.chat_id,
                    col(DraftRow.state) == "open",
                )
                .values(state="cancelled", updated_at=utcnow())
            )
            session.add(row)
            await session.commit()
            return row

    async def save_payload(self, draft_id: str, payload: str) -> bool:
        """Store the answers; False when the draft is no longer open (stale update)."""
        async with self._sessions() as session:
            result = await session.exec(
                update(DraftRow)
                .where(col(DraftRow.id) == draft_id, col(DraftRow.state) == "open")
                .values(payload=payload, updated_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)

    async def transition(self, draft_id: str, from_state: str, to_state: str) -> bool:
        """Compare-and-set the draft state; False when someone else moved it first."""
        async with self._sessions() as session:
            result = await session.exec(
                update(DraftRow)
                .where(col(DraftRow.id) == draft_id, col(DraftRow.state) == from_state)
                .values(state=to_state, updated_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)


class InvoiceRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def begin_attempt(self, row: InvoiceRow) -> InvoiceRow:
        """Record an attempt before the provider is called; the unique index refuses a second."""
        async with self._sessions() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                raise LiveAttemptExists(row.draft_id) from None
            assert row.id is not None
            session.add(InvoiceEventRow(invoice_id=row.id, kind="attempt", status=row.outcome))
            await session.commit()
            return row

    async def record(
        self,
        invoice_id: int,
        *,
        event: str,
        detail: str | None = None,
        **values: Any,
    ) -> InvoiceRow:
        """Update an invoice and append the matching history entry atomically."""
        async with self._sessions() as session:
            row = await session.get(InvoiceRow, invoice_id)
            if row is None:
                raise LookupError(invoice_id)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            session.add(row)
            session.add(
                InvoiceEventRow(
                    invoice_id=invoice_id,
                    kind=event,
                    status=values.get("status") or values.get("outcome"),
                    detail=detail,
                )
            )
            await session.commit()
            return row

    async def set_message(self, invoice_id: int, message_id: int, shown_status: str | None) -> None:
        """Remember the card, and the status drawn on it, so later changes are redrawn."""
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id)
                .values(message_id=message_id, card_status=shown_status)
            )
            await session.commit()

    async def live_for_draft(self, draft_id: str) -> InvoiceRow | None:
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceRow).where(
                    InvoiceRow.draft_id == draft_id, col(InvoiceRow.outcome).in_(LIVE_OUTCOMES)
                )
            )
            return result.first()

    async def get(self, invoice_id: int) -> InvoiceRow | None:
        async with self._sessions() as session:
            return await session.get(InvoiceRow, invoice_id)

    async def get_by_public_id(self, public_id: str) -> InvoiceRow | None:
        async with self._sessions() as session:
            result = await session.exec(select(InvoiceRow).where(InvoiceRow.public_id == public_id))
            return result.first()

    async def recent(
        self, *, limit: int, offset: int = 0, merchant_id: int | None = None
    ) -> tuple[Sequence[InvoiceRow], int]:
        """One page, newest first, and the total count for the pager."""
        async with self._sessions() as session:
            query = select(InvoiceRow)
            count_query = select(func.count()).select_from(InvoiceRow)
            if merchant_id is not None:
                query = query.where(InvoiceRow.merchant_id == merchant_id)
                count_query = count_query.where(col(InvoiceRow.merchant_id) == merchant_id)
            rows = await session.exec(
                query.order_by(col(InvoiceRow.id).desc()).offset(offset).limit(limit)
            )
            total = await session.exec(count_query)
            return rows.all(), int(total.one())

    async def events(self, invoice_id: int) -> Sequence[InvoiceEventRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceEventRow)
                .where(InvoiceEventRow.invoice_id == invoice_id)
                .order_by(col(InvoiceEventRow.id))
            )
            return result.all()

    async def unknown_attempts(self) -> Sequence[InvoiceRow]:
        async with self._sessions() as session:
            result = await session.exec(select(InvoiceRow).where(InvoiceRow.outcome == "unknown"))
            return result.all()

    async def stale_creating(self, before: dt.datetime) -> Sequence[InvoiceRow]:
        """Attempts a crash left in 'creating': their outcome at the provider is unknown."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceRow).where(
                    InvoiceRow.outcome == "creating", col(InvoiceRow.updated_at) < before
                )
            )
            return result.all()


class ConversationStateRepository:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def load(self, name: str) -> dict[str, str]:
        async with self._sessions() as session:
            result = await session.exec(
                select(ConversationStateRow).where(ConversationStateRow.name == name)
            )
            return {row.key: row.state for row in result.all()}

    async def save(self, name: str, key: str, state: str | None) -> None:
        async with self._sessions() as session:
            if state is None:
                await session.exec(
                    delete(ConversationStateRow).where(
                        col(ConversationStateRow.name) == name,
                        col(ConversationStateRow.key) == key,
                    )
                )
            else:
                await session.merge(
                    ConversationStateRow(name=name, key=key, state=state, updated_at=utcnow())
                )
            await session.commit()


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One verified provider report, as storage needs it (statuses are plain strings here)."""

    provider: str
    dedupe_key: str
    provider_invoice_id: str | None
    foreign_id: str | None
    provider_status: str
    status: str
    amount_received: str | None = None
    received_currency: str | None = None
    test_mode: bool = False
    detail: str | None = None


class StatusChange:
    """What applying one provider report did; `changed` is False for duplicates and stale ones."""

    __slots__ = ("changed", "duplicate", "invoice", "previous")

    def __init__(
        self,
        invoice: InvoiceRow | None,
        *,
        previous: str | None = None,
        changed: bool = False,
        duplicate: bool = False,
    ) -> None:
        self.invoice = invoice
        self.previous = previous
        self.changed = changed
        self.duplicate = duplicate


class PaymentRepository:
    """Status updates from providers: stored once, applied forward only, notified once."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def apply(
        self, update_: StatusUpdate, *, rank_of: Callable[[str | None], int], final_rank: int
    ) -> StatusChange:
        """Record the report and move the invoice forward in one transaction.

        The status write is a compare-and-set on the status it was decided from: two reports
        applied at once can never move an invoice backwards; the loser simply retries.
        """
        for _ in range(5):
            change = await self._apply_once(update_, rank_of, final_rank)
            if change is not None:
                return change
        raise RuntimeError("invoice status kept changing under a concurrent update")

    async def _apply_once(
        self, u: StatusUpdate, rank_of: Callable[[str | None], int], final_rank: int
    ) -> StatusChange | None:
        async with self._sessions() as session:
            row = await self._find(session, u.provider, u.provider_invoice_id, u.foreign_id)
            session.add(
                ProviderEventRow(
                    provider=u.provider,
                    dedupe_key=u.dedupe_key[:200],
                    invoice_id=row.id if row else None,
                    provider_status=u.provider_status[:32],
                    status=u.status,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return StatusChange(row, duplicate=True)
            if row is None or row.id is None:
                await session.commit()
                return StatusChange(None)
            previous = row.status
            current_rank = rank_of(previous)
            forward = rank_of(u.status) > current_rank and current_rank < final_rank
            if forward:
                values: dict[str, Any] = {"status": u.status, "updated_at": utcnow()}
                if u.amount_received:
                    values |= {"amount_received": u.amount_received}
                if u.received_currency:
                    values |= {"received_currency": u.received_currency}
                if u.test_mode:
                    values |= {"test_mode": True}
                same_status = (
                    col(InvoiceRow.status).is_(None)
                    if previous is None
                    else col(InvoiceRow.status) == previous
                )
                result = await session.exec(
                    update(InvoiceRow)
                    .where(col(InvoiceRow.id) == row.id, same_status)
                    .values(**values)
                )
                if not result.rowcount:  # someone moved it first: decide again from theirs
                    await session.rollback()
                    return None
            session.add(
                InvoiceEventRow(
                    invoice_id=row.id,
                    kind="status" if forward else "status-ignored",
                    status=u.status,
                    detail=(u.provider_status + (f"; {u.detail}" if u.detail else ""))[:500],
                )
            )
            await session.commit()
            if forward:
                await session.refresh(row)
            return StatusChange(row, previous=previous, changed=forward)

    @staticmethod
    async def _find(
        session: AsyncSession,
        provider: str,
        provider_invoice_id: str | None,
        foreign_id: str | None,
    ) -> InvoiceRow | None:
        if provider_invoice_id:
            result = await session.exec(
                select(InvoiceRow).where(
                    InvoiceRow.provider == provider,
                    InvoiceRow.provider_invoice_id == provider_invoice_id,
                )
            )
            row = result.first()
            if row is not None:
                return row
        if foreign_id:
            result = await session.exec(
                select(InvoiceRow).where(
                    InvoiceRow.provider == provider, InvoiceRow.public_id == foreign_id
                )
            )
            return result.first()
        return None

    async def open_invoices(
        self, provider: str, open_statuses: Sequence[str]
    ) -> Sequence[InvoiceRow]:
        """Created invoices still waiting for a final status, oldest first."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceRow)
                .where(
                    InvoiceRow.provider == provider,
                    InvoiceRow.outcome == "created",
                    col(InvoiceRow.status).in_(open_statuses),
                )
                .order_by(col(InvoiceRow.id))
            )
            return result.all()

    async def unnotified(self, limit: int = 100) -> Sequence[InvoiceRow]:
        """Invoices whose card or notification lags behind their status."""
        async with self._sessions() as session:
            behind_card = and_(
                col(InvoiceRow.message_id).is_not(None),
                or_(
                    col(InvoiceRow.card_status).is_(None),
                    col(InvoiceRow.card_status) != col(InvoiceRow.status),
                ),
            )
            behind_notice = and_(
                col(InvoiceRow.notified_status).is_not(None),
                col(InvoiceRow.notified_status) != col(InvoiceRow.status),
            )
            result = await session.exec(
                select(InvoiceRow)
                .where(InvoiceRow.outcome == "created", or_(behind_card, behind_notice))
                .order_by(col(InvoiceRow.updated_at))
                .limit(limit)
            )
            return result.all()

    async def mark_card(self, invoice_id: int, status: str) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id)
                .values(card_status=status)
            )
            await session.commit()

    async def mark_notified(self, invoice_id: int, status: str) -> bool:
        """Compare-and-set, so two notifiers never both tell the merchant."""
        async with self._sessions() as session:
            result = await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id, col(InvoiceRow.notified_status) != status)
                .values(notified_status=status)
            )
            await session.commit()
            return bool(result.rowcount)

    async def flag(self, invoice_id: int, detail: str) -> bool:
        """Mark an invoice for the admin's attention once; False if it already was."""
        async with self._sessions() as session:
            result = await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id, col(InvoiceRow.flagged_at).is_(None))
                .values(flagged_at=utcnow())
            )
            if result.rowcount:
                session.add(InvoiceEventRow(invoice_id=invoice_id, kind="flagged", detail=detail))
            await session.commit()
            return bool(result.rowcount)

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.exec(select(1))
