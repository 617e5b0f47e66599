"""Settings, health, the worker's reconciliation and the `make run` pieces on real servers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select
from temporalio.client import Client

from api.main import create_app
from core.db import unit_of_work
from core.settings import PUBLISHED_SECRETS, Settings
from models.ledger_reports import ReconciliationInput
from models.products import LoanProduct
from models.users import User
from runner.ports import PortInUse, ensure_port_free, free_port
from runner.seed import seed
from runner.temporal import register_search_attributes
from tests.codec_keys import TEST_PAYLOAD_KEY_ID, TEST_PAYLOAD_KEYS
from workflows.ledger_reconciliation import LedgerReconciliationWorkflow

KEYS = {"PAYLOAD_ENCRYPTION_KEYS": TEST_PAYLOAD_KEYS, "PAYLOAD_ENCRYPTION_KEY_ID": TEST_PAYLOAD_KEY_ID}


def test_there_are_no_built_in_secrets_in_any_environment():
    for environment in ("dev", "test", "production"):
        with pytest.raises(ValidationError, match="JWT_SECRET is not set"):
            Settings(_env_file=None, ENVIRONMENT=environment, **KEYS)
        with pytest.raises(ValidationError, match="PAYLOAD_ENCRYPTION_KEYS is not set"):
            Settings(_env_file=None, ENVIRONMENT=environment, JWT_SECRET="x" * 40)
        for published in PUBLISHED_SECRETS:  # what older versions shipped as defaults
            with pytest.raises(ValidationError, match="published in this repository"):
                Settings(_env_file=None, ENVIRONMENT=environment, JWT_SECRET=published, **KEYS)
    with pytest.raises(ValidationError, match="at least 32"):
        Settings(_env_file=None, ENVIRONMENT="dev", JWT_SECRET="short", **KEYS)
    Settings(_env_file=None, ENVIRONMENT="dev", JWT_SECRET="x" * 40, **KEYS)


def test_sandbox_clock_is_refused_in_production():
    with pytest.raises(ValidationError, match="LOAN_TIME_SCALE"):
        Settings(_env_file=None, ENVIRONMENT="production", JWT_SECRET="x" * 40, LOAN_TIME_SCALE=2592000, **KEYS)


def test_health_reports_temporal_down(client):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["checks"]["postgres"] == "ok"
    assert response.json()["checks"]["temporal"].startswith("unreachable")


def test_livez_is_200_while_the_process_serves_even_with_temporal_down(client):
    """Liveness is the process's own: a Temporal outage (503 on /health) must not get the API
    restarted by its supervisor."""
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert client.get("/health").status_code == 503


def test_health_is_200_with_real_postgres_and_temporal(settings, temporal_dev_server):
    live = settings.model_copy(update={"TEMPORAL_ADDRESS": temporal_dev_server})
    with TestClient(create_app(live)) as client:
        response = client.get("/health")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "temporal": "ok"}}


def test_port_in_use_is_a_clear_message():
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .* already in use, so the API cannot start"):
            ensure_port_free(port, "the API")


def test_free_port_never_hands_out_the_same_port_twice():
    """A platform's settings ask for four ports before anything listens on them: a random pick
    from about 12,000 gave PostgreSQL and Temporal the same port once. 600 picks from that range
    would repeat one almost surely (the birthday bound) if nothing remembered them."""
    ports = [free_port() for _ in range(600)]
    assert len(set(ports)) == len(ports)


def test_seed_is_idempotent(session_factory, settings):
    s = settings.model_copy(update={"OPERATOR_EMAIL": "Ops@Example.com"})
    from pydantic import SecretStr

    s = s.model_copy(update={"OPERATOR_PASSWORD": SecretStr("operator password")})
    for _ in range(2):
        with unit_of_work(session_factory) as session:
            seed(session, s)
    with session_factory() as session:
        products = session.scalars(select(LoanProduct).where(LoanProduct.code == "standard")).all()
        assert [(p.version, p.is_current) for p in products] == [(1, True)]
        assert products[0].rates_by_grade == {"A": "14.00", "B": "17.00", "C": "20.00", "D": "24.00", "E": "29.00"}
        operators = session.scalars(select(User).where(User.role == "operator")).all()
        assert [u.email for u in operators] == ["ops@example.com"]


async def test_search_attributes_register_once(dev_client: Client):
    # the fixture registered them already: a second registration adds nothing
    assert await register_search_attributes(dev_client, "default") == []


async def test_reconciliation_workflow_checks_the_real_ledger(time_skipping_env, session_factory, settings, task_queue):
    from worker import build_worker

    with unit_of_work(session_factory) as session:
        seed(session, settings)
    with ThreadPoolExecutor(max_workers=16) as executor:
        worker = build_worker(time_skipping_env.client, settings, session_factory, executor, task_queue=task_queue)
        async with worker:
            result = await time_skipping_env.client.execute_workflow(
                LedgerReconciliationWorkflow.run,
                ReconciliationInput(reason="test"),
                id=f"reconcile-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    assert result.balanced and result.total == 0 and result.accounts == 3


async def test_worker_schedules_are_created_idempotently(dev_client: Client, settings):
    from temporalio.client import ScheduleOverlapPolicy

    from worker import ensure_schedules

    await ensure_schedules(dev_client, settings)
    await ensure_schedules(dev_client, settings)
    description = await dev_client.get_schedule_handle("ledger-reconciliation").describe()
    assert description.schedule.spec.intervals[0].every.total_seconds() == 3600
    statements = await dev_client.get_schedule_handle("investor-statements").describe()
    auto_invest = await dev_client.get_schedule_handle("auto-invest").describe()
    assert auto_invest.schedule.spec.intervals[0].every.total_seconds() == 15 * 60
    assert auto_invest.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert auto_invest.schedule.policy.catchup_window.total_seconds() == 5 * 60
    calendar = statements.schedule.spec.calendars[0]  # the server keeps cron as a calendar
    assert (calendar.day_of_month[0].start, calendar.hour[0].start, calendar.minute[0].start) == (1, 2, 0)
