"""ledger_post: a posting in one round trip

Posting a ledger transaction took eight round trips from Python (a savepoint, the idle limit,
the loan's lock, the accounts' locks, the key's lookup, two inserts, the savepoint's release):
the ledger ran at a fifth of pgbench's TPC-B-like rate on the same server. ledger_post does
the same steps in the same lock order inside the database, in one call. Every invariant stays
where it was (the triggers of 0002, the CHECK on balances, the unique key): the function only
saves the trips. The refusals a caller may recover from (not enough money, an unknown account,
two currencies, a key used for other content, a loan that does not exist) come back as an
outcome, not as an error, before anything is written, so the caller's transaction goes on as
it did after the savepoint: under the accounts' locks whether the legs fit is known before the
inserts (the CHECK on balances stays the guarantee), and a key posted at the same moment by a
transaction on other accounts is settled by the unique key (ON CONFLICT DO NOTHING).

The accounts are found by index: the lock query of ledger/postings.py (an OR of the accounts
and their wallets' siblings) scanned every account of the ledger, once per posting.

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION ledger_post(
            p_transaction_id uuid,
            p_key text,
            p_digest text,
            p_kind text,
            p_loan_id uuid,
            p_description text,
            p_details jsonb,
            p_accounts bigint[],
            p_amounts numeric[],
            p_idle_limit_ms text
        ) RETURNS jsonb LANGUAGE plpgsql AS $$
        DECLARE
            earlier record;
            found_accounts integer;
            currencies integer;
            the_currency text;
            codes jsonb;
            short boolean;
        BEGIN
            IF p_idle_limit_ms IS NOT NULL THEN
                -- (core/db.py, limit_idle_in_transaction: for this transaction only)
                PERFORM set_config('idle_in_transaction_session_timeout', p_idle_limit_ms, true);
            END IF;
            -- The lock order (ledger/postings.py): 1. the loan's row; 2. the accounts and their
            -- wallets' sibling accounts, ascending id.
            IF p_loan_id IS NOT NULL THEN
                PERFORM 1 FROM loan_requests WHERE id = p_loan_id FOR NO KEY UPDATE;
                IF NOT FOUND THEN
                    RETURN jsonb_build_object('outcome', 'no_loan');
                END IF;
            END IF;
            -- (by index: the accounts, and their wallets' accounts through the wallet's index)
            PERFORM 1 FROM ledger_accounts
              WHERE id IN (SELECT unnest(p_accounts)
                           UNION
                           SELECT sibling.id
                             FROM ledger_accounts touched
                             JOIN ledger_accounts sibling ON sibling.wallet_id = touched.wallet_id
                            WHERE touched.id = ANY(p_accounts))
              ORDER BY id
                FOR UPDATE;
            -- Under the locks, the balances cannot move: whether the legs fit is known before
            -- anything is written. Legs apply in (account, amount) order, so an account's
            -- lowest point is its balance plus its negative legs. (The CHECK on balances stays
            -- the guarantee; this only turns a shortage into an answer instead of an error.)
            SELECT count(*), count(DISTINCT a.currency), min(a.currency),
                   jsonb_object_agg(a.id::text, a.code),
                   coalesce(bool_or(NOT a.allow_negative AND a.balance + leg.taken < 0), false)
              INTO found_accounts, currencies, the_currency, codes, short
              FROM (SELECT account_id, coalesce(sum(amount) FILTER (WHERE amount < 0), 0) AS taken
                      FROM unnest(p_accounts, p_amounts) AS l(account_id, amount)
                     GROUP BY account_id) AS leg
              JOIN ledger_accounts a ON a.id = leg.account_id;
            IF found_accounts < cardinality(ARRAY(SELECT DISTINCT unnest(p_accounts))) THEN
                RETURN jsonb_build_object(
                    'outcome', 'unknown_accounts',
                    'accounts', (SELECT jsonb_agg(DISTINCT a ORDER BY a) FROM unnest(p_accounts) AS a
                                  WHERE NOT EXISTS (SELECT 1 FROM ledger_accounts WHERE id = a)));
            END IF;
            IF currencies <> 1 THEN
                RETURN jsonb_build_object('outcome', 'currencies');
            END IF;
            -- Under the locks: whoever held them before us may have posted this very key.
            SELECT id, kind, content_hash INTO earlier FROM ledger_transactions WHERE idempotency_key = p_key;
            IF NOT FOUND THEN
                IF short THEN
                    RETURN jsonb_build_object('outcome', 'insufficient');
                END IF;
                -- A transaction that did not share our accounts may post the same key at the same
                -- time: the unique key decides, and the loser reads the winner's (below).
                INSERT INTO ledger_transactions (id, idempotency_key, content_hash, kind, description, loan_id, details)
                VALUES (p_transaction_id, p_key, p_digest, p_kind, p_description, p_loan_id, p_details)
                ON CONFLICT (idempotency_key) DO NOTHING;
                IF FOUND THEN
                    -- Ascending account order, same as the locks.
                    INSERT INTO ledger_postings (transaction_id, account_id, amount, balance_after, account_version)
                    SELECT p_transaction_id, l.account_id, l.amount, 0, 0
                      FROM unnest(p_accounts, p_amounts) AS l(account_id, amount)
                     ORDER BY l.account_id, l.amount;
                    RETURN jsonb_build_object('outcome', 'posted', 'currency', the_currency, 'codes', codes);
                END IF;
                SELECT id, kind, content_hash INTO earlier FROM ledger_transactions WHERE idempotency_key = p_key;
            END IF;
            RETURN jsonb_build_object(
                'outcome', CASE WHEN earlier.content_hash = p_digest THEN 'replayed' ELSE 'conflict' END,
                'id', earlier.id, 'kind', earlier.kind);
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_post(uuid, text, text, text, uuid, text, jsonb, bigint[], numeric[], text)")
