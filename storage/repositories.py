"""Data access. Each method is one short transaction, so no session outlives a call."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    LIVE_OUTCOMES,
    AdminAlertRow,
    CustomerRow,
    DraftRow,
    InvoiceEventRow,
    InvoiceRow,
    ProviderEventRow,
    UnmatchedReportRow,
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

    async def update_sealed(self, customer_id: int, sealed: str) -> None:
        """New sealed data (a changed email) for a customer not erased meanwhile."""
        async with self._sessions() as session:
            await session.exec(
                update(CustomerRow)
                .where(col(CustomerRow.id) == customer_id, col(CustomerRow.erased_at).is_(None))
                .values(sealed=sealed, last_used_at=utcnow())
            )
            await session.commit()

    async def touch(self, customer_id: int) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(CustomerRow)
                .where(col(CustomerRow.id) == customer_id)
                .values(last_used_at=utcnow())
            )
            await session.commit()

    async def recent(self, merchant_id: int, limit: int) -> Sequence[CustomerRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(CustomerRow)
                .where(CustomerRow.merchant_id == merchant_id, col(CustomerRow.erased_at).is_(None))
                .order_by(col(CustomerRow.last_used_at).desc(), col(CustomerRow.id).desc())
                .limit(limit)
            )
            return result.all()

    async def any_sealed(self) -> CustomerRow | None:
        """One row with sealed data, to check the configured key opens it."""
        async with self._sessions() as session:
            result = await session.exec(
                select(CustomerRow).where(col(CustomerRow.sealed).is_not(None)).limit(1)
            )
            return result.first()

    @staticmethod
    def _invoice_count() -> Any:
        return (
            select(func.count(col(InvoiceRow.id)))
            .where(col(InvoiceRow.customer_id) == col(CustomerRow.id))
            .scalar_subquery()
        )

    async def page(
        self, merchant_id: int | None, *, offset: int, limit: int
    ) -> tuple[list[tuple[CustomerRow, int]], int]:
        """Customers not erased, last used first, each with its number of invoices."""
        conditions: list[Any] = [col(CustomerRow.erased_at).is_(None)]
        if merchant_id is not None:
            conditions.append(col(CustomerRow.merchant_id) == merchant_id)
        async with self._sessions() as session:
            total = (
                await session.exec(select(func.count(col(CustomerRow.id))).where(*conditions))
            ).one()
            result = await session.exec(
                select(CustomerRow, self._invoice_count())
                .where(*conditions)
                .order_by(col(CustomerRow.last_used_at).desc(), col(CustomerRow.id).desc())
                .offset(offset)
                .limit(limit)
            )
            return [(row, int(count)) for row, count in result.all()], int(total)

    async def get_with_count(
        self, customer_id: int, merchant_id: int | None
    ) -> tuple[CustomerRow, int] | None:
        query = select(CustomerRow, self._invoice_count()).where(col(CustomerRow.id) == customer_id)
        if merchant_id is not None:
            query = query.where(col(CustomerRow.merchant_id) == merchant_id)
        async with self._sessions() as session:
            found = (await session.exec(query)).first()
            return (found[0], int(found[1])) if found is not None else None

    async def erase(self, customer_id: int, merchant_id: int | None) -> bool:
        """Drop the sealed data; the lookup key can never match again. Once (CAS)."""
        query = update(CustomerRow).where(
            col(CustomerRow.id) == customer_id, col(CustomerRow.erased_at).is_(None)
        )
        if merchant_id is not None:
            query = query.where(col(CustomerRow.merchant_id) == merchant_id)
        async with self._sessions() as session:
            result = await session.exec(
                query.values(
                    sealed=None,
                    erased_at=utcnow(),
                    lookup_key=func.substr("erased:" + col(CustomerRow.reference), 1, 64),
                )
            )
            await session.commit()
            return bool(result.rowcount)

    async def unused_since(self, cutoff: dt.datetime, limit: int = 500) -> list[int]:
        """Customers (not erased) with no invoice and no use since `cutoff`."""
        recent_invoice = (
            select(col(InvoiceRow.id))
            .where(
                col(InvoiceRow.customer_id) == col(CustomerRow.id),
                col(InvoiceRow.created_at) >= cutoff,
            )
            .exists()
        )
        async with self._sessions() as session:
            result = await session.exec(
                select(col(CustomerRow.id))
                .where(
                    col(CustomerRow.erased_at).is_(None),
                    col(CustomerRow.last_used_at) < cutoff,
                    ~recent_invoice,
                )
                .limit(limit)
            )
            return [int(customer_id) for customer_id in result.all() if customer_id is not None]


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

    async def start(
        self, row: DraftRow, *, scrub: Callable[[DraftRow], str] | None = None
    ) -> DraftRow:
        """Open a new draft, closing any draft still open in that chat in the same
        transaction; `scrub` gives a closed draft's payload without personal data (without
        it, the sweep scrubs it later)."""
        async with self._sessions() as session:
            result = await session.exec(
                select(DraftRow).where(
                    DraftRow.merchant_id == row.merchant_id,
                    DraftRow.chat_id == row.chat_id,
                    DraftRow.state == "open",
                )
            )
            for previous in result.all():
                await session.exec(
                    update(DraftRow)
                    .where(col(DraftRow.id) == previous.id, col(DraftRow.state) == "open")
                    .values(
                        state="cancelled", updated_at=utcnow(),
                        **({"payload": scrub(previous), "scrubbed": True} if scrub else {}),
                    )
                )  # fmt: skip
            session.add(row)
            await session.commit()
            return row

    async def save_payload(self, draft_id: str, payload: str, step: str) -> bool:
        """Store the answers and the step; False when the draft is no longer open."""
        async with self._sessions() as session:
            result = await session.exec(
                update(DraftRow)
                .where(col(DraftRow.id) == draft_id, col(DraftRow.state) == "open")
                .values(payload=payload, step=step, updated_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)

    async def idle_open(self, before: dt.datetime) -> Sequence[DraftRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(DraftRow).where(DraftRow.state == "open", col(DraftRow.updated_at) < before)
            )
            return result.all()

    async def transition(
        self, draft_id: str, from_state: str, to_state: str, *, payload: str | None = None
    ) -> bool:
        """Compare-and-set the draft state; False when someone else moved it first. A
        `payload` given is stored with it (the draft without personal data, on close)."""
        values: dict[str, Any] = {"state": to_state, "updated_at": utcnow()}
        if payload is not None:
            values |= {"payload": payload, "scrubbed": True}
        async with self._sessions() as session:
            result = await session.exec(
                update(DraftRow)
                .where(col(DraftRow.id) == draft_id, col(DraftRow.state) == from_state)
                .values(**values)
            )
            await session.commit()
            return bool(result.rowcount)

    async def unscrubbed_closed(self, limit: int) -> Sequence[DraftRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(DraftRow)
                .where(DraftRow.state != "open", col(DraftRow.scrubbed).is_(False))
                .limit(limit)
            )
            return result.all()

    async def scrub(self, draft_id: str, payload: str) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(DraftRow)
                .where(col(DraftRow.id) == draft_id, col(DraftRow.state) != "open")
                .values(payload=payload, scrubbed=True)
            )
            await session.commit()


def _add_alert(session: AsyncSession, kind: str, ref: str, params: dict[str, Any]) -> None:
    """Queue an admin alert in the caller's transaction (callers add one per ref only)."""
    session.add(AdminAlertRow(kind=kind, ref=ref[:200], params=json.dumps(params)))


