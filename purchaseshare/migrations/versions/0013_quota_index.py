"""the storage quota's sum read from an index (issue 15): a partial index on raw_email (user_id, size)
over the rows whose bytes are still kept

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:00:00

purchaseshare.quota sums `size` over a user's kept emails for every email a worker processes. On
SQLite `size` sits after `raw` in the row, so each row read walked that email's bytes (overflow
pages): the sum cost O(all the user's stored bytes) per email, 30 ms at 2 000 emails and growing.
This index holds exactly the rows and columns the sum reads (same WHERE as the query), so it never
touches the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

KEPT = sa.text("raw_purged_at IS NULL AND raw IS NOT NULL")


def upgrade() -> None:
    op.create_index('ix_raw_email_user_kept', 'raw_email', ['user_id', 'size'],
                    sqlite_where=KEPT, postgresql_where=KEPT)


def downgrade() -> None:
    op.drop_index('ix_raw_email_user_kept', table_name='raw_email')
