"""outgoing mail that cannot be turned against anyone (issue 16)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 16:30:00

outbox_mail gets a delivery state machine (queued -> sending -> sent | failed | uncertain |
bounced), the attempts made, the Message-ID we sent (recorded before DATA; a bounce names it),
the server's last answer, and the message a reply answers (In-Reply-To). A hard bounce of our
verification or reset mail marks the address: user.email_bounced_* for the account's address,
sender_address.bounced_* for a sender address.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (a batch table on SQLite would lose 0003's triggers).
    op.add_column('outbox_mail', sa.Column('state', sa.String(20), nullable=False, server_default='queued'))
    op.add_column('outbox_mail', sa.Column('attempts', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('outbox_mail', sa.Column('message_id', sa.String(998), nullable=True))
    op.add_column('outbox_mail', sa.Column('in_reply_to', sa.String(998), nullable=True))
    op.add_column('outbox_mail', sa.Column('smtp_reply', sa.Text(), nullable=True))
    op.add_column('outbox_mail', sa.Column('sending_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.create_index('ix_outbox_mail_message_id', 'outbox_mail', ['message_id'])
    op.execute("UPDATE outbox_mail SET state = 'sent' WHERE sent_at IS NOT NULL")
    op.add_column('user', sa.Column('email_bounced_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column('user', sa.Column('email_bounce_reason', sa.Text(), nullable=True))
    op.add_column('sender_address', sa.Column('bounced_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.add_column('sender_address', sa.Column('bounce_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('sender_address', 'bounce_reason')
    op.drop_column('sender_address', 'bounced_at')
    op.drop_column('user', 'email_bounce_reason')
    op.drop_column('user', 'email_bounced_at')
    op.drop_index('ix_outbox_mail_message_id', 'outbox_mail')
    for name in ('sending_at', 'smtp_reply', 'in_reply_to', 'message_id', 'attempts', 'state'):
        op.drop_column('outbox_mail', name)
