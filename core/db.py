"""The database engine and the unit of work.

One engine per process for transactions: blocking SQLAlchemy code runs in FastAPI's thread
pool (sync dependencies and routes, in_db) and in sync Temporal activities, never inside
`async def`. An API process's reads that are one statement run on its event loop instead,
through psycopg's async pool (core/direct_reads.py).
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

import models.registry  # noqa: F401 - every table known to the ORM, so foreign keys resolve


def normalize_database_url(url: str) -> str:
    """Accept the libpq spelling (postgresql://) and use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect_args(url: str) -> dict[str, int]:
    # A connection whose peer vanished without a word (a host gone, a network cut) errors
    # within a minute rather than on the kernel's TCP timeout; checkouts then drop it. A
    # database that does not answer is a 503 in seconds, not a request hanging. (What the URL
    # says wins.)
    defaults = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    defaults["connect_timeout"] = 5
    return {name: value for name, value in defaults.items() if f"{name}=" not in url}


def make_engine(url: str, pool_size: int = 10) -> Engine:
    engine = create_engine(
        normalize_database_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args=connect_args(url),
    )
    event.listen(engine, "checkout", _refuse_hung_up_connection)
    return engine


def _refuse_hung_up_connection(_dbapi_connection: Any, _record: Any, proxy: Any) -> None:
    """Every checkout of a pooled connection, in place of a pre-ping (connection_hung_up)."""
    connection = proxy.driver_connection
    if connection.closed:
        raise DisconnectionError("the connection was closed")
    if connection_hung_up(connection.pgconn.socket):
        raise DisconnectionError("the server hung up on this idle connection")


def connection_hung_up(socket: int) -> bool:
    """Whether an idle pooled connection's socket says the server is gone: an idle connection
    has nothing to read, so a socket that is readable, hung up or in error means the server
    closed it (a restart, a power loss, a terminated backend) or TCP gave up on it; the pool
    then opens a fresh one. No round trip: under load a ping per checkout cost as much as the
    query it guarded (bench/results.md)."""
    poller = select.poll()
    hung_up = getattr(select, "POLLRDHUP", 0)  # (Linux)
    poller.register(socket, select.POLLIN | select.POLLPRI | hung_up)
    return bool(poller.poll(0))


# Where a process's sessionmaker keeps its idle-in-transaction limit (sessionmaker(info=...)).
IDLE_LIMIT = "idle_in_transaction_seconds"
DEFAULT_IDLE_LIMIT_SECONDS = 20


def session_factory_for(engine: Engine, idle_in_transaction_seconds: int = DEFAULT_IDLE_LIMIT_SECONDS):
    """The process's sessions; every transaction that takes a money lock is limited (below)."""
    return sessionmaker(bind=engine, expire_on_commit=False, info={IDLE_LIMIT: idle_in_transaction_seconds})


def limit_idle_in_transaction(session: Session) -> None:
    """PostgreSQL ends this transaction's session if it sits idle inside it for the session's
    limit (session_factory_for; 20 s by default): its locks go, its work rolls back. Set with every
    transaction's first money lock (the loan's row and ledger_post set it in their own
    statement, set_idle_limit; other locks call this first): a process frozen (SIGSTOP, a paused VM)
    while holding one does not keep a retry elsewhere waiting. Once per transaction; only
    for that transaction (set_config local), so long work elsewhere (a PDF) is not limited."""
    limit = idle_limit_to_set(session)
    if limit is not None:
        session.execute(text("SELECT set_config('idle_in_transaction_session_timeout', :ms, true)"), {"ms": limit})


def idle_limit_to_set(session: Session) -> str | None:
    """The idle limit (milliseconds, as set_config takes it) this transaction has not set yet,
    marked as set: the caller sets it in its next statement (ledger_post does it in the same
    round trip as the posting). None when the transaction has it already."""
    session.connection()  # (begins the transaction if the lock is its first statement)
    transaction = session.get_transaction()
    if session.info.get("idle_limited") is transaction:
        return None
    limit = str(session.info.get(IDLE_LIMIT, DEFAULT_IDLE_LIMIT_SECONDS) * 1000)
    # Set inside a savepoint, the limit goes if the savepoint is rolled back: then it is not
    # marked, and the next lock sets it again.
    if session.get_nested_transaction() is None:
        session.info["idle_limited"] = transaction
    return limit


def set_idle_limit(limit: str) -> Any:
    """The idle limit as a column of the statement that takes the first lock: no round trip of
    its own (limit_idle_in_transaction). It is set only if the statement returns a row: when it
    finds none, call idle_limit_not_set."""
    return func.set_config("idle_in_transaction_session_timeout", limit, True)


def idle_limit_not_set(session: Session) -> None:
    """The statement meant to set the idle limit found no row: the next lock sets it."""
    session.info.pop("idle_limited", None)


def lock_loan_row(session: Session, query: Any, loan_id: Any) -> Any:
    """Runs `query`, which locks the loan's row (FOR NO KEY UPDATE): the transaction's idle limit
    is set in the same statement when it is not yet, and the lock is remembered (loan_lock_held).
    Returns the first column of the row, None when there is no such loan."""
    limit = idle_limit_to_set(session)
    if limit is not None:
        query = query.add_columns(set_idle_limit(limit))
    found = session.execute(query).scalars().first()
    if found is None:
        idle_limit_not_set(session)
    else:
        remember_loan_lock(session, loan_id)
    return found


# Loans whose row this transaction has locked (FOR NO KEY UPDATE), outside any savepoint: the
# audit chain and the money work of one activity lock the same row, once is enough.
_LOCKED_LOANS = "locked_loans"


def loan_lock_held(session: Session, loan_id: Any) -> bool:
    held = session.info.get(_LOCKED_LOANS)
    return held is not None and held[0] is session.get_transaction() and loan_id in held[1]


def remember_loan_lock(session: Session, loan_id: Any) -> None:
    """Only a lock taken outside savepoints is remembered: rolling back to a savepoint releases
    the row locks taken after it."""
    if session.get_nested_transaction() is not None:
        return
    transaction = session.get_transaction()
    held = session.info.get(_LOCKED_LOANS)
    if held is None or held[0] is not transaction:
        held = (transaction, set())
        session.info[_LOCKED_LOANS] = held
    held[1].add(loan_id)


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
