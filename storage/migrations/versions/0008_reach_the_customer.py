"""Reaching the customer: payer tokens, live invoice views, Telegram Business connections

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payer_token", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("merchant_reminded_at", storage.types.UTCDateTime(), nullable=True)
        )
        batch_op.create_unique_constraint("uq_invoice_payer_token", ["payer_token"])
    op.create_table(
        "invoice_view",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invoice_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column("message_id", sa.BigInteger(), nullable=True),
        sa.Column("inline_message_id", sa.String(length=255), nullable=True),
        sa.Column("business_connection_id", sa.String(length=255), nullable=True),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("shown_status", sa.String(length=32), nullable=True),
        sa.Column("told_status", sa.String(length=32), nullable=True),
        sa.Column("reminded_at", storage.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoice.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_invoice_view_inline", "invoice_view", ["inline_message_id"], unique=True)
    op.create_index(
        "ux_invoice_view_chat", "invoice_view", ["invoice_id", "kind", "chat_id"], unique=True
    )
    op.create_table(
        "business_connection",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("merchant_id", sa.BigInteger(), nullable=False),
        sa.Column("can_reply", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "business_chat",
        sa.Column("connection_id", sa.String(length=255), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("last_incoming_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", "chat_id"),
    )


def downgrade() -> None:
    op.drop_table("business_chat")
    op.drop_table("business_connection")
    op.drop_index("ux_invoice_view_chat", table_name="invoice_view")
    op.drop_index("ux_invoice_view_inline", table_name="invoice_view")
    op.drop_table("invoice_view")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_constraint("uq_invoice_payer_token", type_="unique")
        batch_op.drop_column("merchant_reminded_at")
        batch_op.drop_column("payer_token")
