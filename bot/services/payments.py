"""The payment status lifecycle: verified reports in, forward-only status changes out.

Callbacks, the reconciliation job, /refresh and cancellations all end in `apply`, so there is
one place where a status can change, and it only ever moves forward.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from bot.domain import PaymentStatus, StatusReport
from bot.providers.base import PaymentProvider, ProviderError, ProviderValidationError
from storage.models import InvoiceRow
from storage.repositories import PaymentRepository, StatusChange, StatusUpdate
from storage.types import utcnow

logger = logging.getLogger(__name__)

OPEN_STATUSES = tuple(s.value for s in PaymentStatus if not s.final)
CANCELLABLE = {PaymentStatus.CREATED.value, PaymentStatus.PENDING.value}
# After its timer, a CryptoProcessing invoice should have a final callback within this grace;
# a payment seen in the mempool extends the window to 24 hours.
STALE_GRACE = dt.timedelta(minutes=10)
PROCESSING_WINDOW = dt.timedelta(hours=24)
STATUS_BATCH = 100  # CryptoCloud's merchant/info takes at most 100 ids


def rank_of(status: str | None) -> int:
    try:
        return PaymentStatus(status or "").rank
    except ValueError:
        return -1


class PaymentError(Exception):
    """A lifecycle action the merchant asked for could not be done; `key` words it."""

    def __init__(self, key: str, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.params = params


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    checked: int
    changed: int
    flagged: Sequence[InvoiceRow]


class PaymentService:
    def __init__(
        self,
        *,
        provider: PaymentProvider,
        payments: PaymentRepository,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._provider = provider
        self._payments = payments
        self.on_change = on_change  # the chat layer sets this to wake its notifier

    @property
    def can_query(self) -> bool:
        return self._provider.supports_status_query

    async def handle_callback(self, headers: Mapping[str, str], body: bytes) -> int:
        """Verify (raises CallbackRejected), store and apply; returns how many changed."""
        reports = await self._provider.parse_callback(headers, body)
        changes = await self.apply(reports, source="callback")
        return sum(change.changed for change in changes)

    async def apply(self, reports: Sequence[StatusReport], *, source: str) -> list[StatusChange]:
        changes = []
        for report in reports:
            change = await self._payments.apply(
                StatusUpdate(
                    provider=self._provider.name,
                    dedupe_key=report.dedupe_key,
                    provider_invoice_id=report.provider_invoice_id,
                    foreign_id=report.foreign_id,
                    provider_status=report.provider_status,
                    status=report.status.value,
                    amount_received=report.amount_received,
                    received_currency=report.received_currency,
                    test_mode=report.test_mode,
                    detail=f"via {source}" + (f"; {report.detail}" if report.detail else ""),
                ),
                rank_of=rank_of,
                final_rank=PaymentStatus.PAID.rank,
            )
            if change.invoice is None and not change.duplicate:
                logger.warning("%s report for an invoice we do not know; stored", source)
            elif change.changed and change.invoice is not None:
                logger.info(
                    "invoice %s: %s -> %s (%s)",
                    change.invoice.id, change.previous, report.status.value, source,
                )  # fmt: skip
            changes.append(change)
        if any(change.changed for change in changes):
            self.on_change()
        return changes

    async def reconcile(self) -> ReconcileResult:
        """Catch up on missed callbacks where the provider can be asked; flag the rest."""
        open_invoices = await self._payments.open_invoices(self._provider.name, OPEN_STATUSES)
        if not open_invoices:
            return ReconcileResult(0, 0, [])
        if not self._provider.supports_status_query:
            return ReconcileResult(len(open_invoices), 0, await self._flag_stale(open_invoices))
        ids = [row.provider_invoice_id for row in open_invoices if row.provider_invoice_id]
        changed = 0
        for start in range(0, len(ids), STATUS_BATCH):
            batch = ids[start : start + STATUS_BATCH]
            try:
                reports = await self._provider.fetch_statuses(batch)
            except ProviderError as exc:  # one bad batch must not hide the others' news
                logger.warning("reconciliation: a batch of %d failed (%s)", len(batch), exc.code)
                continue
            changes = await self.apply(reports, source="reconciliation")
            changed += sum(change.changed for change in changes)
        return ReconcileResult(len(ids), changed, [])

    async def _flag_stale(self, rows: Sequence[InvoiceRow]) -> list[InvoiceRow]:
        now = utcnow()
        flagged = []
        for row in rows:
            if row.id is None or row.flagged_at is not None:
                continue
            if row.status == PaymentStatus.PROCESSING.value or (
                row.expires_at is None and row.status == PaymentStatus.PENDING.value
            ):
                # A payment was seen (or, without a timer, a rate fixed): the provider allows
                # 24 hours for it to confirm.
                window_end = row.created_at + PROCESSING_WINDOW + STALE_GRACE
            elif row.expires_at is not None:
                window_end = row.expires_at + STALE_GRACE
            else:
                continue  # no timer and nothing paid: waiting for the payer is normal
            if now > window_end and await self._payments.flag(
                row.id, "timer passed without a final callback"
            ):
                flagged.append(row)
        return flagged

    async def refresh(self, invoice: InvoiceRow) -> bool:
        """Ask the provider now; True if the status changed."""
        if not self._provider.supports_status_query:
            raise PaymentError("refresh-unsupported", provider=self._provider.name)
        if not invoice.provider_invoice_id:
            raise PaymentError("refresh-not-created")
        try:
            reports = await self._provider.fetch_statuses([invoice.provider_invoice_id])
        except ProviderError as exc:
            raise PaymentError(f"error-provider-{exc.code}", details="") from None
        changes = await self.apply(reports, source="refresh")
        return any(change.changed for change in changes)

    async def cancel(self, invoice: InvoiceRow) -> None:
        """Cancel at the provider while nothing was paid; the status follows as 'cancelled'."""
        if invoice.outcome != "created" or not invoice.provider_invoice_id:
            raise PaymentError("cancel-not-created")
        if invoice.status not in CANCELLABLE:
            raise PaymentError("cancel-refused-status", status=invoice.status or "")
        try:
            await self._provider.cancel(invoice.provider_invoice_id, invoice.public_id)
        except ProviderValidationError:
            raise PaymentError("cancel-refused-provider") from None
        except ProviderError as exc:
            raise PaymentError(f"error-provider-{exc.code}", details="") from None
        await self.apply(
            [
                StatusReport(
                    provider_invoice_id=invoice.provider_invoice_id,
                    foreign_id=invoice.public_id,
                    status=PaymentStatus.CANCELLED,
                    provider_status="cancelled-by-merchant",
                    dedupe_key=f"cancel:{invoice.provider_invoice_id}",
                )
            ],
            source="cancel",
        )

    async def pending_notifications(self) -> Sequence[InvoiceRow]:
        """Invoices whose status changed since the merchant was last told."""
        return await self._payments.unnotified()

    async def mark_notified(self, invoice_id: int, status: str) -> bool:
        return await self._payments.mark_notified(invoice_id, status)

    async def mark_card(self, invoice_id: int, status: str) -> None:
        await self._payments.mark_card(invoice_id, status)

    async def healthy(self) -> bool:
        try:
            await self._payments.ping()
        except Exception:  # any database failure means "not healthy", never a crash
            logger.exception("health check: database unreachable")
            return False
        return True
