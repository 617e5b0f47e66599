"""The pool drops connections the server closed while they sat idle, without a ping: a
checkout after PostgreSQL terminated the connection's backend gets a fresh connection and the
caller never sees the dead one."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from core.db import make_engine, make_read_engine


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


async def test_the_read_pool_replaces_a_connection_the_server_closed_too(database_url):
    """The same check on the API's asyncio engine for reads (make_read_engine)."""
    engine = make_read_engine(database_url, pool_size=1)
    killer = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
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
        async with engine.connect() as connection:
            second = await connection.scalar(text("SELECT pg_backend_pid()"))
        assert second != first
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) == second
    finally:
        await engine.dispose()
        killer.dispose()


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
