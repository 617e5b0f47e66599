"""Ledger invariants enforced by the database itself

- a posting updates its account's balance (and nothing else may): balance_after and the
  account's version are set under the account's row lock;
- accounts that must not go negative cannot (CHECK on ledger_accounts);
- the postings of a ledger transaction sum to zero, in one currency, at commit, and no
  posting can join a ledger transaction later;
- postings, ledger transactions and the audit log are append-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY_TABLES = ("ledger_postings", "ledger_transactions", "audit_log")


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            new_balance numeric;
            new_version bigint;
        BEGIN
            UPDATE ledger_accounts
               SET balance = balance + NEW.amount, version = version + 1
             WHERE id = NEW.account_id
         RETURNING balance, version INTO new_balance, new_version;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'ledger account % does not exist', NEW.account_id
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            NEW.balance_after := new_balance;
            NEW.account_version := new_version;
            RETURN NEW;
        END $$;

        CREATE TRIGGER trg_ledger_postings_apply
            BEFORE INSERT ON ledger_postings
            FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting();
        """
    )
    # Balances move only through postings: a direct UPDATE (trigger depth 1) is refused;
    # the UPDATE issued by ledger_apply_posting runs at depth 2.
    op.execute(
        """
        CREATE FUNCTION ledger_guard_account() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.balance <> 0 OR NEW.version <> 0 THEN
                    RAISE EXCEPTION 'a ledger account opens at zero; money arrives by postings'
                        USING ERRCODE = 'check_violation';
                END IF;
                RETURN NEW;
            ELSIF TG_OP = 'DELETE' THEN
                RAISE EXCEPTION 'ledger accounts are never deleted' USING ERRCODE = 'restrict_violation';
            END IF;
            IF pg_trigger_depth() < 2 AND (NEW.balance IS DISTINCT FROM OLD.balance
                    OR NEW.version IS DISTINCT FROM OLD.version
                    OR NEW.kind IS DISTINCT FROM OLD.kind
                    OR NEW.currency IS DISTINCT FROM OLD.currency
                    OR NEW.allow_negative IS DISTINCT FROM OLD.allow_negative) THEN
                RAISE EXCEPTION 'ledger account balances change only through postings'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$;

        CREATE TRIGGER trg_ledger_accounts_guard
            BEFORE INSERT OR UPDATE OR DELETE ON ledger_accounts
            FOR EACH ROW EXECUTE FUNCTION ledger_guard_account();
        """
    )
    # Balanced at commit (deferred), once per ledger transaction. Postings may only join a
    # ledger transaction inside the database transaction that created it (created_xid), so
    # the check at that commit sees every posting the ledger transaction will ever have.
    op.execute(
        """
        ALTER TABLE ledger_transactions
            ADD COLUMN created_xid xid8 NOT NULL DEFAULT pg_current_xact_id();

        CREATE FUNCTION ledger_posting_joins_open_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM ledger_transactions
                            WHERE id = NEW.transaction_id AND created_xid = pg_current_xact_id()) THEN
                RAISE EXCEPTION 'postings can only be added to a ledger transaction while it is being created'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$;

        CREATE TRIGGER trg_ledger_postings_open_transaction
            BEFORE INSERT ON ledger_postings
            FOR EACH ROW EXECUTE FUNCTION ledger_posting_joins_open_transaction();

        CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            total numeric;
            legs integer;
            currencies integer;
        BEGIN
            SELECT coalesce(sum(p.amount), 0), count(*), count(DISTINCT a.currency)
              INTO total, legs, currencies
              FROM ledger_postings p JOIN ledger_accounts a ON a.id = p.account_id
             WHERE p.transaction_id = NEW.id;
            IF total <> 0 THEN
                RAISE EXCEPTION 'ledger transaction % does not balance: its postings sum to %', NEW.id, total
                    USING ERRCODE = 'check_violation';
            END IF;
            IF legs < 2 THEN
                RAISE EXCEPTION 'ledger transaction % has % posting(s); at least two are needed', NEW.id, legs
                    USING ERRCODE = 'check_violation';
            END IF;
            IF currencies <> 1 THEN
                RAISE EXCEPTION 'ledger transaction % mixes currencies', NEW.id
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$;

        CREATE CONSTRAINT TRIGGER trg_ledger_transactions_balanced
            AFTER INSERT ON ledger_transactions
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced();
        """
    )
    op.execute(
        """
        CREATE FUNCTION refuse_change_of_record() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only: % refused (corrections are new records)', TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$;
        """
    )
    for table in APPEND_ONLY_TABLES:
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
    for table in APPEND_ONLY_TABLES:
        op.execute(f"DROP TRIGGER trg_{table}_no_truncate ON {table}")
        op.execute(f"DROP TRIGGER trg_{table}_append_only ON {table}")
    op.execute("DROP FUNCTION refuse_change_of_record()")
    op.execute("DROP TRIGGER trg_ledger_transactions_balanced ON ledger_transactions")
    op.execute("DROP FUNCTION ledger_check_balanced()")
    op.execute("DROP TRIGGER trg_ledger_postings_open_transaction ON ledger_postings")
    op.execute("DROP FUNCTION ledger_posting_joins_open_transaction()")
    op.execute("ALTER TABLE ledger_transactions DROP COLUMN created_xid")
    op.execute("DROP TRIGGER trg_ledger_accounts_guard ON ledger_accounts")
    op.execute("DROP FUNCTION ledger_guard_account()")
    op.execute("DROP TRIGGER trg_ledger_postings_apply ON ledger_postings")
    op.execute("DROP FUNCTION ledger_apply_posting()")
