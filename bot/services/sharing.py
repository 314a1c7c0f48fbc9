"""Putting an invoice in front of the customer: payer links, inline cards, Business chats.

Every place an invoice is shown outside the merchant's own chat is a *view*, edited as the
payment moves, so the customer sees "Paid" where they paid. Payers reach their invoice only
by its random token; a wrong token and an expired invoice get the same answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from bot.domain import Customer, Draft, InvoiceOutcome, PaymentStatus
from bot.services.currencies import CurrencyCatalog
from bot.services.customers import CustomerService
from bot.services.drafts import DraftService
from bot.services.inputs import InputError, check_amount_precision
from bot.services.invoices import InvoiceService, Submission, SubmitError
from bot.services.oneline import parse_line
from storage.models import BusinessChatRow, BusinessConnectionRow, InvoiceRow, InvoiceViewRow
from storage.sharing import BusinessRepository, ShareRepository
from storage.types import utcnow

BUSINESS_WINDOW = dt.timedelta(hours=24)  # Telegram: the customer wrote within a day
_DEAD = {PaymentStatus.EXPIRED, PaymentStatus.CANCELLED, PaymentStatus.FAILED}


def _inline_digest(inline_message_id: str) -> str:
    return hashlib.sha256(f"inline:{inline_message_id}".encode()).hexdigest()


def new_token() -> str:
    """32 characters of A-Za-z0-9_-: fits Telegram's 64-character start parameter."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class InlineOrder:
    """What an inline query asks for: a new invoice, or sharing an existing one."""

    amount: Decimal | None = None
    currency: str | None = None
    title: str | None = None
    share: InvoiceRow | None = None

    @property
    def complete(self) -> bool:
        return self.amount is not None and bool(self.currency) and bool(self.title)


