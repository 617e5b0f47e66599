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


async def test_after_a_restart_every_dead_connection_of_the_read_pool_is_passed_over_at_once(database_url):
    """All of the pool's idle connections dead (a restart): the next read still gets a live
    one, without waiting for a check's back-off (which would outlast the pool's wait)."""
    reads = DirectReads(database_url, pool_size=4)
    await reads.start()
    killer = make_engine(database_url, pool_size=1)
    try:
        first = set(await asyncio.gather(*(_pid_held(reads) for _ in range(4))))
        assert len(first) == 4
        with killer.connect() as connection:
            for pid in first:
                assert connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with killer.connect() as connection:
                alive = connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": list(first)}
                )
            if not alive:
                break
            await asyncio.sleep(0.05)
        assert (await reads.one(_PID, {})).pid not in first
    finally:
        await reads.stop()
        killer.dispose()


async def _pid_held(reads: DirectReads) -> int:
    """A read that holds its connection a moment, so that several at once use several."""
    row = await reads.one(
        ReadStatement(select(func.pg_backend_pid().label("pid"), func.pg_sleep(0.2).label("slept"))), {}
    )
    return row.pid


def test_reads_on_loops_other_than_the_apps_leave_no_connection_behind(settings, database_url, seeded):
    """A test client used without its lifespan runs each request in an event loop of its own:
    the one-statement reads there (the current user) open their connection and close it (an
    asyncio pool would stay bound to a loop that has ended, its connections open)."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.api_helpers import sign_up

    app = create_app(settings)
    browser = TestClient(app)  # (not entered: no lifespan, a loop per request)
    watcher = make_engine(database_url, pool_size=1)
    try:
        account = sign_up(browser, "investor")
        assert browser.get("/v1/users/me", headers=account.headers).status_code == 200

        def connections() -> int:
            with watcher.connect() as connection:
                return connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
                )

        before = connections()
        for _ in range(6):
            assert browser.get("/v1/users/me", headers=account.headers).status_code == 200
        assert connections() <= before
    finally:
        watcher.dispose()
        app.state.engine.dispose()
