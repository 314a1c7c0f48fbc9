"""The payment status lifecycle: verified reports in, forward-only status changes out.

Callbacks, the reconciliation job, /refresh and cancellations all end in `apply`, so there is
one place where a status can change, it only ever moves forward, and "paid" is said only when
what arrived covers the invoice.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from bot.domain import PaymentStatus, StatusReport
from bot.providers import ProviderRegistry
from bot.providers.base import (
    PaymentProvider,
    ProviderError,
    ProviderStateRefused,
    ProviderValidationError,
)
from storage.models import InvoiceRow, UnmatchedReportRow
from storage.repositories import (
    PaymentRepository,
    StatusChange,
    StatusUpdate,
    Verdict,
)
from storage.types import utcnow

logger = logging.getLogger(__name__)

OPEN_STATUSES = tuple(s.value for s in PaymentStatus if not s.final)
CANCELLABLE = {PaymentStatus.CREATED.value, PaymentStatus.PENDING.value}
PAYMENT_STATUSES = frozenset(
    s.value
    for s in (
        PaymentStatus.PROCESSING, PaymentStatus.PARTIAL, PaymentStatus.PAID,
        PaymentStatus.OVERPAID,
    )
)  # fmt: skip
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


def lower_statuses(status: str) -> list[str]:
    """The statuses `status` may replace: those of a lower rank."""
    rank = rank_of(status)
    return [s.value for s in PaymentStatus if s.rank < rank]


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


def shortfall(invoice: InvoiceRow, report: StatusUpdate) -> str | None:
    """Why what arrived does not cover the invoice, or None when it does."""
    if report.amount_received is None or not report.received_currency:
        return "the report says nothing about what arrived"
    try:
        received = Decimal(report.amount_received)
    except InvalidOperation:
        return f"unreadable amount received {report.amount_received[:30]!r}"
    if report.received_currency.upper() != invoice.currency.upper():
        return (
            f"received {format(received, 'f')} {report.received_currency}, "
            f"invoice is {format(invoice.amount, 'f')} {invoice.currency}"
        )
    if not received.is_finite() or received < invoice.amount:
        return (
            f"received {format(received, 'f')} of {format(invoice.amount, 'f')} {invoice.currency}"
        )
    return None


class PaymentService:
    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        payments: PaymentRepository,
        allow_test_payments: bool = False,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._providers = providers
        self._payments = payments
        self._allow_test = allow_test_payments
        self.on_change = on_change  # the chat layer sets this to wake its notifier

    def can_query(self, provider: str) -> bool:
        found = self._providers.get(provider)
        return found is not None and found.supports_status_query

    @property
    def any_query(self) -> bool:
        """Whether some configured provider answers a status query (/refresh works)."""
        return any(self.can_query(name) for name in self._providers)

    def knows(self, provider: str) -> bool:
        return provider in self._providers

    async def handle_callback(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> int:
        """Verify (raises CallbackRejected), store and apply; returns how many changed."""
        provider = self._providers[provider_name]
        reports = await provider.parse_callback(headers, body)
        changes = await self.apply(provider.name, reports, source="callback")
        return sum(change.changed for change in changes)

    def judge(self, invoice: InvoiceRow, report: StatusUpdate) -> Verdict:
        """Paid means paid: a test-mode payment is not money, a short one is not paid."""
        if report.status not in PAYMENT_STATUSES:
            return Verdict(report.status)
        if report.test_mode and not self._allow_test:
            return Verdict(
                report.status,
                apply=False,
                flag=f"test-mode payment ({report.status}) not counted: ALLOW_TEST_PAYMENTS is off",
            )
        if report.status not in (PaymentStatus.PAID.value, PaymentStatus.OVERPAID.value):
            return Verdict(report.status)
        if report.provider_checked_amount:
            return Verdict(report.status)
        missing = shortfall(invoice, report)
        if missing is None:
            return Verdict(report.status)
        return Verdict(PaymentStatus.PARTIAL.value, flag=f"reported {report.status} but {missing}")

    async def apply(
        self, provider_name: str, reports: Sequence[StatusReport], *, source: str
    ) -> list[StatusChange]:
        changes = []
        for report in reports:
            detail = f"via {source}" + (f"; {report.detail}" if report.detail else "")
            change = await self._payments.apply(
                StatusUpdate(
                    provider=provider_name,
                    dedupe_key=report.dedupe_key,
                    provider_invoice_id=report.provider_invoice_id,
                    foreign_id=report.foreign_id,
                    provider_status=report.provider_status,
                    status=report.status.value,
                    amount_received=report.amount_received,
                    received_currency=report.received_currency,
                    test_mode=report.test_mode,
                    detail=detail,
                    provider_checked_amount=report.provider_checked_amount,
                ),
                rank_of=rank_of,
                final_rank=PaymentStatus.PAID.rank,
                judge=self.judge,
                payment_statuses=PAYMENT_STATUSES,
            )
            if change.unmatched and not change.duplicate:
                logger.warning("%s report for an invoice we do not know; kept for admins", source)
            elif change.changed and change.invoice is not None:
                logger.info(
                    "invoice %s: %s -> %s (%s)",
                    change.invoice.id, change.previous, change.invoice.status, source,
                )  # fmt: skip
            changes.append(change)
        # Wake the notifier for status changes, flags and unmatched reports alike.
        if any(c.changed or (c.unmatched and not c.duplicate) or c.invoice for c in changes):
            self.on_change()
        return changes

    async def replay_unmatched(self, invoice: InvoiceRow) -> int:
        """Apply reports that arrived before the invoice was known (a create answered late)."""
        assert invoice.id is not None
        reports = await self._payments.unmatched_for(
            invoice.provider, invoice.provider_invoice_id, invoice.public_id
        )
        changed = 0
        for stored in reports:
            assert stored.id is not None
            change = await self._payments.apply(
                _update_of(stored),
                rank_of=rank_of,
                final_rank=PaymentStatus.PAID.rank,
                judge=self.judge,
                payment_statuses=PAYMENT_STATUSES,
            )
            await self._payments.mark_matched(stored.id, invoice.id)
            changed += change.changed
        if reports:
            logger.info("invoice %s: %d earlier report(s) applied", invoice.id, len(reports))
            self.on_change()
        return changed

    async def unmatched(self, limit: int = 20) -> Sequence[UnmatchedReportRow]:
        return await self._payments.unmatched(limit)

    async def get_unmatched(self, report_id: int) -> UnmatchedReportRow | None:
        return await self._payments.get_unmatched(report_id)

    async def reconcile(self) -> ReconcileResult:
        """Catch up on missed callbacks where the provider can be asked; flag the rest."""
        checked = changed = 0
        flagged: list[InvoiceRow] = []
        for name, provider in self._providers.items():
            result = await self._reconcile_one(name, provider)
            checked += result.checked
            changed += result.changed
            flagged += result.flagged
        return ReconcileResult(checked, changed, flagged)

    async def _reconcile_one(self, name: str, provider: PaymentProvider) -> ReconcileResult:
        open_invoices = await self._payments.open_invoices(name, OPEN_STATUSES)
        if not open_invoices:
            return ReconcileResult(0, 0, [])
        if not provider.supports_status_query:
            flagged = await self._flag_stale(open_invoices)
            if flagged:
                self.on_change()
            return ReconcileResult(len(open_invoices), 0, flagged)
        ids = [row.provider_invoice_id for row in open_invoices if row.provider_invoice_id]
        changed = 0
        for start in range(0, len(ids), STATUS_BATCH):
            batch = ids[start : start + STATUS_BATCH]
            try:
                reports = await provider.fetch_statuses(batch)
            except ProviderError as exc:  # one bad batch must not hide the others' news
                logger.warning("reconciliation: a batch of %d failed (%s)", len(batch), exc.code)
                continue
            changes = await self.apply(name, reports, source="reconciliation")
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
        provider = self._providers.get(invoice.provider)
        if provider is None or not provider.supports_status_query:
            raise PaymentError("refresh-unsupported", provider=invoice.provider)
        if not invoice.provider_invoice_id:
            raise PaymentError("refresh-not-created")
        try:
            reports = await provider.fetch_statuses([invoice.provider_invoice_id])
        except ProviderError as exc:
            raise PaymentError(f"error-provider-{exc.code}", details="") from None
        changes = await self.apply(invoice.provider, reports, source="refresh")
        return any(change.changed for change in changes)

    @staticmethod
    def cancellable(invoice: InvoiceRow) -> bool:
        """Only while nothing at all has been seen paid."""
        return (
            invoice.outcome == "created"
            and invoice.provider_invoice_id is not None
            and invoice.status in CANCELLABLE
            and not invoice.amount_received
        )

    async def cancel(self, invoice: InvoiceRow) -> None:
        """Cancel at the provider while nothing was paid; the status follows as 'cancelled'."""
        if invoice.outcome != "created" or not invoice.provider_invoice_id:
            raise PaymentError("cancel-not-created")
        if not self.cancellable(invoice):
            raise PaymentError("cancel-refused-status", status=invoice.status or "")
        provider = self._providers.get(invoice.provider)
        if provider is None:
            raise PaymentError("error-provider-not_configured", details="")
        try:
            await provider.cancel(invoice.provider_invoice_id, invoice.public_id)
        except (ProviderValidationError, ProviderStateRefused):
            raise PaymentError("cancel-refused-provider") from None
        except ProviderError as exc:
            raise PaymentError(f"error-provider-{exc.code}", details="") from None
        await self.apply(
            invoice.provider,
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


def _update_of(stored: UnmatchedReportRow) -> StatusUpdate:
    return StatusUpdate(
        provider=stored.provider,
        dedupe_key=stored.dedupe_key,
        provider_invoice_id=stored.provider_invoice_id,
        foreign_id=stored.foreign_id,
        provider_status=stored.provider_status,
        status=stored.status,
        amount_received=stored.amount_received,
        received_currency=stored.received_currency,
        test_mode=stored.test_mode,
        detail=stored.detail,
        provider_checked_amount=stored.provider_checked_amount,
    )
