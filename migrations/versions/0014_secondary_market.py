"""the secondary market: listings, trades, and the product's market terms

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23

An investor lists all or part of a holding's outstanding principal at a price; another buys
it. A trade is a record (append-only: the app's role may not change or remove one); a listing
changes state (open -> sold, cancelled or closed by the loan's own events). A holding keeps
its original amount; what it sold is `sold_principal`, and a bought holding remembers its
trade and when it was acquired.

Auto-invest buys on the market too: a rule says whether it does (`buy_on_market`) and the
highest premium over par it pays; an allocation says whether it was a primary investment or
a market purchase (then its listing and its trade id; its investment is the holding bought,
known once the trade settles).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

APP_ROLE = "crowdlending_app"


def upgrade() -> None:
    op.add_column('loan_products', sa.Column('market_min_price_percent', sa.Numeric(7, 3), nullable=False, server_default='90.00'))
    op.add_column('loan_products', sa.Column('market_max_price_percent', sa.Numeric(7, 3), nullable=False, server_default='110.00'))
    op.add_column('loan_products', sa.Column('market_fee_percent', sa.Numeric(7, 3), nullable=False, server_default='1.000'))
    op.add_column('loan_products', sa.Column('market_min_holding_days', sa.Integer(), nullable=False, server_default='30'))
    op.add_column('investments', sa.Column('sold_principal', sa.Numeric(15, 2), nullable=False, server_default='0'))
    op.add_column('investments', sa.Column('acquired_at', sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f('ck_investments_sold_within_amount'), 'investments', 'sold_principal >= 0 AND sold_principal <= amount')

    op.create_table(
        'market_listings',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('investment_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('investments.id'), nullable=False),
        sa.Column('loan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('loan_requests.id'), nullable=False),
        sa.Column('seller_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=False),
        sa.Column('principal', sa.Numeric(15, 2), nullable=False),
        sa.Column('remaining_principal', sa.Numeric(15, 2), nullable=False),
        sa.Column('price_percent', sa.Numeric(7, 2), nullable=False),
        sa.Column('status', sa.String(20), nullable=False, server_default='open'),
        sa.Column('close_reason', sa.Text(), nullable=True),
        sa.Column('client_key', sa.String(200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False, server_default=sa.text('now()')),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open','sold','cancelled','closed')", name=op.f('ck_market_listings_status')),
        sa.CheckConstraint('principal > 0 AND remaining_principal >= 0 AND remaining_principal <= principal', name=op.f('ck_market_listings_principal')),
        sa.CheckConstraint('price_percent > 0', name=op.f('ck_market_listings_price')),
        sa.UniqueConstraint('seller_id', 'client_key', name=op.f('uq_market_listings_seller_id_client_key')),
    )
    op.create_index('ix_market_listings_loan_id', 'market_listings', ['loan_id'])
    op.create_index('ix_market_listings_seller_id', 'market_listings', ['seller_id'])
    # One open listing per holding.
    op.create_index('uq_market_listings_open_investment', 'market_listings', ['investment_id'], unique=True, postgresql_where=sa.text("status = 'open'"))
    # The market's order: the buyers' page and auto-invest's keyset window.
    op.create_index('ix_market_listings_open_order', 'market_listings', ['created_at', 'id'], postgresql_where=sa.text("status = 'open'"))

    op.create_table(
        'market_trades',
        sa.Column('id', postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column('listing_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('market_listings.id'), nullable=False),
        sa.Column('loan_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('loan_requests.id'), nullable=False),
        sa.Column('seller_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=False),
        sa.Column('buyer_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('users.id'), nullable=False),
        sa.Column('seller_investment_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('investments.id'), nullable=False),
        sa.Column('buyer_investment_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('investments.id'), nullable=False, unique=True),
        sa.Column('principal', sa.Numeric(15, 2), nullable=False),
        sa.Column('price_percent', sa.Numeric(7, 2), nullable=False),
        sa.Column('price', sa.Numeric(15, 2), nullable=False),
        sa.Column('accrued_interest', sa.Numeric(15, 2), nullable=False),
        sa.Column('fee', sa.Numeric(15, 2), nullable=False),
        sa.Column('buyer_pays', sa.Numeric(15, 2), nullable=False),
        sa.Column('seller_gets', sa.Numeric(15, 2), nullable=False),
        sa.Column('traded_at', sa.DateTime(timezone=True), nullable=False),
        # the parts of each installment the buyer bought: its assignment agreement's schedule
        sa.Column('sold_parts', postgresql.JSONB(), nullable=False),
        sa.CheckConstraint('principal > 0 AND price > 0 AND accrued_interest >= 0 AND fee >= 0', name=op.f('ck_market_trades_amounts')),
        sa.CheckConstraint('buyer_pays = price + accrued_interest AND seller_gets = buyer_pays - fee', name=op.f('ck_market_trades_settlement')),
    )
    op.create_index('ix_market_trades_loan_id', 'market_trades', ['loan_id'])
    op.create_index('ix_market_trades_listing_id', 'market_trades', ['listing_id'])
    op.create_index('ix_market_trades_seller_id', 'market_trades', ['seller_id'])
    op.create_index('ix_market_trades_buyer_id', 'market_trades', ['buyer_id'])
    op.execute(f"REVOKE UPDATE, DELETE ON market_trades FROM {APP_ROLE}")

    op.add_column('auto_invest_rules', sa.Column('buy_on_market', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('auto_invest_rules', sa.Column('max_market_premium_percent', sa.Numeric(5, 2), nullable=False, server_default='0'))
    op.create_check_constraint(op.f('ck_auto_invest_rules_market_premium'), 'auto_invest_rules', 'max_market_premium_percent >= 0 AND max_market_premium_percent <= 100')
    op.add_column('auto_invest_allocations', sa.Column('kind', sa.String(10), nullable=False, server_default='primary'))
    op.add_column('auto_invest_allocations', sa.Column('listing_id', postgresql.UUID(as_uuid=True), sa.ForeignKey('market_listings.id', name=op.f('fk_auto_invest_allocations_listing_id_market_listings')), nullable=True))
    op.add_column('auto_invest_allocations', sa.Column('trade_id', postgresql.UUID(as_uuid=True), nullable=True))
    op.create_unique_constraint(op.f('uq_auto_invest_allocations_trade_id'), 'auto_invest_allocations', ['trade_id'])
    op.alter_column('auto_invest_allocations', 'investment_id', nullable=True)
    # Where the last run's window over the open listings ended: the next one goes on from there.
    op.add_column('auto_invest_runs', sa.Column('market_after_created_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('auto_invest_runs', sa.Column('market_after_id', postgresql.UUID(as_uuid=True), nullable=True))
    op.create_check_constraint(
        op.f('ck_auto_invest_allocations_kind'),
        'auto_invest_allocations',
        "(kind = 'primary' AND investment_id IS NOT NULL AND listing_id IS NULL AND trade_id IS NULL)"
        " OR (kind = 'market' AND listing_id IS NOT NULL AND trade_id IS NOT NULL)",
    )


def downgrade() -> None:
    op.execute("DELETE FROM auto_invest_allocations WHERE kind = 'market'")
    op.drop_column('auto_invest_runs', 'market_after_id')
    op.drop_column('auto_invest_runs', 'market_after_created_at')
    op.drop_constraint(op.f('ck_auto_invest_allocations_kind'), 'auto_invest_allocations', type_='check')
    op.alter_column('auto_invest_allocations', 'investment_id', nullable=False)
    op.drop_constraint(op.f('uq_auto_invest_allocations_trade_id'), 'auto_invest_allocations', type_='unique')
    for column in ('trade_id', 'listing_id', 'kind'):
        op.drop_column('auto_invest_allocations', column)
    op.drop_constraint(op.f('ck_auto_invest_rules_market_premium'), 'auto_invest_rules', type_='check')
    op.drop_column('auto_invest_rules', 'max_market_premium_percent')
    op.drop_column('auto_invest_rules', 'buy_on_market')
    op.drop_table('market_trades')
    op.drop_table('market_listings')
    op.drop_constraint(op.f('ck_investments_sold_within_amount'), 'investments', type_='check')
    op.drop_column('investments', 'acquired_at')
    op.drop_column('investments', 'sold_principal')
    for column in ('market_min_holding_days', 'market_fee_percent', 'market_max_price_percent', 'market_min_price_percent'):
        op.drop_column('loan_products', column)
