"""Least privilege in PostgreSQL: the API and the worker connect as a member of the app's group
role, which reads and writes rows and nothing more. It cannot change a table or a trigger,
cannot edit or delete the records the ledger triggers guard, and no connection is trusted
without a password."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors
from sqlalchemy.engine import make_url

from core.db import normalize_database_url
from runner.postgres import APP_GROUP_ROLE

# The records: added and read, never changed (the triggers refuse it too, for the owner).
APPEND_ONLY = {
    "ledger_postings",
    "ledger_transactions",
    "audit_log",
    "documents",
    "scoring_rules",
    "borrower_points",
    "operation_outcomes",
    "market_trades",
    # a plan's trail and the award events held (financing modalities)
    "plan_records",
    "award_events",
}
# Only the owner's: which migrations ran.
OWNER_ONLY_WRITES = {"alembic_version"}


def _libpq(url: str) -> str:
    return make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def as_app(app_database_url):
    with psycopg.connect(_libpq(app_database_url), autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE ledger_postings DISABLE TRIGGER ALL",
        "ALTER TABLE ledger_postings DISABLE TRIGGER trg_ledger_postings_apply",
        "DROP TRIGGER trg_audit_log_append_only ON audit_log",
        "ALTER TABLE ledger_accounts DISABLE TRIGGER trg_ledger_accounts_guard",
        "SET session_replication_role = replica",
        "CREATE OR REPLACE FUNCTION refuse_change_of_record() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NEW; END $$",
        "DROP TABLE ledger_postings",
        "CREATE TABLE smuggled (id int)",
        "TRUNCATE ledger_postings",
        "UPDATE ledger_postings SET amount = amount",
        "DELETE FROM ledger_transactions",
        "UPDATE audit_log SET record_hash = record_hash",
        "DELETE FROM documents",
        "DELETE FROM operation_outcomes",
        "UPDATE alembic_version SET version_num = version_num",
        "CREATE ROLE smuggled SUPERUSER",
    ],
)
def test_the_app_role_cannot(as_app, statement):
    with pytest.raises(errors.InsufficientPrivilege):
        as_app.execute(statement)


def test_the_app_role_owns_nothing_and_is_no_superuser(as_app):
    role = as_app.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert role == (False, False, False, False)
    owned = as_app.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND pg_has_role(current_user, c.relowner, 'USAGE')"
    ).fetchone()
    assert owned == (0,)


def test_every_table_grants_the_app_exactly_what_it_needs(as_app):
    """A new table gets row privileges by default; a new record table must be added above
    (and revoke UPDATE and DELETE in its migration), or this fails."""
    tables = [row[0] for row in as_app.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert APPEND_ONLY | OWNER_ONLY_WRITES <= set(tables)
    wrong = {}
    for table in tables:
        granted = {
            privilege
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
            if as_app.execute("SELECT has_table_privilege(%s, %s, %s)", (APP_GROUP_ROLE, table, privilege)).fetchone()[
                0
            ]
        }
        if table in OWNER_ONLY_WRITES:
            expected = {"SELECT"}
        elif table in APPEND_ONLY:
            expected = {"SELECT", "INSERT"}
        else:
            expected = {"SELECT", "INSERT", "UPDATE", "DELETE"}
        if granted != expected:
            wrong[table] = sorted(granted)
    assert wrong == {}


def test_no_connection_is_trusted_without_a_password(database_url):
    url = make_url(normalize_database_url(database_url))
    no_password = f"postgresql://{url.username}@{url.host}:{url.port}/{url.database}"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(no_password, connect_timeout=5).close()
