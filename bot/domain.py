"""Plain value types shared by services, providers and handlers (no I/O here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class SenderType(StrEnum):
    NATURAL = "natural"
    LEGAL = "legal"


@dataclass(frozen=True, slots=True)
class NaturalPerson:
    first_name: str
    last_name: str
    date_of_birth: dt.date


@dataclass(frozen=True, slots=True)
class LegalEntity:
    legal_name: str
    country_alpha3: str


Sender = NaturalPerson | LegalEntity


def sender_type_of(sender: Sender) -> SenderType:
    return SenderType.NATURAL if isinstance(sender, NaturalPerson) else SenderType.LEGAL


@dataclass(frozen=True, slots=True)
class Customer:
    """A merchant's end customer; `reference` is the opaque end_user_reference."""

    id: int
    reference: str
    sender: Sender
    email: str | None


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    decimals: int
    kind: str = "fiat"  # "fiat" or "crypto"


class EmailRule(StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"
    UNUSED = "unused"


@dataclass(frozen=True, slots=True)
class ProviderRequirements:
    """What the conversation must collect for the active provider."""

    sender_data: bool
    email: EmailRule


@dataclass(frozen=True, slots=True)
class InvoiceRequest:
    """Everything a provider needs to create one invoice; `foreign_id` is minted by us."""

    foreign_id: str
    amount: Decimal
    currency: str
    title: str
    customer: Customer | None


@dataclass(frozen=True, slots=True)
class CreatedInvoice:
    provider_invoice_id: str
    pay_url: str
    status: str  # a PaymentStatus value
    expires_at: dt.datetime | None = None


class PaymentStatus(StrEnum):
    """One status model for both providers; each adapter maps its own words onto it."""

    CREATED = "created"
    PENDING = "pending"
    PROCESSING = "processing"
    PARTIAL = "partial"
    PAID = "paid"
    OVERPAID = "overpaid"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        """Statuses only move to a higher rank; final ones never move again."""
        return _RANK[self]

    @property
    def final(self) -> bool:
        return self.rank == _FINAL_RANK

    @property
    def needs_action(self) -> bool:
        """Worth a separate notification, not only an edited card."""
        return self in {
            PaymentStatus.PAID, PaymentStatus.PARTIAL, PaymentStatus.OVERPAID,
            PaymentStatus.FAILED, PaymentStatus.EXPIRED,
        }  # fmt: skip


_FINAL_RANK = 4
_RANK = {
    PaymentStatus.CREATED: 0,
    PaymentStatus.PENDING: 1,
    PaymentStatus.PROCESSING: 2,
    PaymentStatus.PARTIAL: 3,
    PaymentStatus.PAID: _FINAL_RANK,
    PaymentStatus.OVERPAID: _FINAL_RANK,
    PaymentStatus.FAILED: _FINAL_RANK,
    PaymentStatus.EXPIRED: _FINAL_RANK,
    PaymentStatus.CANCELLED: _FINAL_RANK,
}


@dataclass(frozen=True, slots=True)
class StatusReport:
    """What a provider says about one invoice, already verified and mapped.

    `dedupe_key` identifies this exact report, so a redelivery changes nothing.
    Amounts are kept as the provider's exact text.
    """

    provider_invoice_id: str | None
    foreign_id: str | None
    status: PaymentStatus
    provider_status: str
    dedupe_key: str
    amount_received: str | None = None
    received_currency: str | None = None
    test_mode: bool = False  # the provider moved no real money (CryptoCloud test mode)
    detail: str | None = None
    # The provider itself compared what arrived with the invoice (CryptoCloud's paid /
    # overpaid are its own verdict on the fiat value); otherwise the bot compares.
    provider_checked_amount: bool = False


class InvoiceOutcome(StrEnum):
    """Where one create attempt stands; only CREATING and UNKNOWN block a new attempt."""

    CREATING = "creating"
    CREATED = "created"
    FAILED = "failed"
    UNKNOWN = "unknown"
    VOIDED = "voided"


@dataclass(slots=True)
class Draft:
    """The invoice a merchant is composing; persisted after every answer."""

    id: str
    merchant_id: int
    chat_id: int
    amount: Decimal | None = None
    currency: str | None = None
    title: str | None = None
    customer_id: int | None = None
    sender_type: SenderType | None = None
    first_name: str | None = None
    last_name: str | None = None
    date_of_birth: dt.date | None = None
    legal_name: str | None = None
    country_alpha3: str | None = None
    email: str | None = None
    # The step being asked: the only record of where the conversation stands (a string,
    # so a deploy that adds a step never moves a conversation in flight).
    step: str = "amount"
    extra: dict[str, str] = field(default_factory=dict)


class StartupRefused(Exception):
    """A reason the bot must not start, worded for the operator (printed as it is)."""
