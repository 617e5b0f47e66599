"""The API's reads that are one statement (the current user, a loan, a wallet, the funding
list): on the event loop, straight through psycopg's async connection pool.

Why not through SQLAlchemy: a read like these costs PostgreSQL about 0.1 ms, and an
AsyncSession around it cost the API process 0.6 ms of CPU (the session, its greenlet, the
ORM's result handling), three times what psycopg takes for the same statement. So such a
statement is still written with SQLAlchemy (the models' columns, their types), compiled once
(ReadStatement) and then sent by psycopg itself, its values converted by the same type
processors SQLAlchemy would apply (a loan's status comes back a LoanStatus).

No transaction around a read (autocommit: no BEGIN/COMMIT round trips): a statement is its
own snapshot, two reads are two snapshots. Never for writes.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from core.db import connect_args, connection_hung_up, normalize_database_url

_DIALECT = postgresql.psycopg.dialect()  # (psycopg's parameter style, %(name)s)


class ReadStatement:
    """A SELECT compiled once to psycopg's SQL, with its parameters' and columns' type
    processing. Rows come back as named tuples (row.status, row.amount, ...)."""

    def __init__(self, statement: Select[Any]) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        binds = compiled.bind_names  # (each parameter of the statement, by the name the SQL gives it)
        if any(bind.expanding for bind in binds):
            raise ValueError("IN with a list of values is not for a ReadStatement: its SQL depends on the list")
        self.sql = str(compiled)
        # Values the statement carries itself (a literal kind, a status), then the caller's.
        self._values = dict(compiled.params)
        self.required = frozenset(name for bind, name in binds.items() if bind.value is None and bind.callable is None)
        self._bind_processors: dict[str, Callable[[Any], Any]] = {}
        for bind, name in binds.items():
            processor = bind.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if processor is not None:
                self._bind_processors[name] = processor
        self._types = [column.type.dialect_impl(_DIALECT) for column in statement.selected_columns]
        # Some types' processors depend on the column's type as the server sent it (numeric's
        # OID): made at the first answer, then kept (a statement's column types do not change).
        self._result_processors: list[Callable[[Any], Any] | None] | None = None
        keys = [column.key for column in statement.selected_columns]
        if any(not isinstance(key, str) or not key.isidentifier() for key in keys):
            raise ValueError(f"every column of a ReadStatement needs a name (label it): {keys}")
        self.row_type = collections.namedtuple("Row", keys)  # type: ignore[misc]

    def parameters(self, given: Mapping[str, Any]) -> dict[str, Any]:
        unknown = given.keys() - self._values.keys()
        missing = self.required - given.keys()
        if unknown or missing:
            raise ValueError(f"parameters: unknown {sorted(unknown)}, missing {sorted(missing)}")
        values = {**self._values, **given}
        for name, processor in self._bind_processors.items():
            values[name] = processor(values[name])
        return values

    def rows(self, cursor: psycopg.AsyncCursor[Any], fetched: Sequence[Sequence[Any]]) -> list[Any]:
        processors = self._result_processors
        if processors is None:
            columns = cursor.description or []
            if len(columns) != len(self._types):
                raise RuntimeError(f"{len(columns)} columns came back, {len(self._types)} were asked for")
            processors = [
                type_.result_processor(_DIALECT, column.type_code)
                for type_, column in zip(self._types, columns, strict=True)
            ]
            self._result_processors = processors
        make = self.row_type._make
        if not any(processors):
            return [make(row) for row in fetched]
        return [
            make(value if processor is None else processor(value) for value, processor in zip(row, processors))
            for row in fetched
        ]


def connection_arguments(url: str) -> dict[str, Any]:
    """psycopg's connect() arguments for the URL, as SQLAlchemy's psycopg dialect makes them
    (a password with / or ? in it, query options), autocommit, and the platform's timeouts."""
    _, arguments = _DIALECT.create_connect_args(make_url(normalize_database_url(url)))
    return {**arguments, "autocommit": True, **connect_args(url)}