async def _flag(session: AsyncSession, invoice_id: int, reason: str) -> bool:
    """Mark an invoice for an admin once, with the reason, and queue the alert; False if it
    already was flagged (the first reason stays; later ones go to the history)."""
    result = await session.exec(
        update(InvoiceRow)
        .where(col(InvoiceRow.id) == invoice_id, col(InvoiceRow.flagged_at).is_(None))
        .values(flagged_at=utcnow(), flag_reason=reason[:300])
    )
    session.add(InvoiceEventRow(invoice_id=invoice_id, kind="flagged", detail=reason[:500]))
    if result.rowcount:
        _add_alert(session, "invoice", str(invoice_id), {"invoice_id": invoice_id})
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
        status: str | None = None,
        replaces: Collection[str] = (),
        only_if_outcome: str | None = None,
        **values: Any,
    ) -> InvoiceRow:
        """Update an invoice and append the matching history entry atomically.

        `status` is written only over no status or one of `replaces` (the statuses it ranks
        above): a callback that moved the invoice on while the create was answered wins.
        With `only_if_outcome`, nothing changes unless the attempt's outcome is still that
        (a compare-and-set: a create answered meanwhile is not marked interrupted).
        """
        async with self._sessions() as session:
            row = await session.get(InvoiceRow, invoice_id)
            if row is None:
                raise LookupError(invoice_id)
            values["updated_at"] = utcnow()
            where = [col(InvoiceRow.id) == invoice_id]
            if only_if_outcome is not None:
                where.append(col(InvoiceRow.outcome) == only_if_outcome)
            changed = await session.exec(update(InvoiceRow).where(*where).values(**values))
            if only_if_outcome is not None and not changed.rowcount:
                await session.rollback()
                await session.refresh(row)
                return row
            if status is not None:
                await session.exec(
                    update(InvoiceRow)
                    .where(
                        col(InvoiceRow.id) == invoice_id,
                        or_(
                            col(InvoiceRow.status).is_(None),
                            col(InvoiceRow.status).in_(list(replaces)),
                        ),
                    )
                    .values(status=status)
                )
            session.add(
                InvoiceEventRow(
                    invoice_id=invoice_id,
                    kind=event,
                    status=status or values.get("outcome"),
                    detail=detail,
                )
            )
            await session.commit()
            await session.refresh(row)
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

    async def unknown_attempts(self, due_by: dt.datetime | None = None) -> Sequence[InvoiceRow]:
        """Attempts of unknown outcome, oldest first; with `due_by`, only those due by then."""
        async with self._sessions() as session:
            query = select(InvoiceRow).where(InvoiceRow.outcome == "unknown")
            if due_by is not None:
                query = query.where(
                    or_(
                        col(InvoiceRow.settle_after).is_(None),
                        col(InvoiceRow.settle_after) <= due_by,
                    )
                )
            result = await session.exec(query.order_by(col(InvoiceRow.id)))
            return result.all()

    async def claim_settle(
        self, invoice_id: int, now: dt.datetime, lease_until: dt.datetime
    ) -> bool:
        """Take an unknown attempt for settling (a lease on `settle_after`); False when it is
        not due or another settler holds it, so it is never cancelled twice."""
        async with self._sessions() as session:
            result = await session.exec(
                update(InvoiceRow)
                .where(
                    col(InvoiceRow.id) == invoice_id,
                    col(InvoiceRow.outcome) == "unknown",
                    or_(
                        col(InvoiceRow.settle_after).is_(None),
                        col(InvoiceRow.settle_after) <= now,
                    ),
                )
                .values(settle_after=lease_until)
            )
            await session.commit()
            return bool(result.rowcount)

    async def has_event(self, invoice_id: int, kind: str) -> bool:
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceEventRow.id).where(
                    InvoiceEventRow.invoice_id == invoice_id, InvoiceEventRow.kind == kind
                )
            )
            return result.first() is not None

    async def cap_settle_after(self, latest: dt.datetime, parked: dt.timedelta) -> None:
        """At start-up: no unknown attempt waits past `latest` (a dead process's lease),
        except those parked for the admins."""
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceRow)
                .where(
                    col(InvoiceRow.outcome) == "unknown",
                    col(InvoiceRow.settle_after) > latest,
                    col(InvoiceRow.settle_after) < latest + parked,
                )
                .values(settle_after=latest)
            )
            await session.commit()

    async def postpone_settle(self, invoice_id: int, until: dt.datetime) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(InvoiceRow)
                .where(col(InvoiceRow.id) == invoice_id, col(InvoiceRow.outcome) == "unknown")
                .values(settle_after=until)
            )
            await session.commit()

    async def flag(self, invoice_id: int, reason: str) -> bool:
        """Mark an invoice for the admins' attention once; False if it already was."""
        async with self._sessions() as session:
            flagged = await _flag(session, invoice_id, reason)
            await session.commit()
            return flagged

    async def stale_creating(self, before: dt.datetime) -> Sequence[InvoiceRow]:
        """Attempts a crash left in 'creating': their outcome at the provider is unknown."""
        async with self._sessions() as session:
            result = await session.exec(
                select(InvoiceRow).where(
                    InvoiceRow.outcome == "creating", col(InvoiceRow.updated_at) < before
                )
            )
            return result.all()


