"""each purchase's own personal values, kept private to redact its public text (issue 11, point 4)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00
"""

from __future__ import annotations

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder, filled in by the change that needs it


def downgrade() -> None:
    pass
