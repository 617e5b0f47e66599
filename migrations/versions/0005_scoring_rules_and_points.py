"""scoring rules as data, on-time payment points, the products' debt-to-income cap

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scoring_rules',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('rules', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_by', sa.UUID(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_scoring_rules_created_by_users')),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_scoring_rules'))
    )
    op.create_table('borrower_points',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('borrower_id', sa.UUID(), nullable=False),
    sa.Column('loan_id', sa.UUID(), nullable=False),
    sa.Column('event_key', sa.String(length=200), nullable=False),
    sa.Column('event', sa.String(length=30), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('rules_version', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("event IN ('on_time_installment','late_installment','loan_repaid','loan_defaulted')",
                       name=op.f('ck_borrower_points_event')),
    sa.ForeignKeyConstraint(['borrower_id'], ['users.id'], name=op.f('fk_borrower_points_borrower_id_users')),
    sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_borrower_points_loan_id_loan_requests')),
    sa.ForeignKeyConstraint(['rules_version'], ['scoring_rules.version'],
                            name=op.f('fk_borrower_points_rules_version_scoring_rules')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_borrower_points')),
    sa.UniqueConstraint('event_key', name=op.f('uq_borrower_points_event_key'))
    )
    op.create_index(op.f('ix_borrower_points_borrower_id'), 'borrower_points', ['borrower_id'], unique=False)
    op.add_column('loan_requests', sa.Column('scoring_rules_version', sa.Integer(), nullable=True))
    op.create_foreign_key(op.f('fk_loan_requests_scoring_rules_version_scoring_rules'), 'loan_requests',
                          'scoring_rules', ['scoring_rules_version'], ['version'])
    op.add_column('loan_products', sa.Column('max_debt_to_income_percent', sa.Numeric(precision=7, scale=3),
                                             server_default='50', nullable=False))
    # A version of the rules and a repayment event's points are records: never edited.
    for table in ("scoring_rules", "borrower_points"):
        op.execute(
            f"""
            CREATE TRIGGER trg_{table}_append_only
                BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION refuse_change_of_record();
            CREATE TRIGGER trg_{table}_no_truncate
                BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_record();
            """
        )


def downgrade() -> None:
    op.drop_column('loan_products', 'max_debt_to_income_percent')
    op.drop_constraint(op.f('fk_loan_requests_scoring_rules_version_scoring_rules'), 'loan_requests',
                       type_='foreignkey')
    op.drop_column('loan_requests', 'scoring_rules_version')
    op.drop_index(op.f('ix_borrower_points_borrower_id'), table_name='borrower_points')
    op.drop_table('borrower_points')
    op.drop_table('scoring_rules')
