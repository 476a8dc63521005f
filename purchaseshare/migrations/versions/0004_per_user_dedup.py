"""raw emails de-duplicated per user (issue 11, point 2)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00

Before: sha256 and Message-ID were unique over the whole table, so one user's upload could match
(and be handed) another user's or a quarantined email, and squat a Message-ID before the real
order arrived. After: unique only within a dedup_scope (`user:<id>` for mail a user handed in,
`inbox` for mail the IMAP door stored before attribution), and a Message-ID only together with
the sender, date and recipients (message_key). Existing rows keep their ids and owners:
  - dedup_scope: `user:<id>` for rows handed in by their user (attributed_by upload/cli), else
    `inbox` (IMAP mail, attributed later or not at all);
  - message_key: computed from the stored header block; NULL once the bytes were purged (then
    only the sha256 de-duplicates that row, and a re-delivery links to its purchase as before).
The old keys were global, so the new per-scope keys hold for every existing row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from purchaseshare.attribution import read_headers
from purchaseshare.mailstore import message_key

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

BATCH = 500  # rows read per round trip (only their first 64 KB: the header block)
# SQLite's unique constraints from 0001 have no name: batch mode names them by this convention.
SQLITE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
NEW_UNIQUE = {"uq_raw_email_scope_sha256": ["dedup_scope", "sha256"],
              "uq_raw_email_scope_message_key": ["dedup_scope", "message_key"]}


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.add_column('raw_email', sa.Column('dedup_scope', sa.String(length=40), nullable=True))
    op.add_column('raw_email', sa.Column('message_key', sa.String(length=64), nullable=True))
    op.execute("UPDATE raw_email SET dedup_scope = CASE WHEN user_id IS NOT NULL AND attributed_by IN "
               "('upload', 'cli') THEN 'user:' || CAST(user_id AS VARCHAR(20)) ELSE 'inbox' END")
    _fill_message_keys()
    if sqlite:
        with op.batch_alter_table('raw_email', naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('uq_raw_email_sha256', type_='unique')
            batch_op.drop_constraint('uq_raw_email_message_id', type_='unique')
            batch_op.alter_column('dedup_scope', existing_type=sa.String(length=40), nullable=False)
            for name, columns in NEW_UNIQUE.items():
                batch_op.create_unique_constraint(name, columns)
        return
    op.drop_constraint('raw_email_sha256_key', 'raw_email', type_='unique')  # PostgreSQL's own names
    op.drop_constraint('raw_email_message_id_key', 'raw_email', type_='unique')
    op.alter_column('raw_email', 'dedup_scope', existing_type=sa.String(length=40), nullable=False)
    for name, columns in NEW_UNIQUE.items():
        op.create_unique_constraint(name, 'raw_email', columns)


def _fill_message_keys() -> None:
    """message_key for every row that still has its bytes, a batch at a time by id."""
    bind = op.get_bind()
    table = sa.table('raw_email', sa.column('id', sa.Integer), sa.column('raw', sa.LargeBinary),
                     sa.column('message_key', sa.String))
    head = sa.func.substr(table.c.raw, 1, 65536, type_=sa.LargeBinary)
    last = 0
    while True:
        rows = bind.execute(sa.select(table.c.id, head).where(table.c.id > last, table.c.raw.is_not(None))
                            .order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        keys = [{"row_id": row_id, "key": message_key(read_headers(bytes(raw)))} for row_id, raw in rows]
        keys = [key for key in keys if key["key"] is not None]
        if keys:
            bind.execute(table.update().where(table.c.id == sa.bindparam("row_id"))
                         .values(message_key=sa.bindparam("key")), keys)
        last = rows[-1][0]


def downgrade() -> None:
    """Back to global keys. Fails (and changes nothing) if two owners now hold the same email:
    which of their rows to drop is not a migration's call."""
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table('raw_email') as batch_op:
            for name in NEW_UNIQUE:
                batch_op.drop_constraint(name, type_='unique')
            batch_op.drop_column('message_key')
            batch_op.drop_column('dedup_scope')
            batch_op.create_unique_constraint('uq_raw_email_sha256', ['sha256'])
            batch_op.create_unique_constraint('uq_raw_email_message_id', ['message_id'])
        return
    for name in NEW_UNIQUE:
        op.drop_constraint(name, 'raw_email', type_='unique')
    op.drop_column('raw_email', 'message_key')
    op.drop_column('raw_email', 'dedup_scope')
    op.create_unique_constraint('raw_email_sha256_key', 'raw_email', ['sha256'])
    op.create_unique_constraint('raw_email_message_id_key', 'raw_email', ['message_id'])
