"""draft.step: where a conversation stands lives in the draft row, by name

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 07:00:00

Conversations in flight survive: each open draft's step is taken from what the old code
kept, the step name in its payload (`extra.step`), else the old positional conversation
state (0..11) of its chat; the old conversation-state table is then dropped.
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The states of the conversation before 0004, in their positional order.
OLD_STATES = (
    "amount", "currency", "title", "customer", "sender_type", "first_name", "last_name",
    "birth_date", "legal_name", "country", "email", "preview",
)  # fmt: skip
# Renamed or merged steps: choosing the sender type is now part of the customer step.
RENAMED = {"sender_type": "customer"}


def upgrade() -> None:
    with op.batch_alter_table("draft", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("step", sa.String(length=32), nullable=False, server_default="amount")
        )
    connection = op.get_bind()
    states: dict[tuple[int, int], str] = {}
    for key, state in connection.execute(
        sa.text("SELECT key, state FROM conversation_state WHERE name = 'new_invoice'")
    ):
        try:
            chat_id, user_id = json.loads(key)[:2]
            position = json.loads(state)
        except (ValueError, TypeError):
            continue
        if isinstance(position, int) and 0 <= position < len(OLD_STATES):
            states[(int(user_id), int(chat_id))] = OLD_STATES[position]
    drafts = connection.execute(
        sa.text("SELECT id, merchant_id, chat_id, payload FROM draft WHERE state = 'open'")
    ).all()
    for draft_id, merchant_id, chat_id, payload in drafts:
        try:
            data = json.loads(payload or "{}")
        except ValueError:
            data = {}
        old = (data.get("extra") or {}).get("step") or states.get((merchant_id, chat_id))
        step = RENAMED.get(str(old), str(old)) if old else "amount"
        data.pop("editing", None)
        connection.execute(
            sa.text("UPDATE draft SET step = :step, payload = :payload WHERE id = :id"),
            {"step": step, "payload": json.dumps(data, ensure_ascii=False), "id": draft_id},
        )
    op.drop_table("conversation_state")


def downgrade() -> None:
    op.create_table(
        "conversation_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", storage.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "key"),
    )
    with op.batch_alter_table("draft", schema=None) as batch_op:
        batch_op.drop_column("step")
