"""per-address request counters (sign-ups, anonymous POSTs), fixed windows

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'request_counts',
        sa.Column('scope', sa.String(length=40), nullable=False),
        sa.Column('address', sa.String(length=100), nullable=False),
        sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.CheckConstraint('count >= 1', name=op.f('ck_request_counts_count_positive')),
        sa.CheckConstraint('window_end > window_start', name=op.f('ck_request_counts_window_ordered')),
        sa.PrimaryKeyConstraint('scope', 'address', 'window_start', name=op.f('pk_request_counts')),
    )
    op.create_index('ix_request_counts_window_end', 'request_counts', ['window_end'])


def downgrade() -> None:
    op.drop_index('ix_request_counts_window_end', table_name='request_counts')
    op.drop_table('request_counts')
