"""Creating invoices exactly once, and reading the invoice log."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain import (
    Customer,
    Draft,
    InvoiceOutcome,
    InvoiceRequest,
    LegalEntity,
    NaturalPerson,
    Sender,
    SenderType,
)
from bot.providers.base import PaymentProvider, ProviderBadResponse, ProviderError
from bot.services.customers import CustomerService
from bot.services.drafts import decode_draft
from storage.models import InvoiceEventRow, InvoiceRow
from storage.repositories import DraftRepository, InvoiceRepository, LiveAttemptExists
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


def new_public_id() -> str:
    """Our invoice id, sent as foreign_id/order_id: random, so it never repeats across databases."""
    return secrets.token_hex(8)


class InvoiceService:
    def __init__(
        self,
        *,
        provider: PaymentProvider,
        invoices: InvoiceRepository,
        drafts: DraftRepository,
        customers: CustomerService,
        settle_after: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        self._settle_after = settle_after
        self._provider = provider
        self._invoices = invoices
        self._drafts = drafts
        self._customers = customers

    async def already_created(self, draft_id: str) -> bool:
        live = await self._invoices.live_for_draft(draft_id)
        return live is not None and live.outcome == InvoiceOutcome.CREATED

    async def owns(self, draft_id: str, merchant_id: int) -> bool:
        row = await self._drafts.get(draft_id)
        return row is not None and row.merchant_id == merchant_id

    async def submit(
        self, draft_id: str, merchant_id: int, revision: str | None = None
    ) -> Submission:
        """Create the draft's invoice once; a second call returns the first result.

        `revision` is the preview the merchant confirmed: a press on an older preview of a
        draft that changed since is refused rather than creating something not shown.
        """
        row = await self._drafts.get(draft_id)
        if row is None or row.merchant_id != merchant_id:
            raise SubmitError("error-draft-gone", retry=False)
        draft = decode_draft(row)
        live = await self._invoices.live_for_draft(draft_id)
        if live is not None:
            if live.outcome == InvoiceOutcome.CREATED:
                return Submission(live, await self._customer_of(live), repeated=True)
            if live.outcome == InvoiceOutcome.CREATING:
                raise SubmitError("error-submit-in-progress")
            recovered = await self._settle_unknown(live, draft if row.state == "open" else None)
            if recovered is not None:
                return Submission(recovered, await self._customer_of(recovered), repeated=True)
        if row.state != "open":
            raise SubmitError("error-draft-gone", retry=False)
        if revision is not None and (
            draft.extra.get("rev") != revision
            or draft.editing
            or draft.extra.get("step") != "preview"
        ):
            raise SubmitError("error-draft-changed", retry=False)
        return await self._create(draft)

    async def _settle_unknown(self, live: InvoiceRow, draft: Draft | None) -> InvoiceRow | None:
        """Settle an attempt whose answer was lost: reuse it if it is this very order, else
        make sure it is not payable. Returns the reused invoice, or None to go ahead."""
        assert live.id is not None
        if utcnow() - live.created_at < self._settle_after:
            # The provider may still be processing that request; looking now could miss it.
            raise SubmitError("error-submit-settling")
        try:
            found = await self._provider.resolve_unknown(live.public_id, live.created_at)
        except ProviderError as exc:
            logger.warning("invoice %s: earlier attempt still unresolved (%s)", live.id, exc.code)
            raise SubmitError("error-submit-unresolved", public_id=live.public_id) from None
        if found is not None and draft is not None and await self._same_order(live, draft):
            row = await self._invoices.record(
                live.id,
                event="recovered",
                outcome=InvoiceOutcome.CREATED.value,
                status=found.status,
                notified_status=found.status,
                provider_invoice_id=found.provider_invoice_id,
                pay_url=found.pay_url,
                expires_at=found.expires_at,
            )
            await self._drafts.transition(live.draft_id, "open", "submitted")
            logger.info("invoice %s: recovered from the provider after a lost answer", live.id)
            return row
        if found is not None:
            # It exists but is no longer what the merchant wants: it must not stay payable.
            try:
                await self._provider.cancel(found.provider_invoice_id, live.public_id)
            except ProviderError as exc:
                logger.warning("invoice %s: stale attempt not cancelled (%s)", live.id, exc.code)
                raise SubmitError("error-submit-unresolved", public_id=live.public_id) from None
        await self._invoices.record(
            live.id,
            event="voided",
            outcome=InvoiceOutcome.VOIDED.value,
            provider_invoice_id=found.provider_invoice_id if found else None,
            detail="cancelled at the provider" if found else "no payable invoice at the provider",
        )
        logger.info("invoice %s: earlier attempt voided", live.id)
        return None

    async def _same_order(self, live: InvoiceRow, draft: Draft) -> bool:
        customer = await self._resolve_customer(draft)
        return (live.amount, live.currency, live.title, live.customer_id) == (
            draft.amount,
            draft.currency,
            draft.title,
            customer.id if customer else None,
        )

    async def settle_orphans(self) -> int:
        """Lost-answer attempts whose draft was closed (cancel, /new, timeout) are settled in
        the background, so no forgotten invoice stays payable. Returns how many were."""
        settled = 0
        for live in await self._invoices.unknown_attempts():
            draft_row = await self._drafts.get(live.draft_id)
            if draft_row is not None and draft_row.state == "open":
                continue  # the merchant's next Retry settles it
            try:
                await self._settle_unknown(live, None)
                settled += 1
            except SubmitError as exc:
                logger.info("invoice %s: not settled yet (%s)", live.id, exc.key)
        return settled

    async def _create(self, draft: Draft) -> Submission:
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
                    chat_id=draft.chat_id,
                    locale=draft.extra.get("locale"),
                    outcome=InvoiceOutcome.CREATING.value,
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
                exc = ProviderBadResponse("unexpected failure during the provider call")
            outcome = InvoiceOutcome.FAILED if exc.definite else InvoiceOutcome.UNKNOWN
            fields = getattr(exc, "fields", {})
            await self._invoices.record(
                attempt.id,
                event=outcome.value,
                outcome=outcome.value,
                error_code=exc.code,
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
            raise SubmitError(
                f"error-provider-{exc.code}",
                details="; ".join(f"{key}: {value}" for key, value in fields.items())[:500],
            ) from None
        row = await self._invoices.record(
            attempt.id,
            event="created",
            outcome=InvoiceOutcome.CREATED.value,
            status=created.status,
            notified_status=created.status,  # the card about to be shown tells this one
            provider_invoice_id=created.provider_invoice_id,
            pay_url=created.pay_url,
            expires_at=created.expires_at,
        )
        await self._drafts.transition(draft.id, "open", "submitted")
        if customer is not None:
            await self._customers.touch(customer.id)
        logger.info("invoice %s created at %s", attempt.id, self._provider.name)
        return Submission(row, customer)

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

    async def mark_card(self, invoice_id: int, message_id: int, shown_status: str | None) -> None:
        await self._invoices.set_message(invoice_id, message_id, shown_status)

    async def recover_interrupted(self, older_than: dt.timedelta = dt.timedelta(seconds=0)) -> int:
        """Attempts a crash left in 'creating' become 'unknown', to be settled before a retry."""
        rows = await self._invoices.stale_creating(utcnow() - older_than)
        for row in rows:
            assert row.id is not None
            await self._invoices.record(
                row.id,
                event="interrupted",
                outcome=InvoiceOutcome.UNKNOWN.value,
                detail="bot stopped during the provider call",
            )
        return len(rows)

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
