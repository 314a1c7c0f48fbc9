"""trust: settling lost answers, unmatched reports, admin alerts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flag_reason", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("settle_after", storage.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("preview_message_id", sa.BigInteger(), nullable=True))

    op.create_table(
        "unmatched_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("provider_invoice_id", sa.String(length=64), nullable=True),
        sa.Column("foreign_id", sa.String(length=64), nullable=True),
        sa.Column("provider_status", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("amount_received", sa.String(length=64), nullable=True),
        sa.Column("received_currency", sa.String(length=16), nullable=True),
        sa.Column("test_mode", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column(
            "provider_checked_amount", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
        sa.Column("detail", sa.String(length=500), nullable=True),
        sa.Column("matched_invoice_id", sa.Integer(), nullable=True),
        sa.Column("received_at", storage.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["matched_invoice_id"], ["invoice.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("unmatched_report", schema=None) as batch_op:
        batch_op.create_index("ux_unmatched_report_key", ["provider", "dedupe_key"], unique=True)

    op.create_table(
        "admin_alert",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", storage.types.UTCDateTime(), nullable=False),
        sa.Column("sent_at", storage.types.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("admin_alert", schema=None) as batch_op:
        batch_op.create_index("ux_admin_alert_kind_ref", ["kind", "ref"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("admin_alert", schema=None) as batch_op:
        batch_op.drop_index("ux_admin_alert_kind_ref")
    op.drop_table("admin_alert")
    with op.batch_alter_table("unmatched_report", schema=None) as batch_op:
        batch_op.drop_index("ux_unmatched_report_key")
    op.drop_table("unmatched_report")
    with op.batch_alter_table("invoice", schema=None) as batch_op:
        batch_op.drop_column("preview_message_id")
        batch_op.drop_column("settle_after")
        batch_op.drop_column("flag_reason")
