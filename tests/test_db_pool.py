"""The pool drops connections the server closed while they sat idle, without a ping: a
checkout after PostgreSQL terminated the connection's backend gets a fresh connection and the
caller never sees the dead one."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import func, select, text

from core.db import make_engine
from core.direct_reads import DirectReads, ReadStatement


def test_a_connection_the_server_closed_while_idle_is_replaced_at_checkout(database_url):
    engine = make_engine(database_url, pool_size=1)
    killer = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            first = connection.scalar(text("SELECT pg_backend_pid()"))
        # Back in the pool, idle: the server ends its backend (as a restart would).
        with killer.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        deadline = time.monotonic() + 10
        while True:  # (the backend's exit reaches the socket a moment later)
            with killer.connect() as connection:
                gone = not connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": first}
                )
            if gone or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        with engine.connect() as connection:
            second = connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        with engine.connect() as connection:  # and the fresh one is kept: no churn
            assert connection.scalar(text("SELECT pg_backend_pid()")) == second
    finally:
        engine.dispose()
        killer.dispose()


_PID = ReadStatement(select(func.pg_backend_pid().label("pid")))


async def test_the_read_pool_replaces_a_connection_the_server_closed_too(database_url):
    """The same check on the API's pool for one-statement reads (core/direct_reads.py)."""
    reads = DirectReads(database_url, pool_size=1)
    await reads.start()
    killer = make_engine(database_url, pool_size=1)
    try:
        first = (await reads.one(_PID, {})).pid
        with killer.connect() as connection:
            assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        deadline = time.monotonic() + 10
        while True:
            with killer.connect() as connection:
                gone = not connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": first}
                )
            if gone or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        second = (await reads.one(_PID, {})).pid
        assert second != first
        assert (await reads.one(_PID, {})).pid == second  # and the fresh one is kept: no churn
    finally:
        await reads.stop()
        killer.dispose()
