"""auto-invest rules and allocations, the 259-FZ yearly totals

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('auto_invest_rules',
    sa.Column('investor_id', sa.UUID(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('max_amount_per_loan', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('min_loan_amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('max_loan_amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('allowed_grades', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('min_rate', sa.Numeric(precision=5, scale=2), nullable=False),
    sa.Column('max_term_months', sa.Integer(), nullable=False),
    sa.Column('reinvest_returns', sa.Boolean(), nullable=False),
    sa.Column('max_portfolio_share_percent', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('max_amount_per_loan > 0', name=op.f('ck_auto_invest_rules_max_amount_positive')),
    sa.CheckConstraint('min_loan_amount <= max_loan_amount', name=op.f('ck_auto_invest_rules_loan_amount_range')),
    sa.CheckConstraint('max_term_months >= 1', name=op.f('ck_auto_invest_rules_term_positive')),
    sa.CheckConstraint('max_portfolio_share_percent IS NULL OR max_portfolio_share_percent BETWEEN 1 AND 100',
                       name=op.f('ck_auto_invest_rules_portfolio_share')),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_auto_invest_rules_investor_id_users')),
    sa.PrimaryKeyConstraint('investor_id', name=op.f('pk_auto_invest_rules'))
    )
    op.create_table('auto_invest_allocations',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_no', sa.BigInteger(), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=False),
    sa.Column('investor_id', sa.UUID(), nullable=False),
    sa.Column('asked', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('allocated', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('investment_id', sa.UUID(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('outcome_detail', sa.Text(), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("outcome IN ('planned','placed','refused','not_allocated')",
                       name=op.f('ck_auto_invest_allocations_outcome')),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_auto_invest_allocations_investor_id_users')),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'],
                            name=op.f('fk_auto_invest_allocations_loan_id_loan_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auto_invest_allocations')),
    sa.UniqueConstraint('investment_id', name=op.f('uq_auto_invest_allocations_investment_id'))
    )
    op.create_index(op.f('ix_auto_invest_allocations_investor_id'), 'auto_invest_allocations', ['investor_id'])
    op.create_index(op.f('ix_auto_invest_allocations_run_no'), 'auto_invest_allocations', ['run_no'])
    op.create_table('investor_year_totals',
    sa.Column('investor_id', sa.UUID(), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('invested', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.CheckConstraint('invested >= 0', name=op.f('ck_investor_year_totals_invested_nonnegative')),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_investor_year_totals_investor_id_users')),
    sa.PrimaryKeyConstraint('investor_id', 'year', name=op.f('pk_investor_year_totals'))
    )
    op.add_column('investments', sa.Column('counted_year', sa.Integer(), nullable=True))
    op.create_table('auto_invest_runs',
    sa.Column('run_no', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('run_key', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('run_no', name=op.f('pk_auto_invest_runs')),
    sa.UniqueConstraint('run_key', name=op.f('uq_auto_invest_runs_run_key'))
    )


def downgrade() -> None:
    op.drop_table('auto_invest_runs')
    op.drop_column('investments', 'counted_year')
    op.drop_table('investor_year_totals')
    op.drop_index(op.f('ix_auto_invest_allocations_run_no'), table_name='auto_invest_allocations')
    op.drop_index(op.f('ix_auto_invest_allocations_investor_id'), table_name='auto_invest_allocations')
    op.drop_table('auto_invest_allocations')
    op.drop_table('auto_invest_rules')
