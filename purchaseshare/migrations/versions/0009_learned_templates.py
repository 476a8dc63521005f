"""templates learned from owners' corrections (issue 14): layouts, never values

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:40:00

`template` holds a sender domain, a layout signature (hashes) and anchors (labels and offsets);
`template_teacher` who taught or confirmed it. Both go with the account (export and deletion).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'template',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('sender_domain', sa.String(length=253), nullable=False),
        sa.Column('signature', sa.Text(), nullable=False),
        sa.Column('anchors', sa.Text(), nullable=False),
        sa.Column('hits', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('misses', sa.Integer(), nullable=False, server_default='0'),
        sa.Column('retired', sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index('ix_template_sender_domain', 'template', ['sender_domain'])
    op.create_table(
        'template_teacher',
        sa.Column('template_id', sa.Integer(), sa.ForeignKey('template.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('user.id', ondelete='CASCADE'), primary_key=True),
        sa.Column('taught_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index('ix_template_teacher_user_id', 'template_teacher', ['user_id'])


def downgrade() -> None:
    op.drop_index('ix_template_teacher_user_id', 'template_teacher')
    op.drop_table('template_teacher')
    op.drop_index('ix_template_sender_domain', 'template')
    op.drop_table('template')
