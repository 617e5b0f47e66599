"""operation outcomes (exactly-once money operations), the outbox of messages to Temporal,
investments sent to their loans

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'operation_outcomes',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('loan_id', sa.UUID(), nullable=False),
        sa.Column('operation', sa.String(length=40), nullable=False),
        sa.Column('result', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('refusal', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.CheckConstraint('(result IS NULL) <> (refusal IS NULL)',
                           name=op.f('ck_operation_outcomes_result_or_refusal')),
        sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'],
                                name=op.f('fk_operation_outcomes_loan_id_loan_requests')),
        sa.PrimaryKeyConstraint('key', name=op.f('pk_operation_outcomes')),
    )
    op.create_index('ix_operation_outcomes_loan_id', 'operation_outcomes', ['loan_id'])
    # An outcome is history: never edited, never deleted (a retry must always find it).
    op.execute("""
        CREATE FUNCTION operation_outcomes_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'operation outcomes are immutable';
        END $$;
        CREATE TRIGGER operation_outcomes_immutable BEFORE UPDATE OR DELETE ON operation_outcomes
            FOR EACH ROW EXECUTE FUNCTION operation_outcomes_immutable();
    """)

    op.create_table(
        'outbox_messages',
        sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('workflow_id', sa.String(length=200), nullable=False),
        sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("kind IN ('start_loan_workflow','funds_arrived')", name=op.f('ck_outbox_messages_kind')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_messages')),
    )
    op.create_index('ix_outbox_messages_undelivered', 'outbox_messages', ['next_attempt_at'],
                    postgresql_where=sa.text('delivered_at IS NULL'))

    op.create_table(
        'sent_investments',
        sa.Column('investment_id', sa.UUID(), nullable=False),
        sa.Column('loan_id', sa.UUID(), nullable=False),
        sa.Column('investor_id', sa.UUID(), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
        sa.ForeignKeyConstraint(['loan_id'], ['loan_requests.id'], name=op.f('fk_sent_investments_loan_id_loan_requests')),
        sa.ForeignKeyConstraint(['investor_id'], ['users.id'], name=op.f('fk_sent_investments_investor_id_users')),
        sa.PrimaryKeyConstraint('investment_id', name=op.f('pk_sent_investments')),
    )


def downgrade() -> None:
    op.drop_table('sent_investments')
    op.drop_table('outbox_messages')
    op.execute("DROP TABLE operation_outcomes; DROP FUNCTION operation_outcomes_immutable();")
