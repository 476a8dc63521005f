"""per-user storage accounting and limits (issue 11, points 6 and 13)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

raw_email.confirm_url: Google's forwarding-confirmation link, read once when the email is processed,
so /settings/forwarding no longer parses a stored message on every view. Existing confirmation
mails (small ones only: Google's are a few kB) get their link here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_SMALL = 1024 * 1024  # the same bound as the worker's (purchaseshare.gmail.MAX_SIZE)


def upgrade() -> None:
    op.add_column("raw_email", sa.Column("confirm_url", sa.String(length=500), nullable=True))
    from purchaseshare.gmail import SENDER, confirmation_url

    bind = op.get_bind()
    table = sa.table("raw_email", sa.column("id", sa.Integer), sa.column("raw", sa.LargeBinary),
                     sa.column("from_addr", sa.String), sa.column("size", sa.Integer),
                     sa.column("confirm_url", sa.String))
    ids = bind.execute(sa.select(table.c.id).where(sa.func.lower(table.c.from_addr) == SENDER,
                                                   table.c.size <= _SMALL, table.c.raw.is_not(None))).scalars().all()
    for raw_id in ids:  # one at a time: never all the bytes at once
        raw = bind.execute(sa.select(table.c.raw).where(table.c.id == raw_id)).scalar_one()
        url = confirmation_url(bytes(raw)) if raw is not None else None
        if url:
            bind.execute(sa.update(table).where(table.c.id == raw_id).values(confirm_url=url))


def downgrade() -> None:
    op.drop_column("raw_email", "confirm_url")