class ShareService:
    def __init__(
        self,
        *,
        shares: ShareRepository,
        business: BusinessRepository,
        invoices: InvoiceService,
        drafts: DraftService,
        customers: CustomerService,
        currencies: CurrencyCatalog,
        max_amount: Decimal,
        sender_data: bool,
    ) -> None:
        self._shares = shares
        self._business = business
        self._invoices = invoices
        self._drafts = drafts
        self._customers = customers
        self._currencies = currencies
        self._max_amount = max_amount
        self.sender_data = sender_data  # the provider needs the payer's data (a customer)
        self.inline_enabled = False  # set at start from getMe: inline mode on in @BotFather

    # -- payer links ------------------------------------------------------------------------

    async def token_of(self, invoice: InvoiceRow) -> str:
        assert invoice.id is not None
        return invoice.payer_token or await self._shares.set_token(invoice.id, new_token())

    async def for_payer(self, token: str) -> InvoiceRow | None:
        """The invoice behind a payer's link, or None: a wrong token, an invoice never
        created, cancelled, failed or expired all read the same."""
        if not 16 <= len(token) <= 64:
            return None
        invoice = await self._shares.by_token(token)
        if invoice is None or invoice.outcome != InvoiceOutcome.CREATED or not invoice.pay_url:
            return None
        status = PaymentStatus(invoice.status or "created")
        if status in _DEAD:
            return None
        unpaid = status.rank < PaymentStatus.PARTIAL.rank
        if unpaid and invoice.expires_at is not None and invoice.expires_at <= utcnow():
            return None
        return invoice

    async def add_view(self, view: InvoiceViewRow) -> InvoiceViewRow:
        return await self._shares.add_view(view)

    async def is_payer(self, user_id: int) -> bool:
        """Whether this user opened an invoice through its link (their chat has a view)."""
        return await self._shares.has_payer_view(user_id)

    async def find_view(self, invoice_id: int, kind: str, chat_id: int) -> InvoiceViewRow | None:
        return await self._shares.find_view(
            InvoiceViewRow(invoice_id=invoice_id, kind=kind, chat_id=chat_id)
        )

    async def views_behind(self) -> Sequence[tuple[InvoiceViewRow, InvoiceRow]]:
        return await self._shares.views_behind()

    async def views_of(self, invoice_id: int) -> Sequence[InvoiceViewRow]:
        return await self._shares.views_of(invoice_id)

    async def mark_view(self, view_id: int, **values: object) -> None:
        await self._shares.update_view(view_id, **values)

    async def payer_reminders_due(
        self, within: dt.timedelta
    ) -> Sequence[tuple[InvoiceViewRow, InvoiceRow]]:
        return await self._shares.expiring_unreminded("payer", utcnow() + within)

    async def claim_reminder(self, view_id: int) -> bool:
        return await self._shares.claim_reminder(view_id)

    async def merchant_reminders_due(self, within: dt.timedelta) -> Sequence[InvoiceRow]:
        return await self._shares.merchant_due(utcnow() + within)

    async def claim_merchant_reminder(self, invoice_id: int) -> bool:
        return await self._shares.claim_merchant_reminder(invoice_id)

    # -- inline mode ------------------------------------------------------------------------

    async def read_inline(self, merchant_id: int, query: str, *, admin: bool) -> InlineOrder:
        """`150 EUR Consulting` (the one-line grammar of /new) or `#7` (share invoice 7)."""
        text = query.strip()
        if text.startswith("#") and text[1:].isdigit() and len(text) < 14:
            invoice = await self._invoices.get(int(text[1:]))
            mine = invoice is not None and (admin or invoice.merchant_id == merchant_id)
            if mine and invoice is not None and invoice.payer_token is None:
                await self.token_of(invoice)
                invoice = await self._invoices.get(int(text[1:]))
            if mine and invoice is not None and await self.for_payer(invoice.payer_token or ""):
                return InlineOrder(share=invoice)
            return InlineOrder()
        known = await self._currencies.all()
        line = parse_line(text, known=known, max_amount=self._max_amount)
        currency = known.get(line.currency or "")
        if line.amount is not None and currency is not None:
            try:  # more decimals than the currency has: refused here as /new refuses it
                check_amount_precision(line.amount, currency.decimals, currency.code)
            except InputError:
                return InlineOrder(None, line.currency, line.title)
        return InlineOrder(line.amount, line.currency, line.title)

    async def recent_customers(self, merchant_id: int, limit: int = 8) -> list[Customer]:
        return await self._customers.recent(merchant_id, limit)

    async def create_inline(
        self,
        merchant_id: int,
        order: InlineOrder,
        customer_id: int | None,
        inline_message_id: str,
        locale: str,
    ) -> Submission:
        """Create the invoice a chosen inline result stands for, exactly once per posted
        card: the draft's id is derived from the card's inline_message_id."""
        if not order.complete:
            raise SubmitError("error-draft-incomplete", retry=False)
        digest = _inline_digest(inline_message_id)
        draft_id = digest[:16]
        if not await self._invoices.owns(draft_id, merchant_id):
            draft = Draft(
                id=draft_id,
                merchant_id=merchant_id,
                # A chat of its own (no real chat has such an id), so it never closes the
                # merchant's conversation in progress; news go to the merchant's chat.
                chat_id=-(2**60) - int(digest[16:29], 16),
                amount=order.amount,
                currency=order.currency,
                title=order.title,
                customer_id=customer_id,
                step="preview",
                extra={"locale": locale, "reply_chat": str(merchant_id), "inline": "1"},
            )
            await self._drafts.start(draft)
        return await self._invoices.submit(draft_id, merchant_id)

    async def inline_attempt(self, inline_message_id: str) -> InvoiceRow | None:
        """The attempt behind a posted card whose create is still being settled, if any."""
        return await self._invoices.unsettled(_inline_digest(inline_message_id)[:16])

    # -- Telegram Business ----------------------------------------------------------------

    async def save_connection(
        self, connection_id: str, merchant_id: int, *, can_reply: bool, enabled: bool
    ) -> None:
        await self._business.save_connection(
            BusinessConnectionRow(
                id=connection_id,
                merchant_id=merchant_id,
                can_reply=can_reply,
                enabled=enabled,
                updated_at=utcnow(),
            )
        )

    async def has_business(self, merchant_id: int) -> bool:
        """Whether the merchant connected Telegram Business with the right to reply."""
        return bool(await self._business.connections_of(merchant_id))

    async def connection(self, connection_id: str) -> BusinessConnectionRow | None:
        return await self._business.connection(connection_id)

    async def customer_wrote(
        self, connection_id: str, chat_id: int, name: str, language: str | None
    ) -> None:
        await self._business.saw_incoming(connection_id, chat_id, name, language)

    async def business_chats(self, merchant_id: int) -> list[BusinessChatRow]:
        """The merchant's Business chats the bot may post in now, most recent first."""
        connections = [c.id for c in await self._business.connections_of(merchant_id)]
        if not connections:
            return []
        return list(await self._business.open_chats(connections, utcnow() - BUSINESS_WINDOW))

    async def business_chat(self, merchant_id: int, chat_id: int) -> BusinessChatRow | None:
        for chat in await self.business_chats(merchant_id):
            if chat.chat_id == chat_id:
                return chat
        return None
