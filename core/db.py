"""The database engine and the unit of work.

One engine per process. Blocking SQLAlchemy code runs in FastAPI's thread pool (sync
dependencies and routes) and in sync Temporal activities, never inside `async def`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker

import models.registry  # noqa: F401 - every table known to the ORM, so foreign keys resolve


def normalize_database_url(url: str) -> str:
    """Accept the libpq spelling (postgresql://) and use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, pool_size: int = 10) -> Engine:
    return create_engine(
        normalize_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # A database that does not answer (a host gone, a network cut) is a 503 in seconds,
        # not a request hanging on the kernel's TCP timeout (unless the URL says otherwise).
        connect_args={} if "connect_timeout=" in url else {"connect_timeout": 5},
    )


# Where a process's sessionmaker keeps its idle-in-transaction limit (sessionmaker(info=...)).
IDLE_LIMIT = "idle_in_transaction_seconds"
DEFAULT_IDLE_LIMIT_SECONDS = 20


def session_factory_for(engine: Engine, idle_in_transaction_seconds: int = DEFAULT_IDLE_LIMIT_SECONDS):
    """The process's sessions; every transaction that takes a money lock is limited (below)."""
    return sessionmaker(bind=engine, expire_on_commit=False, info={IDLE_LIMIT: idle_in_transaction_seconds})


def limit_idle_in_transaction(session: Session) -> None:
    """PostgreSQL ends this transaction's session if it sits idle inside it for the session's
    limit (session_factory_for; 20 s by default): its locks go, its work rolls back. Called before every
    money lock (the loan's row, ledger accounts): a process frozen (SIGSTOP, a paused VM)
    while holding one does not keep a retry elsewhere waiting. Once per transaction; only
    for that transaction (set_config local), so long work elsewhere (a PDF) is not limited."""
    session.connection()  # (begins the transaction if the lock is its first statement)
    transaction = session.get_transaction()
    if session.info.get("idle_limited") is transaction:
        return
    seconds = session.info.get(IDLE_LIMIT, DEFAULT_IDLE_LIMIT_SECONDS)
    session.execute(
        text("SELECT set_config('idle_in_transaction_session_timeout', :ms, true)"), {"ms": str(seconds * 1000)}
    )
    session.info["idle_limited"] = transaction


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One database transaction: committed if the block succeeds, rolled back otherwise."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
