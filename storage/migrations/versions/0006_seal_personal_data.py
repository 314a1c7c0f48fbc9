"""Seal sender data with DATA_KEY; the customer lookup becomes a keyed HMAC

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00

Each customer's names, date of birth, legal name, country and email move into one sealed
value (AES-256-GCM, storage/sealing.py) and the plaintext columns are dropped; `lookup_key`
(an unkeyed SHA-256 before) is recomputed as an HMAC with the key, so returning customers
are still recognised. Open drafts' personal fields are sealed the same way; closed drafts
lose theirs. On SQLite, secure_delete zeroes the freed plaintext.

The key comes from the bot (DATA_KEY, or the generated data.key), or, from the alembic CLI,
from the DATA_KEY environment variable or the data.key file beside the SQLite database (made
here if there is none, as the bot would).
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

import storage.types
from storage.sealing import (
    Sealer,
    customer_lookup_key,
    generate_key,
    key_file_for,
    key_from_environment,
    write_key_file,
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PLAIN_COLUMNS = ("first_name", "last_name", "date_of_birth", "legal_name", "country_alpha3",
                 "email")  # fmt: skip
DRAFT_PERSONAL = PLAIN_COLUMNS


def _sealer(bind: sa.Connection) -> Sealer:
    key = context.config.attributes.get("data_key")
    if not key:
        url = bind.engine.url.render_as_string(hide_password=True)
        key = key_from_environment(url)
        if not key and bind.dialect.name == "sqlite":
            key = generate_key()
            write_key_file(key_file_for(url), key)
        if not key:
            raise RuntimeError(
                "DATA_KEY is needed to seal the customers' personal data: set it in the "
                "environment (the same value every bot process uses) and run again"
            )
    return Sealer(str(key))


def _text(value: Any) -> str:
    return str(value)  # a date reads back as its ISO text on both SQLite and PostgreSQL


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("PRAGMA secure_delete = ON")
    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("erased_at", storage.types.UTCDateTime(), nullable=True))

    customers = (
        bind.execute(
            sa.text(
                "SELECT id, merchant_id, reference, sender_type, first_name, last_name, "
                "date_of_birth, legal_name, country_alpha3, email FROM customer"
            )
        )
        .mappings()
        .all()
    )
    drafts = bind.execute(sa.text("SELECT id, state, payload FROM draft")).mappings().all()
    needs_key = bool(customers) or any(
        any(json.loads(row["payload"] or "{}").get(name) for name in DRAFT_PERSONAL)
        for row in drafts
    )
    sealer = _sealer(bind) if needs_key else None

    for row in customers:
        assert sealer is not None
        fields = {name: _text(row[name]) for name in PLAIN_COLUMNS if row[name] is not None}
        if row["sender_type"] == "natural":
            parts = [fields.get("first_name", ""), fields.get("last_name", ""),
                     fields.get("date_of_birth", "")]  # fmt: skip
        else:
            parts = [fields.get("legal_name", ""), fields.get("country_alpha3", "")]
        bind.execute(
            sa.text(
                "UPDATE customer SET lookup_key = :key, sealed = :sealed, first_name = NULL, "
                "last_name = NULL, date_of_birth = NULL, legal_name = NULL, "
                "country_alpha3 = NULL, email = NULL WHERE id = :id"
            ),
            {
                "key": customer_lookup_key(sealer, row["merchant_id"], row["sender_type"], parts),
                "sealed": sealer.seal(fields, f"customer:{row['reference']}"),
                "id": row["id"],
            },
        )

    for row in drafts:
        payload = json.loads(row["payload"] or "{}")
        personal = {name: payload.pop(name) for name in DRAFT_PERSONAL if name in payload}
        personal = {name: value for name, value in personal.items() if value is not None}
        if not personal:
            continue
        values: dict[str, Any] = {"id": row["id"]}
        if row["state"] == "open":
            assert sealer is not None
            payload["sealed"] = sealer.seal(personal, f"draft:{row['id']}")
            sql = "UPDATE draft SET payload = :payload WHERE id = :id"
        else:
            sql = "UPDATE draft SET payload = :payload, scrubbed = :yes WHERE id = :id"
            values["yes"] = True
        values["payload"] = json.dumps(payload, ensure_ascii=False)
        bind.execute(sa.text(sql), values)

    with op.batch_alter_table("customer", schema=None) as batch_op:
        for name in PLAIN_COLUMNS:
            batch_op.drop_column(name)


def downgrade() -> None:
    raise NotImplementedError(
        "0006 sealed the personal data and dropped the plaintext columns: restore the "
        "database backup taken before upgrading instead"
    )
