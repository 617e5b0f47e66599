"""foundation schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ledger_transactions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('loan_id', sa.Uuid(), nullable=True),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_transactions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_transactions_idempotency_key'))
    )
    op.create_index(op.f('ix_ledger_transactions_loan_id'), 'ledger_transactions', ['loan_id'], unique=False)
    op.create_table('users',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default='true', nullable=False),
    sa.Column('is_qualified_investor', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('token_version', sa.Integer(), server_default='0', nullable=False),
    sa.CheckConstraint("role IN ('borrower','investor','operator','compliance')", name=op.f('ck_users_role')),
    sa.CheckConstraint('email = lower(email)', name=op.f('ck_users_email_lowercase')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('borrower_profiles',
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('monthly_income', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('monthly_obligations', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('employment_months', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('employment_months >= 0', name=op.f('ck_borrower_profiles_employment_nonnegative')),
    sa.CheckConstraint('monthly_income >= 0', name=op.f('ck_borrower_profiles_income_nonnegative')),
    sa.CheckConstraint('monthly_obligations >= 0', name=op.f('ck_borrower_profiles_obligations_nonnegative')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_borrower_profiles_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_borrower_profiles'))
    )
    op.create_table('loan_products',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('code', sa.String(length=50), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('is_current', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='RUB', nullable=False),
    sa.Column('min_amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('max_amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('min_term_months', sa.Integer(), nullable=False),
    sa.Column('max_term_months', sa.Integer(), nullable=False),
    sa.Column('amortization_method', sa.String(length=20), nullable=False),
    sa.Column('rates_by_grade', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('interest_only_months', sa.Integer(), server_default='0', nullable=False),
    sa.Column('platform_fee_percent', sa.Numeric(precision=7, scale=3), nullable=False),
    sa.Column('reserve_fund_percent', sa.Numeric(precision=7, scale=3), nullable=False),
    sa.Column('funding_window_days', sa.Integer(), nullable=False),
    sa.Column('min_investment', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('max_investor_share_percent', sa.Numeric(precision=7, scale=3), nullable=False),
    sa.Column('late_fee_grace_days', sa.Integer(), nullable=False),
    sa.Column('late_fee_percent_per_day', sa.Numeric(precision=7, scale=3), nullable=False),
    sa.Column('default_after_days_overdue', sa.Integer(), nullable=False),
    sa.Column('requires_manual_approval', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.CheckConstraint("amortization_method IN ('annuity','differentiated')", name=op.f('ck_loan_products_amortization_method')),
    sa.CheckConstraint('default_after_days_overdue >= 1', name=op.f('ck_loan_products_default_days')),
    sa.CheckConstraint('funding_window_days >= 1', name=op.f('ck_loan_products_funding_window')),
    sa.CheckConstraint('interest_only_months >= 0', name=op.f('ck_loan_products_interest_only_months')),
    sa.CheckConstraint('late_fee_grace_days >= 0', name=op.f('ck_loan_products_grace_days')),
    sa.CheckConstraint('late_fee_percent_per_day >= 0', name=op.f('ck_loan_products_late_fee')),
    sa.CheckConstraint('length(currency) = 3', name=op.f('ck_loan_products_currency')),
    sa.CheckConstraint('max_investor_share_percent > 0 AND max_investor_share_percent <= 100', name=op.f('ck_loan_products_max_share')),
    sa.CheckConstraint('min_amount > 0 AND max_amount >= min_amount', name=op.f('ck_loan_products_amount_range')),
    sa.CheckConstraint('min_investment > 0', name=op.f('ck_loan_products_min_investment')),
    sa.CheckConstraint('min_term_months >= 1 AND max_term_months >= min_term_months', name=op.f('ck_loan_products_term_range')),
    sa.CheckConstraint('platform_fee_percent + reserve_fund_percent < 100', name=op.f('ck_loan_products_withholding_below_amount')),
    sa.CheckConstraint('platform_fee_percent >= 0 AND platform_fee_percent < 100', name=op.f('ck_loan_products_platform_fee')),
    sa.CheckConstraint('reserve_fund_percent >= 0 AND reserve_fund_percent < 100', name=op.f('ck_loan_products_reserve_fund')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_loan_products_version_positive')),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_loan_products_created_by_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_products'))
    )
    op.create_index('uq_loan_products_code_version', 'loan_products', ['code', 'version'], unique=True)
    op.create_index('uq_loan_products_current_code', 'loan_products', ['code'], unique=True, postgresql_where=sa.text('is_current'))
    op.create_table('wallets',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='RUB', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('investor','borrower')", name=op.f('ck_wallets_type')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_wallets_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallets')),
    sa.UniqueConstraint('user_id', 'type', name=op.f('uq_wallets_user_id_type'))
    )
    op.create_table('deposits',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('wallet_id', sa.UUID(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('client_key', sa.String(length=200), nullable=True),
    sa.Column('bank_reference', sa.String(length=200), nullable=True),
    sa.Column('decided_by', sa.UUID(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ledger_transaction_id', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending','confirmed','rejected')", name=op.f('ck_deposits_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_deposits_amount_positive')),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_deposits_decided_by_users')),
    sa.ForeignKeyConstraint(['ledger_transaction_id'], ['ledger_transactions.id'], name=op.f('fk_deposits_ledger_transaction_id_ledger_transactions')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_deposits_user_id_users')),
    sa.ForeignKeyConstraint(['wallet_id'], ['wallets.id'], name=op.f('fk_deposits_wallet_id_wallets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deposits')),
    sa.UniqueConstraint('user_id', 'client_key', name=op.f('uq_deposits_user_id_client_key'))
    )
    op.create_index(op.f('ix_deposits_user_id'), 'deposits', ['user_id'], unique=False)
    op.create_table('ledger_accounts',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('code', sa.String(length=120), nullable=False),
    sa.Column('kind', sa.String(length=30), nullable=False),
    sa.Column('wallet_id', sa.UUID(), nullable=True),
    sa.Column('currency', sa.String(length=3), server_default='RUB', nullable=False),
    sa.Column('allow_negative', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('balance', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
    sa.Column('version', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("NOT allow_negative OR kind = 'nominal'", name=op.f('ck_ledger_accounts_only_nominal_negative')),
    sa.CheckConstraint("(wallet_id IS NULL) = (kind NOT IN ('wallet_available','wallet_reserved'))", name=op.f('ck_ledger_accounts_wallet_link')),
    sa.CheckConstraint("kind IN ('wallet_available','wallet_reserved','reserve_fund','platform_fees','nominal')", name=op.f('ck_ledger_accounts_kind')),
    sa.CheckConstraint('allow_negative OR balance >= 0', name=op.f('ck_ledger_accounts_balance_nonnegative')),
    sa.ForeignKeyConstraint(['wallet_id'], ['wallets.id'], name=op.f('fk_ledger_accounts_wallet_id_wallets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_ledger_accounts_code')),
    sa.UniqueConstraint('wallet_id', 'kind', name=op.f('uq_ledger_accounts_wallet_id_kind'))
    )
    op.create_table('loan_requests',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('borrower_id', sa.UUID(), nullable=False),
    sa.Column('product_id', sa.UUID(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='RUB', nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('rate_annual', sa.Numeric(precision=5, scale=2), nullable=True),
    sa.Column('purpose', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=30), server_default='pending', nullable=False),
    sa.Column('funded_amount', sa.Numeric(precision=15, scale=2), server_default='0', nullable=False),
    sa.Column('risk_grade', sa.String(length=1), nullable=True),
    sa.Column('scoring_score', sa.Integer(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('workflow_id', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("risk_grade IS NULL OR risk_grade IN ('A','B','C','D','E')", name=op.f('ck_loan_requests_risk_grade')),
    sa.CheckConstraint("status IN ('pending','scoring','approved','funding','funded','active','repaid','defaulted','rejected')", name=op.f('ck_loan_requests_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_loan_requests_amount_positive')),
    sa.CheckConstraint('funded_amount >= 0 AND funded_amount <= amount', name=op.f('ck_loan_requests_funded_within_amount')),
    sa.CheckConstraint('scoring_score IS NULL OR scoring_score BETWEEN 0 AND 1000', name=op.f('ck_loan_requests_scoring_score')),
    sa.CheckConstraint('term_months >= 1', name=op.f('ck_loan_requests_term_positive')),
    sa.ForeignKeyConstraint(['borrower_id'], ['users.id'], name=op.f('fk_loan_requests_borrower_id_users')),
    sa.ForeignKeyConstraint(['product_id'], ['loan_products.id'], name=op.f('fk_loan_requests_product_id_loan_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loan_requests')),
    sa.UniqueConstraint('workflow_id', name=op.f('uq_loan_requests_workflow_id'))
    )
    op.create_index(op.f('ix_loan_requests_borrower_id'), 'loan_requests', ['borrower_id'], unique=False)
    op.create_index(op.f('ix_loan_requests_status'), 'loan_requests', ['status'], unique=False)
    op.create_table('simulations',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('owner_id', sa.UUID(), nullable=False),
    sa.Column('product_id', sa.UUID(), nullable=True),
    sa.Column('risk_grade', sa.String(length=1), nullable=True),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('rate_annual', sa.Numeric(precision=7, scale=3), nullable=False),
    sa.Column('term_months', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=20), nullable=False),
    sa.Column('interest_only_months', sa.Integer(), server_default='0', nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("method IN ('annuity','differentiated')", name=op.f('ck_simulations_method')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_simulations_amount_positive')),
    sa.CheckConstraint('term_months >= 1', name=op.f('ck_simulations_term_positive')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_simulations_owner_id_users')),
    sa.ForeignKeyConstraint(['product_id'], ['loan_products.id'], name=op.f('fk_simulations_product_id_loan_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_simulations'))
    )
    op.create_index(op.f('ix_simulations_owner_id'), 'simulations', ['owner_id'], unique=False)
    op.create_table('withdrawals',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.UUID(), nullable=False),
    sa.Column('wallet_id', sa.UUID(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('client_key', sa.String(length=200), nullable=True),
    sa.Column('bank_reference', sa.String(length=200), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('decided_by', sa.UUID(), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending','paid','rejected')", name=op.f('ck_withdrawals_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_withdrawals_amount_positive')),
    sa.ForeignKeyConstraint(['decided_by'], ['users.id'], name=op.f('fk_withdrawals_decided_by_users')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_withdrawals_user_id_users')),
    sa.ForeignKeyConstraint(['wallet_id'], ['wallets.id'], name=op.f('fk_withdrawals_wallet_id_wallets')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals')),
    sa.UniqueConstraint('user_id', 'client_key', name=op.f('uq_withdrawals_user_id_client_key'))
    )
    op.create_index(op.f('ix_withdrawals_user_id'), 'withdrawals', ['user_id'], unique=False)
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=True),
    sa.Column('actor_id', sa.UUID(), nullable=True),
    sa.Column('actor_role', sa.String(length=20), nullable=False),
    sa.Column('action', sa.String(length=80), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=True),
    sa.Column('record_hash', sa.String(length=64), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_audit_log_actor_id_users')),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_audit_log_loan_id_loan_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index(op.f('ix_audit_log_loan_id'), 'audit_log', ['loan_id'], unique=False)
    op.create_table('documents',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject_key', sa.String(length=200), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=True),
    sa.Column('owner_id', sa.UUID(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=100), server_default='application/pdf', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_documents_loan_id_loan_requests')),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_documents_owner_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('kind', 'subject_key', name=op.f('uq_documents_kind_subject_key'))
    )
    op.create_index(op.f('ix_documents_loan_id'), 'documents', ['loan_id'], unique=False)
    op.create_table('investments',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('investor_id', sa.UUID(), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status IN ('pending','active','repaid','defaulted','released')", name=op.f('ck_investments_status')),
    sa.CheckConstraint('amount > 0', name=op.f('ck_investments_amount_positive')),
    sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_investments_investor_id_users')),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_investments_loan_id_loan_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_investments'))
    )
    op.create_index(op.f('ix_investments_investor_id'), 'investments', ['investor_id'], unique=False)
    op.create_index(op.f('ix_investments_loan_id'), 'investments', ['loan_id'], unique=False)
    op.create_table('ledger_postings',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('transaction_id', sa.UUID(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('amount', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('balance_after', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('account_version', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_postings_amount_nonzero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_postings_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['transaction_id'], ['ledger_transactions.id'], name=op.f('fk_ledger_postings_transaction_id_ledger_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_postings')),
    sa.UniqueConstraint('account_id', 'account_version', name=op.f('uq_ledger_postings_account_id_account_version'))
    )
    op.create_index(op.f('ix_ledger_postings_transaction_id'), 'ledger_postings', ['transaction_id'], unique=False)
    op.create_table('repayment_schedule',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=False),
    sa.Column('payment_num', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('principal', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('interest', sa.Numeric(precision=15, scale=2), nullable=False),
    sa.Column('status', sa.String(length=20), server_default='pending', nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('pending','paid','overdue','written_off')", name=op.f('ck_repayment_schedule_status')),
    sa.CheckConstraint('principal >= 0 AND interest >= 0', name=op.f('ck_repayment_schedule_amounts_nonnegative')),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_repayment_schedule_loan_id_loan_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_repayment_schedule')),
    sa.UniqueConstraint('loan_id', 'payment_num', name=op.f('uq_repayment_schedule_loan_id_payment_num'))
    )


def downgrade() -> None:
    op.drop_table('repayment_schedule')
    op.drop_index(op.f('ix_ledger_postings_transaction_id'), table_name='ledger_postings')
    op.drop_table('ledger_postings')
    op.drop_index(op.f('ix_investments_loan_id'), table_name='investments')
    op.drop_index(op.f('ix_investments_investor_id'), table_name='investments')
    op.drop_table('investments')
    op.drop_index(op.f('ix_documents_loan_id'), table_name='documents')
    op.drop_table('documents')
    op.drop_index(op.f('ix_audit_log_loan_id'), table_name='audit_log')
    op.drop_table('audit_log')
    op.drop_index(op.f('ix_withdrawals_user_id'), table_name='withdrawals')
    op.drop_table('withdrawals')
    op.drop_index(op.f('ix_simulations_owner_id'), table_name='simulations')
    op.drop_table('simulations')
    op.drop_index(op.f('ix_loan_requests_status'), table_name='loan_requests')
    op.drop_index(op.f('ix_loan_requests_borrower_id'), table_name='loan_requests')
    op.drop_table('loan_requests')
    op.drop_table('ledger_accounts')
    op.drop_index(op.f('ix_deposits_user_id'), table_name='deposits')
    op.drop_table('deposits')
    op.drop_table('wallets')
    op.drop_index('uq_loan_products_current_code', table_name='loan_products', postgresql_where=sa.text('is_current'))
    op.drop_index('uq_loan_products_code_version', table_name='loan_products')
    op.drop_table('loan_products')
    op.drop_table('borrower_profiles')
    op.drop_table('users')
    op.drop_index(op.f('ix_ledger_transactions_loan_id'), table_name='ledger_transactions')
    op.drop_table('ledger_transactions')
