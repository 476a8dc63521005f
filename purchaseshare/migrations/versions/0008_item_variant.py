"""an item's variant line (size, colour) as the generic reader found it (issue 12, point 4)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 14:30:00

Private like every parsed field: shown to the owner under the item's name, never on a public
page (the public view is built from its own allow-list, which does not name it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (a batch table on SQLite would lose 0003's triggers).
    op.add_column('purchase_item', sa.Column('variant', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('purchase_item', 'variant')
