"""Tables. Personal data lives sealed in `customer` (and in open drafts); references and ids
are random."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from storage.types import DecimalText, UTCDateTime, utcnow

# Attempts in these outcomes may still be (or become) payable at the provider,
# so a draft may hold at most one of them: the guard against double creation.
LIVE_OUTCOMES = ("creating", "created", "unknown")


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customer"
    __table_args__ = (
        Index("ix_customer_merchant_lookup", "merchant_id", "lookup_key", unique=True),
        Index("ix_customer_merchant_used", "merchant_id", "last_used_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    merchant_id: int = Field(sa_type=BigInteger)
    reference: str = Field(max_length=64, unique=True)
    # Keyed HMAC (DATA_KEY) of the normalised sender data: finds a returning customer
    # without an index over names; `erased:<reference>` once erased. Never sent anywhere.
    lookup_key: str = Field(max_length=64)
    sender_type: str = Field(max_length=16)
    # The sender data and email, sealed with DATA_KEY (storage/sealing.py) and bound to this
    # row's reference; NULL once erased.
    sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    erased_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DraftRow(SQLModel, table=True):
    __tablename__ = "draft"
    __table_args__ = (
        Index(
            "ux_draft_open_per_chat",
            "merchant_id",
            "chat_id",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )

    id: str = Field(primary_key=True, max_length=32)
    merchant_id: int = Field(sa_type=BigInteger)
    chat_id: int = Field(sa_type=BigInteger)
    state: str = Field(default="open", max_length=16)  # open | submitted | cancelled
    step: str = Field(default="amount", max_length=32)  # where the conversation stands
    payload: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    # True once a closed draft's payload holds no personal data any more.
    scrubbed: bool = False
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InvoiceRow(SQLModel, table=True):
    __tablename__ = "invoice"
    __table_args__ = (
        Index(
            "ux_invoice_live_per_draft",
            "draft_id",
            unique=True,
            sqlite_where=text("outcome IN ('creating', 'created', 'unknown')"),
            postgresql_where=text("outcome IN ('creating', 'created', 'unknown')"),
        ),
        Index("ix_invoice_merchant_created", "merchant_id", "created_at"),
        Index("ix_invoice_created", "created_at"),
        Index("ix_invoice_provider_id", "provider", "provider_invoice_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True)
    draft_id: str = Field(foreign_key="draft.id", max_length=32)
    provider: str = Field(max_length=32)
    provider_invoice_id: str | None = Field(default=None, max_length=64)
    pay_url: str | None = Field(default=None, max_length=500)
    amount: Decimal = Field(sa_type=DecimalText)
    currency: str = Field(max_length=16)
    title: str = Field(max_length=50)
    customer_id: int | None = Field(default=None, foreign_key="customer.id")
    merchant_id: int = Field(sa_type=BigInteger)
    chat_id: int = Field(sa_type=BigInteger)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    outcome: str = Field(default="creating", max_length=16)
    status: str | None = Field(default=None, max_length=32)
    # What the merchant has seen: the status drawn on the card and the last one notified.
    # The notifier works until both catch up with `status`.
    card_status: str | None = Field(default=None, max_length=32)
    notified_status: str | None = Field(default=None, max_length=32)
    test_mode: bool = False  # the provider says no real money moves (CryptoCloud test mode)
    amount_received: str | None = Field(default=None, max_length=64)
    received_currency: str | None = Field(default=None, max_length=16)
    expires_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    flagged_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Why an admin must look at it (set with flagged_at): stuck, short, voided but paid, ...
    flag_reason: str | None = Field(default=None, max_length=300)
    # An attempt of unknown outcome may be settled from this time on: at once after an
    # answered failure, after a wait when the request may still be running at the provider.
    settle_after: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The preview card the attempt was confirmed from, so a background settle can update it.
    preview_message_id: int | None = Field(default=None, sa_type=BigInteger)
    # The process that sent the create request (several processes): while it lives, its
    # attempt in 'creating' is still waiting for the provider, not interrupted.
    owner: str | None = Field(default=None, max_length=40)
    # The payer's deep link `t.me/<bot>?start=<payer_token>`: random, never the invoice id.
    payer_token: str | None = Field(default=None, max_length=64, unique=True)
    # When the merchant was shown this invoice among those about to expire or partly paid.
    merchant_reminded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    locale: str | None = Field(default=None, max_length=8)  # the merchant's, for notifications
    error_code: str | None = Field(default=None, max_length=64)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InvoiceEventRow(SQLModel, table=True):
    __tablename__ = "invoice_event"
    __table_args__ = (Index("ix_invoice_event_invoice", "invoice_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id")
    kind: str = Field(max_length=32)
    status: str | None = Field(default=None, max_length=32)
    detail: str | None = Field(default=None, max_length=500)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProviderEventRow(SQLModel, table=True):
    """Every verified callback or poll result, once: the unique key makes redelivery a no-op."""

    __tablename__ = "provider_event"
    __table_args__ = (Index("ux_provider_event_key", "provider", "dedupe_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=200)
    invoice_id: int | None = Field(default=None, foreign_key="invoice.id")
    provider_status: str = Field(max_length=32)
    status: str = Field(max_length=32)
    received_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class UnmatchedReportRow(SQLModel, table=True):
    """A verified report for an invoice the bot does not know (yet), kept for the admins.

    It does not use up the report's dedupe key in `provider_event`, so once the invoice is
    known (a create whose answer arrived late) the same report still applies.
    """

    __tablename__ = "unmatched_report"
    __table_args__ = (Index("ux_unmatched_report_key", "provider", "dedupe_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=200)
    provider_invoice_id: str | None = Field(default=None, max_length=64)
    foreign_id: str | None = Field(default=None, max_length=64)
    provider_status: str = Field(max_length=32)
    status: str = Field(max_length=32)
    amount_received: str | None = Field(default=None, max_length=64)
    received_currency: str | None = Field(default=None, max_length=16)
    test_mode: bool = False
    provider_checked_amount: bool = False
    detail: str | None = Field(default=None, max_length=500)
    matched_invoice_id: int | None = Field(default=None, foreign_key="invoice.id")
    received_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AdminAlertRow(SQLModel, table=True):
    """An outbox of alerts for the admins: written with the fact, sent once by the notifier."""

    __tablename__ = "admin_alert"
    __table_args__ = (Index("ux_admin_alert_kind_ref", "kind", "ref", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    ref: str = Field(max_length=200)
    params: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class TelegramUpdateRow(SQLModel, table=True):
    """The shared inbox of Telegram updates when several processes serve one bot (PostgreSQL).

    The poller (or any process taking a webhook delivery) stores each update once, keyed by
    Telegram's update_id, before confirming it to Telegram; then whichever process holds the
    chat's lock processes that chat's updates in update_id order and marks them done. An update
    Telegram sends again after a crash finds its row and is not processed twice.
    """

    __tablename__ = "telegram_update"
    __table_args__ = (
        Index(
            "ix_telegram_update_pending",
            "chat_key",
            "update_id",
            sqlite_where=text("done_at IS NULL"),
            postgresql_where=text("done_at IS NULL"),
        ),
    )

    update_id: int = Field(
        sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False}
    )
    chat_key: int = Field(sa_type=BigInteger)  # the chat (or user) whose updates keep order
    payload: str = Field(sa_column=Column(Text, nullable=False))
    received_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    done_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The process handling it now, until when: another process takes it over only once that
    # process stops heartbeating or the claim runs out (a handler is never run twice at once).
    claimed_by: str | None = Field(default=None, max_length=40)
    claimed_until: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)


class BotProcessRow(SQLModel, table=True):
    """A running bot process and its role, refreshed every few seconds: shows who polls, and
    lets each process take its share of Telegram's per-bot send limit."""

    __tablename__ = "bot_process"

    id: str = Field(primary_key=True, max_length=40)
    role: str = Field(max_length=16)  # poller | standby | webhook
    leader: bool = False  # runs the notifier, the settler and the periodic jobs
    started_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    seen_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InvoiceViewRow(SQLModel, table=True):
    """A copy of an invoice card outside the merchant's own chat, edited as the payment moves:
    posted inline into a chat, opened by the payer from the deep link, or sent as the
    merchant through Telegram Business."""

    __tablename__ = "invoice_view"
    __table_args__ = (
        Index("ux_invoice_view_inline", "inline_message_id", unique=True),
        Index("ux_invoice_view_chat", "invoice_id", "kind", "chat_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    invoice_id: int = Field(foreign_key="invoice.id")
    kind: str = Field(max_length=16)  # inline | payer | business
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    inline_message_id: str | None = Field(default=None, max_length=255)
    business_connection_id: str | None = Field(default=None, max_length=255)
    locale: str | None = Field(default=None, max_length=8)  # the reader's
    shown_status: str | None = Field(default=None, max_length=32)  # drawn on this card
    told_status: str | None = Field(default=None, max_length=32)  # payer: receipt sent for
    reminded_at: dt.datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BusinessConnectionRow(SQLModel, table=True):
    """A merchant's Telegram Business account connected to the bot."""

    __tablename__ = "business_connection"

    id: str = Field(primary_key=True, max_length=255)
    merchant_id: int = Field(sa_type=BigInteger)
    can_reply: bool = False
    enabled: bool = False
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BusinessChatRow(SQLModel, table=True):
    """A customer's chat with a connected merchant, as last seen: the bot may post there as
    the merchant only while the customer wrote in the last 24 hours."""

    __tablename__ = "business_chat"

    connection_id: str = Field(primary_key=True, max_length=255)
    chat_id: int = Field(
        primary_key=True, sa_type=BigInteger, sa_column_kwargs={"autoincrement": False}
    )
    name: str = Field(max_length=64)  # the customer's first name, to pick the chat by
    language: str | None = Field(default=None, max_length=8)  # theirs, for the card
    last_incoming_at: dt.datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
