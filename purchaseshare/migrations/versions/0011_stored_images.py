"""product images stored by us (issue 13): the stored file of a shared item's image, and of avatars

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 16:30:00

`image_file` names the re-encoded files under the data dir (purchaseshare/images.py),
`image_from` is the digest of the merchant URL they were made from (or last failed from: a
changed URL is fetched again), `image_failed_at` when that fetch failed (the item shows a
placeholder and is not fetched again on every view). Users get `avatar_file` / `avatar_from`
the same way (a failure is `avatar_from` without a file). Indexed: a file is removed once no row
names it.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (a batch table on SQLite would lose 0003's triggers).
    op.add_column('purchase_item', sa.Column('image_file', sa.String(length=32), nullable=True))
    op.add_column('purchase_item', sa.Column('image_from', sa.String(length=32), nullable=True))
    op.add_column('purchase_item', sa.Column('image_failed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_index('ix_purchase_item_image_file', 'purchase_item', ['image_file'])
    op.add_column('user', sa.Column('avatar_file', sa.String(length=32), nullable=True))
    op.add_column('user', sa.Column('avatar_from', sa.String(length=32), nullable=True))
    op.create_index('ix_user_avatar_file', 'user', ['avatar_file'])


def downgrade() -> None:
    op.drop_index('ix_user_avatar_file', table_name='user')
    op.drop_column('user', 'avatar_from')
    op.drop_column('user', 'avatar_file')
    op.drop_index('ix_purchase_item_image_file', table_name='purchase_item')
    op.drop_column('purchase_item', 'image_failed_at')
    op.drop_column('purchase_item', 'image_from')
    op.drop_column('purchase_item', 'image_file')
