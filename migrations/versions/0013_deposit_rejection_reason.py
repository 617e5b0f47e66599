"""a rejected deposit says why (as a rejected withdrawal does)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23

The operator who rejects a deposit gives a reason; the depositor and the back office read it.
A new column of an existing table: the app's role already has its row privileges (0012).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('deposits', sa.Column('rejection_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('deposits', 'rejection_reason')
