"""server-side sessions and handle reservations (issue 11, points 5 and 15)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 10:00:00

Sessions lived only in the signed cookie until now: there are no rows to carry over. Old cookies
name no server session, so everyone signs in once more after this upgrade (by design: a copied
old cookie must not be turned into a live server session).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('server_session',
                    sa.Column('id', sa.String(length=64), nullable=False),
                    sa.Column('user_id', sa.Integer(), nullable=False),
                    sa.Column('session_version', sa.Integer(), nullable=False),
                    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('last_seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
                    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('server_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_server_session_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_server_session_expires_at'), ['expires_at'], unique=False)

    op.create_table('handle_reservation',
                    sa.Column('handle', sa.String(length=40), nullable=False),
                    sa.Column('user_id', sa.Integer(), nullable=False),
                    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('handle'))
    with op.batch_alter_table('handle_reservation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handle_reservation_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('handle_reservation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handle_reservation_user_id'))
    op.drop_table('handle_reservation')
    with op.batch_alter_table('server_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_server_session_expires_at'))
        batch_op.drop_index(batch_op.f('ix_server_session_user_id'))
    op.drop_table('server_session')