class AlertRepository:
    """The admins' alert outbox: queued with the fact, sent once, never twice."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def add(self, kind: str, ref: str, params: dict[str, Any]) -> bool:
        """Queue an alert; False when one for the same kind and ref exists already."""
        async with self._sessions() as session:
            _add_alert(session, kind, ref, params)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return False
            return True

    async def clear(self, kind: str, ref: str) -> None:
        """Forget an alert, so the same problem is alerted again if it comes back."""
        async with self._sessions() as session:
            await session.exec(
                delete(AdminAlertRow).where(
                    col(AdminAlertRow.kind) == kind, col(AdminAlertRow.ref) == ref
                )
            )
            await session.commit()

    async def pending(self, limit: int = 50) -> Sequence[AdminAlertRow]:
        async with self._sessions() as session:
            result = await session.exec(
                select(AdminAlertRow)
                .where(col(AdminAlertRow.sent_at).is_(None))
                .order_by(col(AdminAlertRow.id))
                .limit(limit)
            )
            return result.all()

    async def mark_sent(self, alert_id: int) -> bool:
        async with self._sessions() as session:
            result = await session.exec(
                update(AdminAlertRow)
                .where(col(AdminAlertRow.id) == alert_id, col(AdminAlertRow.sent_at).is_(None))
                .values(sent_at=utcnow())
            )
            await session.commit()
            return bool(result.rowcount)


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
    provider_checked_amount: bool = False  # the provider compared what arrived itself


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a report may do to one invoice, decided by the payment rules, not by storage.

    `status` may differ from the report's (a short "confirmed" is only partial); `apply`
    False keeps the invoice as it is (a test-mode payment not counted); `flag` asks an
    admin to look, with the reason.
    """

    status: str
    apply: bool = True
    flag: str | None = None


