"""Creating invoices exactly once, and reading the invoice log."""

from __future__ import annotations

import datetime as dt
import logging
import math
import secrets
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from bot.domain import (
    CreatedInvoice,
    Customer,
    Draft,
    InvoiceOutcome,
    InvoiceRequest,
    LegalEntity,
    NaturalPerson,
    Sender,
    SenderType,
)
from bot.providers import ProviderRegistry
from bot.providers.base import (
    PaymentProvider,
    ProviderAuthError,
    ProviderConnectionLost,
    ProviderError,
    ProviderStateRefused,
    ProviderValidationError,
)
from bot.services.customers import CustomerService
from bot.services.drafts import DraftCodec, closed_payload
from bot.services.payments import PaymentService, lower_statuses
from storage.models import InvoiceEventRow, InvoiceRow
from storage.repositories import (
    AlertRepository,
    DraftRepository,
    InvoiceRepository,
    LiveAttemptExists,
)
from storage.types import utcnow

logger = logging.getLogger(__name__)


class SubmitError(Exception):
    """Why a confirmed draft did not become an invoice; `key` names the merchant's message."""

    def __init__(self, key: str, *, retry: bool = True, **params: object) -> None:
        super().__init__(key)
        self.key = key
        self.retry = retry
        self.params = params


@dataclass(frozen=True, slots=True)
class Submission:
    invoice: InvoiceRow
    customer: Customer | None
    repeated: bool = False  # the draft had been submitted before: nothing new was created


def sender_of(draft: Draft) -> Sender | None:
    if draft.sender_type is SenderType.NATURAL:
        if draft.first_name and draft.last_name and draft.date_of_birth:
            return NaturalPerson(draft.first_name, draft.last_name, draft.date_of_birth)
    elif draft.sender_type is SenderType.LEGAL and draft.legal_name and draft.country_alpha3:
        return LegalEntity(draft.legal_name, draft.country_alpha3)
    return None


def _seconds(delta: dt.timedelta) -> int:
    return max(1, math.ceil(delta.total_seconds()))


def new_public_id() -> str:
    """Our invoice id, sent as foreign_id/order_id: random, so it never repeats across databases."""
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Settled:
    """What settling one attempt of unknown outcome came to, for the chat layer to tell."""

    invoice: InvoiceRow
    outcome: str  # recovered | voided | flagged
    draft: Draft | None  # the draft, if it is still open
    customer: Customer | None = None


# A settle in progress holds the attempt this long, so two settlers never cancel twice.
SETTLE_LEASE = dt.timedelta(seconds=60)
# A failing settle is retried after a fraction of the attempt's age, within these bounds,
# and flagged to the admins once it has failed for longer than GIVE_UP_AFTER.
RETRY_MIN = dt.timedelta(seconds=5)
RETRY_MAX = dt.timedelta(seconds=60)
GIVE_UP_AFTER = dt.timedelta(minutes=10)
# An attempt handed to the admins is parked this far ahead: no automatic settle any more.
PARKED = dt.timedelta(days=1000)


