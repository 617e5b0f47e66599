"""least privilege: the app's role reads and writes rows, changes no table, no trigger, no record

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23

The API and the worker connect as a member of the group role crowdlending_app (make run:
the role `crowdlending`; docker-compose: the same). Migrations run as the tables' owner, who
grants here. The app's role owns nothing, so it cannot ALTER, DROP or disable a trigger;
on the append-only tables (the ledger's postings and transactions, the audit log, the
register of documents, scoring rules, repayment points, operation outcomes) it may only add
and read. Tables created by later migrations get row privileges by default (ALTER DEFAULT
PRIVILEGES below); a later append-only table must revoke UPDATE and DELETE in its own
migration and join APPEND_ONLY in tests/test_least_privilege.py.
"""

from __future__ import annotations

from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

APP_ROLE = "crowdlending_app"
APPEND_ONLY = (
    "ledger_postings",
    "ledger_transactions",
    "audit_log",
    "documents",
    "scoring_rules",
    "borrower_points",
    "operation_outcomes",
)


def upgrade() -> None:
    # The group role is cluster-wide: made here only where nobody made it first (make run,
    # the tests and docker-compose's init script do, so the owner needs no CREATEROLE).
    op.execute(
        f"""
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} NOLOGIN;
            END IF;
        END $$;
        """
    )
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}")
    op.execute(f"REVOKE UPDATE, DELETE ON {', '.join(APPEND_ONLY)} FROM {APP_ROLE}")
    # Which migrations ran is the owner's business: the app only reads it (/health).
    op.execute(f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {APP_ROLE}")


def downgrade() -> None:
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE USAGE, SELECT ON SEQUENCES FROM {APP_ROLE}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE SELECT, INSERT, UPDATE, DELETE ON TABLES FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {APP_ROLE}")
    op.execute(f"REVOKE USAGE ON SCHEMA public FROM {APP_ROLE}")