Judge = Callable[[InvoiceRow, StatusUpdate], Verdict]


class StatusChange:
    """What applying one provider report did; `changed` is False for duplicates and stale ones."""

    __slots__ = ("changed", "duplicate", "invoice", "previous", "unmatched")

    def __init__(
        self,
        invoice: InvoiceRow | None,
        *,
        previous: str | None = None,
        changed: bool = False,
        duplicate: bool = False,
        unmatched: bool = False,
    ) -> None:
        self.invoice = invoice
        self.previous = previous
        self.changed = changed
        self.duplicate = duplicate
        self.unmatched = unmatched


class PaymentRepository:
    """Status updates from providers: stored once, applied forward only, notified once."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    async def apply(
        self,
        update_: StatusUpdate,
        *,
        rank_of: Callable[[str | None], int],
        final_rank: int,
        judge: Judge,
        payment_statuses: Collection[str],
    ) -> StatusChange:
        """Record the report and move the invoice forward in one transaction.

        The status write is a compare-and-set on the status it was decided from: two reports
        applied at once can never move an invoice backwards; the loser simply retries.
        """
        for _ in range(5):
            change = await self._apply_once(update_, rank_of, final_rank, judge, payment_statuses)
            if change is not None:
                return change
        raise RuntimeError("invoice status kept changing under a concurrent update")

    async def _apply_once(
        self,
        u: StatusUpdate,
        rank_of: Callable[[str | None], int],
        final_rank: int,
        judge: Judge,
        payment_statuses: Collection[str],
    ) -> StatusChange | None:
        async with self._sessions() as session:
            row = await self._find(session, u.provider, u.provider_invoice_id, u.foreign_id)
            if row is None or row.id is None:
                return await self._store_unmatched(session, u)
            session.add(
                ProviderEventRow(
                    provider=u.provider,
                    dedupe_key=u.dedupe_key[:200],
                    invoice_id=row.id,
                    provider_status=u.provider_status[:32],
                    status=u.status,
                )
            )
            try:
                await session.flush()
            except IntegrityError:
                await session.rollback()
                return StatusChange(row, duplicate=True)
            verdict = judge(row, u)
            previous = row.status
            current_rank = rank_of(previous)
            forward = (
                verdict.apply
                and rank_of(verdict.status) > current_rank
                and current_rank < final_rank
            )
            if forward:
                values: dict[str, Any] = {"status": verdict.status, "updated_at": utcnow()}
                if u.amount_received:
                    values |= {"amount_received": u.amount_received}
                if u.received_currency:
                    values |= {"received_currency": u.received_currency}
                if u.test_mode:
                    values |= {"test_mode": True}
                # A create still in flight is recorded right after; any other attempt that
                # was not created (unknown, voided) should not have been paid at all.
                announce = (
                    row.outcome not in ("created", "creating")
                    and verdict.status in payment_statuses
                )
                if announce and row.notified_status is None:
                    # A payment on an attempt the merchant never got a card for (voided or
                    # of unknown outcome): the notifier tells them, and an admin looks.
                    values |= {"notified_status": "created"}
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
                if announce:
                    await _flag(
                        session, row.id, f"payment ({verdict.status}) on a {row.outcome} attempt"
                    )
            session.add(
                InvoiceEventRow(
                    invoice_id=row.id,
                    kind="status" if forward else "status-ignored",
                    status=verdict.status,
                    detail=(u.provider_status + (f"; {u.detail}" if u.detail else ""))[:500],
                )
            )
            if verdict.flag:
                await _flag(session, row.id, verdict.flag)
            await session.commit()
            if forward or verdict.flag:
                await session.refresh(row)
            return StatusChange(row, previous=previous, changed=forward)

    @staticmethod
    async def _store_unmatched(session: AsyncSession, u: StatusUpdate) -> StatusChange:
        """Keep a report for an unknown invoice, alert the admins once, and leave its dedupe
        key unused: the invoice may become known (a late create answer) and need it."""
        session.add(
            UnmatchedReportRow(
                provider=u.provider,
                dedupe_key=u.dedupe_key[:200],
                provider_invoice_id=(u.provider_invoice_id or "")[:64] or None,
                foreign_id=(u.foreign_id or "")[:64] or None,
                provider_status=u.provider_status[:32],
                status=u.status,
                amount_received=(u.amount_received or "")[:64] or None,
                received_currency=(u.received_currency or "")[:16] or None,
                test_mode=u.test_mode,
                provider_checked_amount=u.provider_checked_amount,
                detail=(u.detail or "")[:500] or None,
            )
        )
        try:
            await session.flush()
        except IntegrityError:
            await session.rollback()
            return StatusChange(None, duplicate=True, unmatched=True)
        params = {
            "provider": u.provider,
            "provider_invoice_id": u.provider_invoice_id,
            "foreign_id": u.foreign_id,
            "status": u.status,
            "amount": u.amount_received,
            "currency": u.received_currency,
        }
        _add_alert(session, "unmatched", f"{u.provider}:{u.dedupe_key}", params)
        await session.commit()
        return StatusChange(None, unmatched=True)

    async def unmatched_for(
        self, provider: str, provider_invoice_id: str | None, foreign_id: str
    ) -> Sequence[UnmatchedReportRow]:
        """Reports kept for an invoice before it was known, oldest first."""
        async with self._sessions() as session:
            ids = [col(UnmatchedReportRow.foreign_id) == foreign_id]
            if provider_invoice_id:
                ids.append(col(UnmatchedReportRow.provider_invoice_id) == provider_invoice_id)
            result = await session.exec(
                select(UnmatchedReportRow)
                .where(
                    UnmatchedReportRow.provider == provider,
                    col(UnmatchedReportRow.matched_invoice_id).is_(None),
                    or_(*ids),
                )
                .order_by(col(UnmatchedReportRow.id))
            )
            return result.all()

    async def mark_matched(self, report_id: int, invoice_id: int) -> None:
        async with self._sessions() as session:
            await session.exec(
                update(UnmatchedReportRow)
                .where(col(UnmatchedReportRow.id) == report_id)
                .values(matched_invoice_id=invoice_id)
            )
            await session.commit()

    async def unmatched(self, limit: int = 20) -> Sequence[UnmatchedReportRow]:
        """Reports still matching no invoice, newest first (for the admins' list)."""
        async with self._sessions() as session:
            result = await session.exec(
                select(UnmatchedReportRow)
                .where(col(UnmatchedReportRow.matched_invoice_id).is_(None))
                .order_by(col(UnmatchedReportRow.id).desc())
                .limit(limit)
            )
            return result.all()

    async def get_unmatched(self, report_id: int) -> UnmatchedReportRow | None:
        async with self._sessions() as session:
            return await session.get(UnmatchedReportRow, report_id)

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
                col(InvoiceRow.outcome) == "created",
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
                .where(or_(behind_card, behind_notice))
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
            flagged = await _flag(session, invoice_id, detail)
            await session.commit()
            return flagged

    async def ping(self) -> None:
        async with self._sessions() as session:
            await session.exec(select(1))
