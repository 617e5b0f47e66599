"""loan lifecycle read side

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('notifications',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_notifications_loan_id_loan_requests')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_notifications_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notifications_dedupe_key'))
    )
    op.create_index(op.f('ix_notifications_user_id'), 'notifications', ['user_id'], unique=False)
    op.add_column('investments', sa.Column('loss_amount', sa.Numeric(precision=15, scale=2), nullable=True))
    op.add_column('investments', sa.Column('reserve_cover_amount', sa.Numeric(precision=15, scale=2), nullable=True))
    op.add_column('loan_requests', sa.Column('client_key', sa.String(length=200), nullable=True))
    op.add_column('loan_requests', sa.Column('simulation_id', sa.UUID(), nullable=True))
    op.add_column('loan_requests', sa.Column('scoring_details', postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column('loan_requests', sa.Column('funding_deadline', sa.DateTime(timezone=True), nullable=True))
    op.add_column('loan_requests', sa.Column('disbursed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('loan_requests', sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('loan_requests', sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
    op.create_unique_constraint(op.f('uq_loan_requests_borrower_id_client_key'), 'loan_requests', ['borrower_id', 'client_key'])
    op.create_foreign_key(op.f('fk_loan_requests_simulation_id_simulations'), 'loan_requests', 'simulations', ['simulation_id'], ['id'])
    op.add_column('loan_products', sa.Column('funding_window_minutes', sa.Integer(), nullable=True))
    op.create_check_constraint(op.f('ck_loan_products_funding_window_minutes'), 'loan_products',
                               'funding_window_minutes IS NULL OR funding_window_minutes >= 1')
    op.add_column('repayment_schedule', sa.Column('paid_principal', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False))
    op.add_column('repayment_schedule', sa.Column('paid_interest', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False))
    op.add_column('repayment_schedule', sa.Column('late_fee_accrued', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False))
    op.add_column('repayment_schedule', sa.Column('late_fee_paid', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False))


def downgrade() -> None:
    op.drop_constraint(op.f('ck_loan_products_funding_window_minutes'), 'loan_products', type_='check')
    op.drop_column('loan_products', 'funding_window_minutes')
    op.drop_column('repayment_schedule', 'late_fee_paid')
    op.drop_column('repayment_schedule', 'late_fee_accrued')
    op.drop_column('repayment_schedule', 'paid_interest')
    op.drop_column('repayment_schedule', 'paid_principal')
    op.drop_constraint(op.f('fk_loan_requests_simulation_id_simulations'), 'loan_requests', type_='foreignkey')
    op.drop_constraint(op.f('uq_loan_requests_borrower_id_client_key'), 'loan_requests', type_='unique')
    op.drop_column('loan_requests', 'updated_at')
    op.drop_column('loan_requests', 'closed_at')
    op.drop_column('loan_requests', 'disbursed_at')
    op.drop_column('loan_requests', 'funding_deadline')
    op.drop_column('loan_requests', 'scoring_details')
    op.drop_column('loan_requests', 'simulation_id')
    op.drop_column('loan_requests', 'client_key')
    op.drop_column('investments', 'reserve_cover_amount')
    op.drop_column('investments', 'loss_amount')
    op.drop_index(op.f('ix_notifications_user_id'), table_name='notifications')
    op.drop_table('notifications')
