"""ledger_post_many: several postings in one round trip

A unit of work that moves money many times (a batch of transfers) paid one round trip per
posting. ledger_post_many takes a JSON array of postings, the same fields ledger_post takes,
first locks everything they touch in the lock order of ledger/postings.py (the loans' rows,
then every account and its wallet's sibling, ascending id: locking posting by posting would
take accounts out of order across postings), then calls ledger_post for each in turn and
stops at the first refusal. It answers the outcomes of the postings it tried, in order. Every
invariant stays where it was: ledger_post and the triggers of 0002 do the work.

Amounts travel as JSON strings and are cast to numeric: exact, no float on the way.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION ledger_post_many(p_postings jsonb, p_idle_limit_ms text) RETURNS jsonb
        LANGUAGE plpgsql AS $$
        DECLARE
            posting jsonb;
            outcome jsonb;
            outcomes jsonb := '[]'::jsonb;
        BEGIN
            IF p_idle_limit_ms IS NOT NULL THEN
                -- (core/db.py, limit_idle_in_transaction: for this transaction only)
                PERFORM set_config('idle_in_transaction_session_timeout', p_idle_limit_ms, true);
            END IF;
            -- The lock order: 1. the loans' rows, ascending id.
            PERFORM 1 FROM loan_requests
              WHERE id IN (SELECT (p->>'loan_id')::uuid FROM jsonb_array_elements(p_postings) AS p
                            WHERE p->>'loan_id' IS NOT NULL)
              ORDER BY id
                FOR NO KEY UPDATE;
            -- 2. every account of every posting and its wallet's sibling, ascending id.
            PERFORM 1 FROM ledger_accounts
              WHERE id IN (WITH touched_ids AS (
                               SELECT DISTINCT a::bigint AS id
                                 FROM jsonb_array_elements(p_postings) AS p,
                                      jsonb_array_elements_text(p->'accounts') AS a)
                           SELECT id FROM touched_ids
                           UNION
                           SELECT sibling.id
                             FROM ledger_accounts touched
                             JOIN ledger_accounts sibling ON sibling.wallet_id = touched.wallet_id
                            WHERE touched.id IN (SELECT id FROM touched_ids))
              ORDER BY id
                FOR UPDATE;
            FOR posting IN
                SELECT p FROM jsonb_array_elements(p_postings) WITH ORDINALITY AS e(p, n) ORDER BY n
            LOOP
                outcome := ledger_post(
                    (posting->>'transaction_id')::uuid,
                    posting->>'key',
                    posting->>'digest',
                    posting->>'kind',
                    (posting->>'loan_id')::uuid,
                    posting->>'description',
                    coalesce(posting->'details', '{}'::jsonb),
                    ARRAY(SELECT a::bigint FROM jsonb_array_elements_text(posting->'accounts') WITH ORDINALITY AS x(a, n)
                          ORDER BY n),
                    ARRAY(SELECT a::numeric FROM jsonb_array_elements_text(posting->'amounts') WITH ORDINALITY AS x(a, n)
                          ORDER BY n),
                    NULL);
                outcomes := outcomes || jsonb_build_array(outcome);
                EXIT WHEN outcome->>'outcome' NOT IN ('posted', 'replayed');
            END LOOP;
            RETURN outcomes;
        END $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION ledger_post_many(jsonb, text)")
