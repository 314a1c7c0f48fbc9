"""draft.scrubbed: closed drafts keep no personal data

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:00:00

Drafts closed before this revision still hold names, dates of birth and emails: they are
left `scrubbed = false`, and the bot's sweep removes that data in the background.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("draft", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scrubbed", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("draft", schema=None) as batch_op:
        batch_op.drop_column("scrubbed")
