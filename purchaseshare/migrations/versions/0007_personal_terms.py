"""each purchase's own personal values, kept private to redact its public text (issue 11, point 4)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

`purchase.personal_terms` holds a JSON list of the values the purchase's email states about its
buyer (name, address lines, phone, card digits, order numbers). Existing purchases get theirs
from their stored email, read again here; a purchase whose email was purged keeps NULL (its public
text is still redacted by the generic patterns and its order number).
"""

from __future__ import annotations

import json
import logging

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)
BATCH = 200


def upgrade() -> None:
    # Plain ALTER TABLE on both databases: a batch (copy-and-move) table on SQLite would lose the
    # page-cache triggers of migration 0003.
    op.add_column('purchase', sa.Column('personal_terms', sa.Text(), nullable=True))
    _backfill(op.get_bind())


def _backfill(bind) -> None:
    from parsers.personal import personal_terms
    from parsers.unwrap import unwrap

    purchase = sa.table('purchase', sa.column('id', sa.Integer), sa.column('source_raw_id', sa.Integer),
                        sa.column('order_number', sa.String), sa.column('personal_terms', sa.Text))
    raw_email = sa.table('raw_email', sa.column('id', sa.Integer), sa.column('raw', sa.LargeBinary))
    last = 0
    while True:  # in batches by id: a large database is never read whole
        rows = bind.execute(sa.select(purchase.c.id, purchase.c.order_number, raw_email.c.raw)
                            .select_from(purchase.join(raw_email, raw_email.c.id == purchase.c.source_raw_id))
                            .where(purchase.c.id > last, raw_email.c.raw.is_not(None))
                            .order_by(purchase.c.id).limit(BATCH)).all()
        if not rows:
            return
        for purchase_id, order_number, raw in rows:
            try:
                terms = personal_terms(unwrap(bytes(raw)), order_number)
            except Exception:  # one unreadable email must not stop the upgrade
                log.exception("personal terms of purchase %s not read", purchase_id)
                continue
            if terms:
                bind.execute(purchase.update().where(purchase.c.id == purchase_id)
                             .values(personal_terms=json.dumps(terms, ensure_ascii=False)))
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_column('purchase', 'personal_terms')  # SQLite >= 3.35 drops a column in place
