"""Test fixtures on the real things: a real PostgreSQL (embedded unless TEST_DATABASE_URL is
set) with the real migrations, and Temporal's real server binaries.

Every server a fixture starts, the same fixture stops, by the process id it started.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

if TYPE_CHECKING:
    from fastapi.testclient import TestClient

    from tests.api_helpers import Account

from core.db import make_engine  # noqa: E402
from core.migrate import upgrade_to_head  # noqa: E402
from core.settings import Settings  # noqa: E402
from runner.ports import free_port  # noqa: E402
from tests.codec_keys import TEST_PAYLOAD_KEY_ID, TEST_PAYLOAD_KEYS, test_data_converter  # noqa: E402

BIN_DIR = Path(sys.executable).parent
TEMPLATE_DB = "crowdlending_template"
# The role the tests' API and subprocess workers log in as: a member of the app's group role,
# with only the privileges the migrations grant it (as `make run` does).
TEST_APP_ROLE = "crowdlending_test_app"


class PostgresForTests:
    """A server on which each test gets its own database, cloned from a migrated template."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self.app_password = secrets.token_urlsafe(18)

    def url_for(self, database: str) -> str:
        base, _, _ = self.admin_url.rpartition("/")
        return f"{base}/{database}"

    def app_url_for(self, database: str) -> str:
        """The same database as the app's role (no DDL, append-only tables stay so)."""
        from sqlalchemy.engine import make_url

        from core.db import normalize_database_url

        url = make_url(normalize_database_url(self.url_for(database)))
        return url.set(username=TEST_APP_ROLE, password=self.app_password).render_as_string(hide_password=False)

    def prepare_app_role(self) -> None:
        from runner.postgres import ensure_app_login_role

        ensure_app_login_role(self.admin_url, TEST_APP_ROLE, self.app_password)

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_url, autocommit=True)

    def prepare_template(self) -> None:
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        upgrade_to_head(self.url_for(TEMPLATE_DB))
        self.created.append(TEMPLATE_DB)

    def new_database(self) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE_DB}"')
        self.created.append(name)
        return self.url_for(name)

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop(self.url_for(name))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresForTests]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        server = PostgresForTests(external)
        server.prepare_template()
        server.prepare_app_role()
        yield server
        server.drop_all()
        return
    from runner.postgres import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="crowdlending-pg-") as tmp:
        embedded = EmbeddedPostgres(Path(tmp), free_port(), password=secrets.token_urlsafe(18), durable=False)
        embedded.start()
        try:
            server = PostgresForTests(embedded.url)
            server.prepare_template()
            server.prepare_app_role()
            yield server
        finally:
            embedded.stop()


@pytest.fixture
def database_url(postgres: PostgresForTests) -> Iterator[str]:
    """A fresh, migrated database for this test only, as its owner (the tests' own setup and
    checks); the app under test connects as the app's role (`app_database_url`)."""
    url = postgres.new_database()
    yield url
    postgres.drop(url)


@pytest.fixture
def app_database_url(postgres: PostgresForTests, database_url: str) -> str:
    return postgres.app_url_for(database_url.rpartition("/")[2])


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url, pool_size=20)
    yield eng
    eng.dispose()


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@pytest.fixture
def settings(database_url: str, app_database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,
        ENVIRONMENT="test",
        DATABASE_URL=app_database_url,
        MIGRATION_DATABASE_URL=database_url,
        DATA_DIR=tmp_path / "data",
        JWT_SECRET=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS="127.0.0.1:1",  # replaced by tests that start a Temporal server
        PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
        PAYLOAD_ENCRYPTION_KEY_ID=TEST_PAYLOAD_KEY_ID,
        # Tests sign up dozens of accounts from the one TestClient address; the limits' own
        # tests (test_resource_limits.py) set them low.
        SIGNUPS_PER_ADDRESS_PER_HOUR=100_000,
        # Long enough that a loaded machine never lets a throttled guess through in a test.
        LOGIN_FIRST_DELAY_SECONDS=300,
        ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=100_000,
    )


def temporal_cli_path() -> str:
    return str(BIN_DIR / "temporal")


def temporal_test_server_path() -> str:
    return str(BIN_DIR / "temporal-test-server")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from fastapi.testclient import TestClient

    from api.main import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client


def make_staff(session_factory: sessionmaker[Session], role: str, client) -> Account:
    from api.routers.users import create_user
    from core.db import unit_of_work
    from tests.api_helpers import Account, login

    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    password = "staff password 123"
    with unit_of_work(session_factory) as session:
        user = create_user(session, email, password, role)
        user_id = str(user.id)
    return Account(id=user_id, email=email, password=password, role=role, token=login(client, email, password))


@pytest.fixture
def operator(session_factory, client):
    return make_staff(session_factory, "operator", client)


@pytest.fixture
def compliance(session_factory, client):
    return make_staff(session_factory, "compliance", client)


async def _until_healthy(address: str, timeout: float = 60.0) -> None:
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            client = await Client.connect(address)
            await client.service_client.check_health()
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


@pytest.fixture(scope="session")
def temporal_dev_server() -> Iterator[str]:
    """The real Temporal dev server binary (in memory), for Schedules, search attributes and
    update-heavy tests. Returns its address."""
    from runner.temporal import TemporalDevServer

    with tempfile.TemporaryDirectory(prefix="crowdlending-temporal-") as tmp:
        server = TemporalDevServer(Path(tmp), free_port(), free_port(), persistent=False)
        server.start()
        try:
            # Its port opens before its frontend is healthy ("Frontend is not healthy yet" on a
            # loaded machine): the first test waits for a health check, not only the port.
            # (its own event loop, leaving the tests' loops alone)
            loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(_until_healthy(f"127.0.0.1:{server.port}"))
            finally:
                loop.close()
            yield f"127.0.0.1:{server.port}"
        finally:
            server.stop()


@pytest.fixture
async def dev_client(temporal_dev_server: str):
    from temporalio.client import Client

    from runner.temporal import register_search_attributes

    client = await Client.connect(temporal_dev_server, data_converter=test_data_converter())
    await register_search_attributes(client, "default")
    return client


@pytest.fixture
async def time_skipping_env():
    """Temporal's time-skipping test server (real binary): timers pass at once."""
    from temporalio.testing import WorkflowEnvironment

    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server_path(), data_converter=test_data_converter()
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def live_settings(settings, temporal_dev_server, task_queue):
    """The test's settings, pointed at the dev server and the test's own task queue."""
    return settings.model_copy(update={"TEMPORAL_ADDRESS": temporal_dev_server, "TASK_QUEUE": task_queue})


@pytest.fixture
def seeded(session_factory, settings) -> None:
    """The platform accounts and the `standard` product, as `make run` seeds them."""
    from core.db import unit_of_work
    from runner.seed import seed

    with unit_of_work(session_factory) as session:
        seed(session, settings)