# How long a read waits for a pooled connection before a 503: as long as opening one may take
# (core/db.py's connect_timeout), so a database that is down answers in seconds, not hangs.
CONNECTION_WAIT_SECONDS = 5.0


class DirectReads:
    """An API process's pool for one-statement reads: at most `pool_size` connections, all
    autocommit; a burst of reads waits for one on the loop (CONNECTION_WAIT_SECONDS at most,
    then a 503), it does not open more. psycopg's errors come out as SQLAlchemy's (DBAPIError
    and its kinds), as from any other database work here: the same handlers answer them (a NUL
    in a filter is a 422, a database that is down a 503).

    An asyncio pool belongs to the event loop it runs on: the pool serves the loop the app
    started on (start(), in the lifespan: uvicorn's one loop per process). Any other loop (a
    test client that runs each request in a loop of its own) gets a connection of its own per
    read, opened and closed within that loop."""

    def __init__(self, url: str, pool_size: int) -> None:
        self._connect = connection_arguments(url)
        self._pool_size = pool_size
        self._home: tuple[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] | None = None

    async def start(self) -> None:
        """The running loop is the app's: its reads share the pool. Connections open as reads
        need them (one at first), so a database still starting does not stop the app."""
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            "",
            min_size=1,
            max_size=self._pool_size,
            kwargs=self._connect,
            timeout=CONNECTION_WAIT_SECONDS,
            open=False,
            name="reads",
        )
        await pool.open(wait=False)
        self._home = (asyncio.get_running_loop(), pool)

    async def stop(self) -> None:
        """Closes the pool's connections (on the loop that opened them: call it from there)."""
        if self._home is not None:
            _, pool = self._home
            self._home = None
            await pool.close()

    async def _fetch(self, statement: ReadStatement, params: Mapping[str, Any], many: bool) -> list[Any]:
        values = statement.parameters(params)
        try:
            home = self._home
            if home is not None and home[0] is asyncio.get_running_loop():
                return await self._pooled(home[1], statement, values, many)
            async with await psycopg.AsyncConnection.connect("", **self._connect) as connection:
                return await self._run(connection, statement, values, many)
        except psycopg.Error as error:
            raise DBAPIError.instance(statement.sql, values, error, psycopg.Error) from error

    async def _pooled(
        self, pool: AsyncConnectionPool[Any], statement: ReadStatement, values: dict[str, Any], many: bool
    ) -> list[Any]:
        # Every checkout, in place of a ping (core/db.py, connection_hung_up): a connection the
        # server closed while it sat idle (a restart) is closed here, so the pool drops it and
        # opens another, and the next idle one is tried at once. After a restart every idle
        # connection is dead: pool_size + 1 tries reach a fresh one.
        for _ in range(self._pool_size + 1):
            connection = await pool.getconn()
            try:
                if connection.closed or connection_hung_up(connection.pgconn.socket):
                    await connection.close()
                    continue
                return await self._run(connection, statement, values, many)
            finally:
                await pool.putconn(connection)
        raise psycopg.OperationalError("every pooled connection the database had was gone; send again")

    @staticmethod
    async def _run(
        connection: psycopg.AsyncConnection[Any], statement: ReadStatement, values: dict[str, Any], many: bool
    ) -> list[Any]:
        cursor = await connection.execute(statement.sql, values)
        fetched = await cursor.fetchall() if many else [row] if (row := await cursor.fetchone()) is not None else []
        return statement.rows(cursor, fetched)

    async def one(self, statement: ReadStatement, params: Mapping[str, Any]) -> Any | None:
        """The statement's first row, or None."""
        rows = await self._fetch(statement, params, many=False)
        return rows[0] if rows else None

    async def all(self, statement: ReadStatement, params: Mapping[str, Any]) -> list[Any]:
        return await self._fetch(statement, params, many=True)
