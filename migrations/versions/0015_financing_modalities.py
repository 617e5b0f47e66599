"""financing modalities: seasonal plans, award credit (sellers, assets, escrow), programmed
purchase with award (plans, contributions, award events and bids, the plan's trail)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23

A product now says its modality (`loan`, `award_credit`, `programmed_purchase`) and, for the
seasonal (agricultural) plan, the months it is paid in and its grace. Sellers are registered
parties with a wallet; an award credit names its asset and seller, and the borrower's down
payment (with the disbursement's withholding) waits in an escrow account until the payout.
A programmed purchase is a plan of monthly contributions held in the plan's escrow account
until the award; its trail is a hash chain like a loan's.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

APP_ROLE = "crowdlending_app"

OLD_KINDS = "('wallet_available','wallet_reserved','reserve_fund','platform_fees','nominal')"
NEW_KINDS = "('wallet_available','wallet_reserved','reserve_fund','platform_fees','nominal','escrow')"


def _replace_check(name: str, table: str, condition: str) -> None:
    op.drop_constraint(op.f(name), table, type_='check')
    op.create_check_constraint(op.f(name), table, condition)


def upgrade() -> None:
    # -- products ------------------------------------------------------------------------------
    op.add_column('loan_products', sa.Column('modality', sa.String(30), nullable=False, server_default='loan'))
    op.add_column('loan_products', sa.Column('paying_months', postgresql.JSONB(), nullable=True))
    op.add_column('loan_products', sa.Column('grace_months', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('loan_products', sa.Column('min_down_payment_percent', sa.Numeric(7, 3), nullable=False, server_default='0'))
    op.add_column('loan_products', sa.Column('asset_kinds', postgresql.JSONB(), nullable=True))
    op.add_column('loan_products', sa.Column('award_rule', sa.String(20), nullable=True))
    op.add_column('loan_products', sa.Column('award_share_percent', sa.Numeric(7, 3), nullable=True))
    op.add_column('loan_products', sa.Column('cancellation_refund_percent', sa.Numeric(7, 3), nullable=True))
    op.add_column('loan_products', sa.Column('award_credit_product', sa.String(50), nullable=True))
    op.create_check_constraint(op.f('ck_loan_products_modality'), 'loan_products', "modality IN ('loan','award_credit','programmed_purchase')")
    op.create_check_constraint(op.f('ck_loan_products_grace_months'), 'loan_products', 'grace_months >= 0')
    op.create_check_constraint(
        op.f('ck_loan_products_award_rule'), 'loan_products',
        "(modality = 'programmed_purchase') = (award_rule IS NOT NULL)"
        " AND (award_rule IS NULL OR award_rule IN ('share_reached','draw','bid'))",
    )
    _replace_check('ck_loan_products_amortization_method', 'loan_products', "amortization_method IN ('annuity','differentiated','seasonal')")
    op.add_column('simulations', sa.Column('paying_months', postgresql.JSONB(), nullable=True))
    op.add_column('simulations', sa.Column('grace_months', sa.Integer(), nullable=False, server_default='0'))
    _replace_check('ck_simulations_method', 'simulations', "method IN ('annuity','differentiated','seasonal','contributions')")

    # -- sellers ---------------------------------------------------------------------------------
    _replace_check('ck_users_role', 'users', "role IN ('borrower','investor','operator','compliance','seller')")
    _replace_check('ck_wallets_type', 'wallets', "type IN ('investor','borrower','seller')")
    op.create_table(
        'sellers',
        sa.Column('user_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), primary_key=True),
        sa.Column('legal_name', sa.String(200), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
    )

    # -- escrow accounts -------------------------------------------------------------------------
    _replace_check('ck_ledger_accounts_kind', 'ledger_accounts', f"kind IN {NEW_KINDS}")

    # -- plans -----------------------------------------------------------------------------------
    op.create_table(
        'purchase_plans',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('borrower_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=False, index=True),
        sa.Column('product_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('loan_products.id'), nullable=False),
        sa.Column('seller_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=False),
        sa.Column('asset_kind', sa.String(50), nullable=False),
        sa.Column('asset_description', sa.Text(), nullable=False),
        sa.Column('asset_price', sa.Numeric(15, 2), nullable=False),
        sa.Column('monthly_contribution', sa.Numeric(15, 2), nullable=False),
        sa.Column('contribution_months', sa.Integer(), nullable=False),
        sa.Column('loan_term_months', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False, server_default='RUB'),
        sa.Column('status', sa.String(20), nullable=False, server_default='saving'),
        sa.Column('contributed', sa.Numeric(15, 2), nullable=False, server_default='0'),
        sa.Column('late_fees_paid', sa.Numeric(15, 2), nullable=False, server_default='0'),
        sa.Column('refunded', sa.Numeric(15, 2), nullable=True),
        sa.Column('status_reason', sa.Text(), nullable=True),
        sa.Column('award_loan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('loan_requests.id'), nullable=True),
        sa.Column('award_event_id', postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column('workflow_id', sa.String(100), nullable=False, unique=True),
        sa.Column('client_key', sa.String(200), nullable=True),
        sa.Column('simulation_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('simulations.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('saving','awarded','cancelled')", name=op.f('ck_purchase_plans_status')),
        sa.CheckConstraint('asset_price > 0 AND monthly_contribution > 0 AND contributed >= 0', name=op.f('ck_purchase_plans_amounts')),
        sa.CheckConstraint('contribution_months >= 1 AND loan_term_months >= 1', name=op.f('ck_purchase_plans_months')),
        sa.UniqueConstraint('borrower_id', 'client_key', name=op.f('uq_purchase_plans_borrower_id_client_key')),
    )
    op.create_table(
        'plan_contributions',
        sa.Column('plan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('purchase_plans.id'), primary_key=True),
        sa.Column('number', sa.Integer(), primary_key=True),
        sa.Column('due_date', sa.Date(), nullable=False),
        sa.Column('amount', sa.Numeric(15, 2), nullable=False),
        sa.Column('late_fee', sa.Numeric(15, 2), nullable=False, server_default='0'),
        sa.Column('status', sa.String(20), nullable=False, server_default='pending'),
        sa.Column('paid_on', sa.Date(), nullable=True),
        sa.Column('ledger_transaction_id', postgresql.UUID(as_uuid=True), nullable=True),
        sa.CheckConstraint("status IN ('pending','overdue','paid','cancelled')", name=op.f('ck_plan_contributions_status')),
        sa.CheckConstraint('amount > 0 AND late_fee >= 0', name=op.f('ck_plan_contributions_amounts')),
    )
    op.create_table(
        'plan_records',
        sa.Column('id', sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column('plan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('purchase_plans.id'), nullable=False, index=True),
        sa.Column('event_key', sa.String(240), nullable=False),
        sa.Column('actor_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=True),
        sa.Column('actor_role', sa.String(20), nullable=False),
        sa.Column('action', sa.String(80), nullable=False),
        sa.Column('details', postgresql.JSONB(), nullable=False, server_default='{}'),
        sa.Column('prev_hash', sa.String(64), nullable=True),
        sa.Column('record_hash', sa.String(64), nullable=False),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.UniqueConstraint('plan_id', 'event_key', name=op.f('uq_plan_records_plan_id_event_key')),
        sa.UniqueConstraint('plan_id', 'prev_hash', name=op.f('uq_plan_records_plan_id_prev_hash'), postgresql_nulls_not_distinct=True),
    )
    op.execute(f"REVOKE UPDATE, DELETE ON plan_records FROM {APP_ROLE}")
    op.create_table(
        'award_events',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('product_code', sa.String(50), nullable=False),
        sa.Column('period', sa.String(7), nullable=False),
        sa.Column('rule', sa.String(20), nullable=False),
        sa.Column('seed', sa.String(64), nullable=False),
        sa.Column('entries', postgresql.JSONB(), nullable=False),
        sa.Column('winner_plan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('purchase_plans.id'), nullable=True),
        sa.Column('winning_bid', sa.Numeric(15, 2), nullable=True),
        sa.Column('held_by', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.UniqueConstraint('product_code', 'period', name=op.f('uq_award_events_product_code_period')),
        sa.CheckConstraint("rule IN ('draw','bid')", name=op.f('ck_award_events_rule')),
    )
    op.execute(f"REVOKE UPDATE, DELETE ON award_events FROM {APP_ROLE}")
    op.create_table(
        'award_bids',
        sa.Column('plan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('purchase_plans.id'), primary_key=True),
        sa.Column('period', sa.String(7), primary_key=True),
        sa.Column('amount', sa.Numeric(15, 2), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.CheckConstraint('amount > 0', name=op.f('ck_award_bids_amount')),
    )

    _replace_check(
        'ck_outbox_messages_kind', 'outbox_messages',
        "kind IN ('start_loan_workflow','funds_arrived','start_plan_workflow','plan_funds_arrived')",
    )

    # -- award credit on the loan ------------------------------------------------------------------
    op.add_column('loan_requests', sa.Column('seller_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id', name=op.f('fk_loan_requests_seller_id_users')), nullable=True))
    op.add_column('loan_requests', sa.Column('asset_kind', sa.String(50), nullable=True))
    op.add_column('loan_requests', sa.Column('asset_description', sa.Text(), nullable=True))
    op.add_column('loan_requests', sa.Column('asset_price', sa.Numeric(15, 2), nullable=True))
    op.add_column('loan_requests', sa.Column('down_payment', sa.Numeric(15, 2), nullable=True))
    op.add_column('loan_requests', sa.Column('plan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('purchase_plans.id', name=op.f('fk_loan_requests_plan_id_purchase_plans')), nullable=True))
    op.create_check_constraint(
        op.f('ck_loan_requests_asset'), 'loan_requests',
        "(seller_id IS NULL AND asset_price IS NULL AND down_payment IS NULL AND asset_kind IS NULL)"
        " OR (seller_id IS NOT NULL AND asset_kind IS NOT NULL AND asset_description IS NOT NULL"
        " AND down_payment >= 0 AND asset_price = amount + down_payment)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM outbox_messages WHERE kind IN ('start_plan_workflow','plan_funds_arrived')")
    _replace_check('ck_outbox_messages_kind', 'outbox_messages', "kind IN ('start_loan_workflow','funds_arrived')")
    op.drop_constraint(op.f('ck_loan_requests_asset'), 'loan_requests', type_='check')
    for column in ('plan_id', 'down_payment', 'asset_price', 'asset_description', 'asset_kind', 'seller_id'):
        op.drop_column('loan_requests', column)
    for table in ('award_bids', 'award_events', 'plan_records', 'plan_contributions', 'purchase_plans', 'sellers'):
        op.drop_table(table)
    op.execute("DELETE FROM ledger_accounts WHERE kind = 'escrow'")
    _replace_check('ck_ledger_accounts_kind', 'ledger_accounts', f"kind IN {OLD_KINDS}")
    _replace_check('ck_wallets_type', 'wallets', "type IN ('investor','borrower')")
    _replace_check('ck_users_role', 'users', "role IN ('borrower','investor','operator','compliance')")
    _replace_check('ck_simulations_method', 'simulations', "method IN ('annuity','differentiated')")
    op.drop_column('simulations', 'grace_months')
    op.drop_column('simulations', 'paying_months')
    _replace_check('ck_loan_products_amortization_method', 'loan_products', "amortization_method IN ('annuity','differentiated')")
    for name in ('ck_loan_products_award_rule', 'ck_loan_products_grace_months', 'ck_loan_products_modality'):
        op.drop_constraint(op.f(name), 'loan_products', type_='check')
    for column in ('award_credit_product', 'cancellation_refund_percent', 'award_share_percent', 'award_rule',
                   'asset_kinds', 'min_down_payment_percent', 'grace_months', 'paying_months', 'modality'):
        op.drop_column('loan_products', column)
