"""each investment's part of each installment (agreed and received); rates to four decimals

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'investment_installments',
        sa.Column('investment_id', sa.UUID(), nullable=False),
        sa.Column('payment_num', sa.Integer(), nullable=False),
        sa.Column('loan_id', sa.UUID(), nullable=False),
        sa.Column('principal', sa.Numeric(precision=15, scale=2), nullable=False),
        sa.Column('interest', sa.Numeric(precision=15, scale=2), nullable=False),
        sa.Column('received_principal', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
        sa.Column('received_interest', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
        sa.Column('received_fee', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
        sa.CheckConstraint('principal >= 0 AND interest >= 0',
                           name=op.f('ck_investment_installments_agreed_nonnegative')),
        sa.CheckConstraint(
            'received_principal >= 0 AND received_principal <= principal '
            'AND received_interest >= 0 AND received_interest <= interest AND received_fee >= 0',
            name=op.f('ck_investment_installments_received_within_agreed')),
        sa.ForeignKeyConstraint(['investment_id'], ['investments.id'],
                                name=op.f('fk_investment_installments_investment_id_investments')),
        sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'],
                                name=op.f('fk_investment_installments_loan_id_loan_requests')),
        sa.PrimaryKeyConstraint('investment_id', 'payment_num', name=op.f('pk_investment_installments')),
    )
    op.create_index(op.f('ix_investment_installments_loan_id'), 'investment_installments', ['loan_id'])
    for table, column in (('loan_requests', 'rate_annual'), ('simulations', 'rate_annual'),
                          ('auto_invest_rules', 'min_rate')):
        op.alter_column(table, column, type_=sa.Numeric(precision=8, scale=4))


def downgrade() -> None:
    op.alter_column('auto_invest_rules', 'min_rate', type_=sa.Numeric(precision=5, scale=2))
    op.alter_column('simulations', 'rate_annual', type_=sa.Numeric(precision=7, scale=3))
    op.alter_column('loan_requests', 'rate_annual', type_=sa.Numeric(precision=5, scale=2))
    op.drop_index(op.f('ix_investment_installments_loan_id'), table_name='investment_installments')
    op.drop_table('investment_installments')
