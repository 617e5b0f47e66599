"""audit chain and the register of documents

The audit log becomes a hash chain per loan: records are keyed by business facts (a retried
activity finds its record), a record has one successor at most (no forks), and every record
belongs to a loan. The register of documents becomes append-only like the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('audit_log', sa.Column('event_key', sa.String(length=240), nullable=False))
    op.alter_column('audit_log', 'loan_id', existing_type=sa.UUID(), nullable=False)
    op.create_unique_constraint(op.f('uq_audit_log_loan_id_event_key'), 'audit_log', ['loan_id', 'event_key'])
    op.create_unique_constraint(op.f('uq_audit_log_loan_id_prev_hash'), 'audit_log', ['loan_id', 'prev_hash'],
                                postgresql_nulls_not_distinct=True)
    op.execute(
        """
        CREATE TRIGGER trg_documents_append_only
            BEFORE UPDATE OR DELETE ON documents
            FOR EACH ROW EXECUTE FUNCTION refuse_change_of_record();
        CREATE TRIGGER trg_documents_no_truncate
            BEFORE TRUNCATE ON documents
            FOR EACH STATEMENT EXECUTE FUNCTION refuse_change_of_record();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER trg_documents_no_truncate ON documents")
    op.execute("DROP TRIGGER trg_documents_append_only ON documents")
    op.drop_constraint(op.f('uq_audit_log_loan_id_prev_hash'), 'audit_log', type_='unique')
    op.drop_constraint(op.f('uq_audit_log_loan_id_event_key'), 'audit_log', type_='unique')
    op.alter_column('audit_log', 'loan_id', existing_type=sa.UUID(), nullable=True)
    op.drop_column('audit_log', 'event_key')
