"""addresses each account logged in from (login limits that spare the owner)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'login_known_addresses',
        sa.Column('email', sa.String(length=320), nullable=False),
        sa.Column('address', sa.String(length=100), nullable=False),
        sa.Column('last_login_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('email', 'address', name=op.f('pk_login_known_addresses')),
    )
    op.create_index(
        'ix_login_known_addresses_last_login_at', 'login_known_addresses', ['last_login_at'], unique=False
    )
    op.create_index(
        'ix_login_attempts_email_address_attempted_at',
        'login_attempts',
        ['email', 'address', 'attempted_at'],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index('ix_login_attempts_email_address_attempted_at', table_name='login_attempts')
    op.drop_index('ix_login_known_addresses_last_login_at', table_name='login_known_addresses')
    op.drop_table('login_known_addresses')