class InvoiceService:
    def __init__(
        self,
        *,
        providers: ProviderRegistry,
        invoices: InvoiceRepository,
        drafts: DraftRepository,
        codec: DraftCodec,
        customers: CustomerService,
        payments: PaymentService,
        alerts: AlertRepository,
        wait_window: dt.timedelta = dt.timedelta(seconds=40),
    ) -> None:
        self._providers = providers
        self._wait_window = wait_window
        self._invoices = invoices
        self._drafts = drafts
        self._codec = codec
        self._customers = customers
        self._payments = payments
        self._alerts = alerts
        self.on_unsettled: Callable[[], None] = lambda: None  # wakes the background settler
        self.process_id: str | None = None  # this process, when several serve the bot
        # Providers whose "keys refused" alert may still stand: the next success clears it
        # (once, not on every invoice), so a later refusal is alerted again.
        self._auth_alert_standing = set(providers)

    @property
    def _provider(self) -> PaymentProvider:
        return self._providers.active

    async def already_created(self, draft_id: str) -> bool:
        live = await self._invoices.live_for_draft(draft_id)
        return live is not None and live.outcome == InvoiceOutcome.CREATED

    async def owns(self, draft_id: str, merchant_id: int) -> bool:
        row = await self._drafts.get(draft_id)
        return row is not None and row.merchant_id == merchant_id

    async def unsettled(self, draft_id: str) -> InvoiceRow | None:
        """The draft's attempt whose outcome at the provider is not known yet, if any."""
        live = await self._invoices.live_for_draft(draft_id)
        if live is None or live.outcome not in (InvoiceOutcome.UNKNOWN, InvoiceOutcome.CREATING):
            return None
        return live

    async def abandoned(self, draft_id: str) -> InvoiceRow | None:
        """A draft was left (cancel, /new, timeout, edit): settle its unknown attempt soon."""
        live = await self.unsettled(draft_id)
        if live is not None:
            self.on_unsettled()
        return live

    async def submit(
        self,
        draft_id: str,
        merchant_id: int,
        revision: str | None = None,
        message_id: int | None = None,
    ) -> Submission:
        """Create the draft's invoice once; a second call returns the first result.

        `revision` is the preview the merchant confirmed: a press on an older preview of a
        draft that changed since is refused rather than creating something not shown.
        `message_id` is that preview, so a settle in the background can update it.
        """
        row = await self._drafts.get(draft_id)
        if row is None or row.merchant_id != merchant_id:
            raise SubmitError("error-draft-gone", retry=False)
        draft = self._codec.decode(row)
        live = await self._invoices.live_for_draft(draft_id)
        if live is not None:
            if live.outcome == InvoiceOutcome.CREATED:
                return Submission(live, await self._customer_of(live), repeated=True)
            if live.outcome == InvoiceOutcome.CREATING:
                raise SubmitError("error-submit-in-progress")
            settled = await self._settle(live, draft if row.state == "open" else None)
            if settled.outcome == "recovered":
                return Submission(settled.invoice, settled.customer)
        if row.state != "open":
            raise SubmitError("error-draft-gone", retry=False)
        if revision is not None and (draft.extra.get("rev") != revision or draft.step != "preview"):
            raise SubmitError("error-draft-changed", retry=False)
        return await self._create(draft, message_id)

    async def settle_due(self) -> list[Settled]:
        """Settle every attempt of unknown outcome that is due, whatever its draft's state:
        an abandoned draft must not leave a payable invoice behind. Run in the background."""
        results = []
        for live in await self._invoices.unknown_attempts(due_by=utcnow()):
            draft_row = await self._drafts.get(live.draft_id)
            is_open = draft_row is not None and draft_row.state == "open"
            draft = self._codec.decode(draft_row) if draft_row and is_open else None
            try:
                results.append(await self._settle(live, draft))
            except SubmitError as exc:
                logger.info("invoice %s: not settled yet (%s)", live.id, exc.key)
        return results

    async def next_settle_at(self) -> dt.datetime | None:
        """When the next attempt of unknown outcome becomes due (None: there is none)."""
        times = [
            row.settle_after or row.created_at for row in await self._invoices.unknown_attempts()
        ]
        return min(times) if times else None

    async def _settle(self, live: InvoiceRow, draft: Draft | None) -> Settled:
        """Settle an attempt whose answer was lost: reuse it if it is this very order, else
        make sure it is not payable. SubmitError when that cannot be done now."""
        assert live.id is not None
        now = utcnow()
        if live.flagged_at is not None and live.settle_after and live.settle_after - now > PARKED:
            raise SubmitError("error-submit-flagged", public_id=live.public_id)
        if live.settle_after is not None and live.settle_after > now:
            # The request may still be running at the provider; looking now could miss it.
            raise SubmitError("error-submit-settling", seconds=_seconds(live.settle_after - now))
        if not await self._invoices.claim_settle(live.id, now, now + SETTLE_LEASE):
            raise SubmitError("error-submit-settling", seconds=_seconds(SETTLE_LEASE))
        provider = self._providers.get(live.provider)
        if provider is None:
            return await self._give_up(
                live, draft, f"{live.provider} keys are no longer configured; settle by hand"
            )
        # Written before the call: if this process dies after the provider cancelled it, the
        # next settle knows that an "invalid state" may be our own cancel.
        tried_before = await self._invoices.has_event(live.id, "settling")
        await self._invoices.record(live.id, event="settling")
        found: CreatedInvoice | None = None
        try:
            found = await provider.resolve_unknown(live.public_id, live.created_at)
            if found is not None and draft is not None and await self._same_order(live, draft):
                return await self._recovered(live, draft, found)
            if found is not None:
                # It exists but is no longer what the merchant wants: it must not stay payable.
                await provider.cancel(found.provider_invoice_id, live.public_id)
        except ProviderStateRefused as exc:
            if not tried_before:
                return await self._give_up(
                    live, draft, f"{live.provider} refused to settle it ({exc.code})"
                )
            # An earlier settle may have cancelled it before the bot died: taken as voided.
            # Were it paid instead, the provider's callback still arrives, and a payment on a
            # voided attempt is announced to the merchant and flagged to the admins.
            logger.info("invoice %s: cancelled by an earlier settle", live.id)
        except (ProviderValidationError, ProviderAuthError) as exc:
            # A definite refusal other than "no such invoice": it may even be paid.
            return await self._give_up(
                live, draft, f"{live.provider} refused to settle it ({exc.code})"
            )
        except ProviderError as exc:
            logger.warning("invoice %s: earlier attempt still unresolved (%s)", live.id, exc.code)
            if now - live.created_at > GIVE_UP_AFTER and await self._invoices.flag(
                live.id, "lost answer unresolved for 10 minutes"
            ):
                self._payments.on_change()
            retry = min(RETRY_MAX, max(RETRY_MIN, (now - live.created_at) / 4))
            await self._invoices.postpone_settle(live.id, now + retry)
            raise SubmitError("error-submit-unresolved", public_id=live.public_id) from None
        row = await self._invoices.record(
            live.id,
            event="voided",
            outcome=InvoiceOutcome.VOIDED.value,
            provider_invoice_id=found.provider_invoice_id if found else None,
            detail="cancelled at the provider" if found else "no payable invoice at the provider",
        )
        logger.info("invoice %s: earlier attempt voided", live.id)
        return Settled(row, "voided", draft)

    async def _recovered(self, live: InvoiceRow, draft: Draft, found: CreatedInvoice) -> Settled:
        assert live.id is not None
        row = await self._invoices.record(
            live.id,
            event="recovered",
            outcome=InvoiceOutcome.CREATED.value,
            status=found.status,
            replaces=lower_statuses(found.status),
            notified_status=found.status,
            message_id=live.preview_message_id,
            provider_invoice_id=found.provider_invoice_id,
            pay_url=found.pay_url,
            expires_at=found.expires_at,
            settle_after=None,
        )
        await self._drafts.transition(
            live.draft_id, "open", "submitted", payload=closed_payload(draft)
        )
        await self._payments.replay_unmatched(row)
        logger.info("invoice %s: recovered from the provider after a lost answer", live.id)
        return Settled(row, "recovered", draft, await self._customer_of(row))

    async def _give_up(self, live: InvoiceRow, draft: Draft | None, reason: str) -> Settled:
        """Leave the attempt blocking its draft and ask an admin, instead of retrying forever."""
        assert live.id is not None
        await self._invoices.flag(live.id, reason)
        self._payments.on_change()  # the notifier sends the admins' alert
        await self._invoices.postpone_settle(live.id, utcnow() + PARKED * 2)
        logger.warning("invoice %s: attempt cannot be settled automatically; admins alerted",
                       live.id)  # fmt: skip
        row = await self._invoices.get(live.id)
        return Settled(row or live, "flagged", draft)

    async def _same_order(self, live: InvoiceRow, draft: Draft) -> bool:
        customer = await self._resolve_customer(draft)
        return (live.amount, live.currency, live.title, live.customer_id) == (
            draft.amount,
            draft.currency,
            draft.title,
            customer.id if customer else None,
        )

    async def _create(self, draft: Draft, message_id: int | None) -> Submission:
        if draft.amount is None or not draft.currency or not draft.title:
            raise SubmitError("error-draft-incomplete", retry=False)
        customer = await self._resolve_customer(draft)
        if self._provider.requirements.sender_data and customer is None:
            raise SubmitError("error-draft-incomplete", retry=False)
        try:
            attempt = await self._invoices.begin_attempt(
                InvoiceRow(
                    public_id=new_public_id(),
                    draft_id=draft.id,
                    provider=self._provider.name,
                    amount=draft.amount,
                    currency=draft.currency,
                    title=draft.title,
                    customer_id=customer.id if customer else None,
                    merchant_id=draft.merchant_id,
                    # An invoice made inline has no chat of its own: its news go to the merchant.
                    chat_id=int(draft.extra.get("reply_chat", draft.chat_id)),
                    locale=draft.extra.get("locale"),
                    outcome=InvoiceOutcome.CREATING.value,
                    preview_message_id=message_id,
                    owner=self.process_id,
                )
            )
        except LiveAttemptExists:
            raise SubmitError("error-submit-in-progress") from None
        assert attempt.id is not None
        request = InvoiceRequest(
            foreign_id=attempt.public_id,
            amount=draft.amount,
            currency=draft.currency,
            title=draft.title,
            customer=customer,
        )
        try:
            created = await self._provider.create_invoice(request)
        except Exception as exc:
            if not isinstance(exc, ProviderError):
                # Our own failure mid-call: whether the request left is unknown, so the attempt
                # is settled like a lost answer before any retry.
                logger.exception("invoice %s: unexpected failure during create", attempt.id)
                exc = ProviderConnectionLost("unexpected failure during the provider call")
            return await self._failed(attempt, draft, exc)
        row = await self._invoices.record(
            attempt.id,
            event="created",
            outcome=InvoiceOutcome.CREATED.value,
            status=created.status,
            replaces=lower_statuses(created.status),
            notified_status=created.status,  # the card about to be shown tells this one
            # The preview becomes the card: known now, so a crash before the card is drawn
            # still leaves the notifier a card to keep up to date.
            message_id=message_id,
            provider_invoice_id=created.provider_invoice_id,
            pay_url=created.pay_url,
            expires_at=created.expires_at,
        )
        await self._drafts.transition(draft.id, "open", "submitted", payload=closed_payload(draft))
        if customer is not None:
            await self._customers.touch(customer.id)
        if self._provider.name in self._auth_alert_standing:
            await self._alerts.clear("provider-auth", self._provider.name)
            self._auth_alert_standing.discard(self._provider.name)
        await self._payments.replay_unmatched(row)
        logger.info("invoice %s created at %s", attempt.id, self._provider.name)
        return Submission(row, customer)

    async def _failed(self, attempt: InvoiceRow, draft: Draft, exc: ProviderError) -> Submission:
        """Record a failed create. An answered failure of unknown outcome is settled at once
        (the link if it exists and is this order, else nothing payable is left); a timeout
        waits, since the request may still be running at the provider."""
        assert attempt.id is not None
        outcome = InvoiceOutcome.FAILED if exc.definite else InvoiceOutcome.UNKNOWN
        fields = getattr(exc, "fields", {})
        wait = dt.timedelta(0) if exc.answered else self._wait_window
        live = await self._invoices.record(
            attempt.id,
            event=outcome.value,
            outcome=outcome.value,
            error_code=exc.code,
            settle_after=utcnow() + wait if outcome is InvoiceOutcome.UNKNOWN else None,
            detail=f"{exc.code}; http={exc.http_status}; fields={','.join(sorted(fields))}",
        )
        logger.warning(
            "invoice %s: create failed (%s, http=%s, outcome=%s, fields=%s)",
            attempt.id,
            exc.code,
            exc.http_status,
            outcome.value,
            ",".join(sorted(fields)),
        )
        if isinstance(exc, ProviderAuthError):
            self._auth_alert_standing.add(self._provider.name)
            await self._alerts.add("provider-auth", self._provider.name,
                                   {"provider": self._provider.name})  # fmt: skip
            self._payments.on_change()  # the notifier sends the alert
        if outcome is InvoiceOutcome.UNKNOWN and exc.answered:
            settled = await self._settle(live, draft)  # SubmitError if it cannot be yet
            if settled.outcome == "recovered":
                return Submission(settled.invoice, settled.customer)
            if settled.outcome == "flagged":
                raise SubmitError("error-submit-flagged", public_id=live.public_id)
            raise SubmitError(f"error-provider-{exc.code}-settled", details="")
        if outcome is InvoiceOutcome.UNKNOWN:
            self.on_unsettled()
            raise SubmitError(f"error-provider-{exc.code}", seconds=_seconds(wait), details="")
        raise SubmitError(
            f"error-provider-{exc.code}",
            details="; ".join(f"{key}: {value}" for key, value in fields.items())[:500],
        )

    async def _resolve_customer(self, draft: Draft) -> Customer | None:
        if not self._provider.requirements.sender_data:
            return None
        if draft.customer_id is not None:
            customer = await self._customers.get(draft.merchant_id, draft.customer_id)
            if customer is not None and draft.email and customer.email != draft.email:
                customer = await self._customers.find_or_create(
                    draft.merchant_id, customer.sender, draft.email
                )
            return customer
        sender = sender_of(draft)
        if sender is None:
            return None
        return await self._customers.find_or_create(draft.merchant_id, sender, draft.email)

    async def _customer_of(self, invoice: InvoiceRow) -> Customer | None:
        return await self._customers.get(invoice.merchant_id, invoice.customer_id)

    async def get(self, invoice_id: int) -> InvoiceRow | None:
        return await self._invoices.get(invoice_id)

    async def mark_card(self, invoice_id: int, message_id: int, shown_status: str | None) -> None:
        await self._invoices.set_message(invoice_id, message_id, shown_status)

    async def recover_interrupted(
        self,
        older_than: dt.timedelta = dt.timedelta(seconds=0),
        live_processes: Collection[str] | None = None,
        *,
        release_leases: bool = True,
    ) -> int:
        """Attempts a crash left in 'creating' become 'unknown', settled once the request
        could no longer be running at the provider; settle leases a crash left behind are
        released (no more than the provider's own wait remains). With several processes,
        an attempt is interrupted once it is `older_than` or its process is not live."""
        if release_leases:  # at start-up only: later, a lease may belong to a live settle
            await self._invoices.cap_settle_after(utcnow() + self._wait_window, PARKED)
        now = utcnow()
        rows = [
            row
            for row in await self._invoices.stale_creating(now)
            if row.updated_at < now - older_than
            or (live_processes is not None and row.owner not in live_processes)
        ]
        interrupted = 0
        for row in rows:
            assert row.id is not None
            recorded = await self._invoices.record(
                row.id,
                event="interrupted",
                outcome=InvoiceOutcome.UNKNOWN.value,
                settle_after=row.updated_at + self._wait_window,
                detail="bot stopped during the provider call",
                only_if_outcome=InvoiceOutcome.CREATING.value,  # not one answered meanwhile
            )
            interrupted += recorded.outcome == InvoiceOutcome.UNKNOWN.value
        if interrupted:
            self.on_unsettled()
        return interrupted

    async def page(
        self, *, page: int, per_page: int, merchant_id: int | None
    ) -> tuple[Sequence[InvoiceRow], int]:
        return await self._invoices.recent(
            limit=per_page, offset=page * per_page, merchant_id=merchant_id
        )

    async def find(self, ref: str, *, merchant_id: int | None) -> InvoiceRow | None:
        """By our numeric id or public id; merchants see only their own."""
        ref = ref.strip()
        row = (
            await self._invoices.get(int(ref))
            if ref.isdigit() and len(ref) < 12
            else await self._invoices.get_by_public_id(ref.lower())
        )
        if row is None or (merchant_id is not None and row.merchant_id != merchant_id):
            return None
        return row

    async def history(self, invoice_id: int) -> Sequence[InvoiceEventRow]:
        return await self._invoices.events(invoice_id)
