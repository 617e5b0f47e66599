"""Alembic reads the database URL from the settings (or from the caller's config)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from core.db import normalize_database_url
from models.registry import metadata

config = context.config
target_metadata = metadata


def _url() -> str:
    url = config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")
    if not url:
        from core.settings import get_settings

        url = get_settings().migration_database_url  # the tables' owner, not the app's role
    if not url:
        raise RuntimeError("no database URL: set DATABASE_URL")
    return normalize_database_url(url)


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    # Columns that exist only for database-side invariants (see 0002) and that the ORM
    # never reads: autogenerate must not propose dropping them.
    return not (type_ == "column" and name == "created_xid")


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, compare_type=True, include_object=include_object
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
