"""Resource limits: a cap on request bodies, per-address limits on the calls that need no
token (counted in PostgreSQL), trail.pdf rendered in processes of its own with a bounded
queue, 503 (never 500) when PostgreSQL or Temporal is down, and numbers in ASCII digits only."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pypdf
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from temporalio.service import RPCError, RPCStatusCode

import api.request_limits
from api.main import create_app
from api.request_limits import ANONYMOUS_POSTS, SIGNUPS, count_request
from api.routers.users import create_user
from api.schemas.auto_invest import AutoInvestRuleIn
from api.schemas.calculator import CalculatorIn
from api.schemas.users import ProfileIn
from api.schemas.wallets import DepositIn
from compliance.audit import append_audit
from core.db import unit_of_work
from core.errors import ServiceUnavailable, TooManyRequests
from core.security import issue_access_token
from documents.render_pool import RenderPool
from loans.requests import create_loan_request
from models.product_terms import ProductTerms
from models.request_limits import RequestCount
from models.users import User
from products.catalog import STANDARD
from runner.ports import free_port
from tests.loan_helpers import make_borrower
from tests.process_tree import alive

D = Decimal
ROOT = Path(__file__).resolve().parent.parent
PROBLEM = "application/problem+json"
MiB = 1024 * 1024


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == f"https://errors.crowdlending.example/{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


@contextmanager
def app_client(settings, address: str = "testclient", **changes: Any) -> Iterator[TestClient]:
    """An app on the test's database, with some settings changed, called from `address`."""
    with TestClient(create_app(settings.model_copy(update=changes)), client=(address, 50000)) as client:
        yield client


def bearer(settings, user_id: uuid.UUID, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_access_token(settings, user_id, role, 0)[0]}"}


def token_for(settings, session_factory, role: str) -> dict[str, str]:
    if role == "borrower":
        return bearer(settings, make_borrower(session_factory), role)  # with a profile: may ask for loans
    with unit_of_work(session_factory) as session:
        user = create_user(session, f"{role}-{uuid.uuid4().hex[:8]}@example.com", "a long password 1", role)
        return bearer(settings, user.id, role)


@pytest.fixture(autouse=True)
def limits_held_mid_window(monkeypatch):
    """The per-address limits' clock held at half past the hour and half past the minute: no
    hourly or per-minute window can end in the middle of a test and start its count over."""
    mid_window = datetime(2026, 11, 23, 10, 30, 30, tzinfo=UTC)
    monkeypatch.setattr(api.request_limits, "limits_clock", lambda: mid_window)


def request_counts(session_factory) -> list[RequestCount]:
    with session_factory() as session:
        return list(session.scalars(select(RequestCount).order_by(RequestCount.scope, RequestCount.window_start)))


# -- 1. the request body cap --------------------------------------------------------------------------


def test_a_body_over_the_cap_is_refused_by_its_content_length_before_any_route_runs(client, session_factory):
    body = b'{"email": "big@example.com", "password": "long enough pw", "role": "investor", "x": "' + b"a" * MiB
    response = client.post("/v1/users", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 413, "content-too-large")
    assert response.headers["connection"] == "close"
    assert int(response.request.headers["content-length"]) > MiB
    # Nothing ran: no user, and not even the sign-up limit counted the request.
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0
    assert request_counts(session_factory) == []


def test_a_streamed_body_without_content_length_is_counted_and_refused(client):
    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b" " * (64 * 1024)  # 1.25 MiB in all

    response = client.post("/v1/calculator", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert_problem(response, 413, "content-too-large")


def test_a_body_at_the_cap_is_read(client):
    body = b" " * (MiB - 2) + b"{}"
    response = client.post("/v1/calculator", content=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 422, "invalid-request")  # read and validated: the fields are missing


def test_the_codec_endpoints_take_batches_of_payloads_up_to_their_own_cap(client, settings):
    assert settings.MAX_CODEC_BODY_BYTES > settings.MAX_REQUEST_BODY_BYTES
    payloads = {"payloads": [{"metadata": {}, "data": "A" * (512 * 1024)} for _ in range(4)]}  # ~2 MiB
    assert client.post("/codec/decode", json=payloads).status_code == 401  # read, then: no token
    too_big = {"payloads": [{"metadata": {}, "data": "A" * (3 * MiB)} for _ in range(3)]}
    assert_problem(client.post("/codec/decode", json=too_big), 413, "content-too-large")


async def test_an_endless_body_is_read_only_up_to_the_cap(settings):
    """Straight through ASGI: a client that never stops sending is cut off once the cap is
    passed; the app does not keep reading (or buffering) what follows."""
    app = create_app(settings.model_copy(update={"MAX_REQUEST_BODY_BYTES": 256 * 1024}))
    chunk = b" " * 16 * 1024
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        await asyncio.sleep(0)
        return {"type": "http.request", "body": chunk, "more_body": pulled < 1000}  # "endless": 16 MiB

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/calculator",
        "raw_path": b"/v1/calculator",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"content-type", b"application/json")],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    assert pulled == 256 // 16 + 1  # the chunk that passed the cap, and not one more
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert b"content-too-large" in b"".join(m.get("body", b"") for m in sent[1:])
    app.state.engine.dispose()


# -- 2. per-address limits on the calls that need no token -------------------------------------------


def sign_up_body() -> dict[str, str]:
    return {"email": f"u-{uuid.uuid4().hex[:8]}@example.com", "password": "long enough pw", "role": "investor"}


def test_sign_ups_are_limited_per_address(settings, session_factory):
    with app_client(settings, "198.51.100.7", SIGNUPS_PER_ADDRESS_PER_HOUR=3) as client:
        for _ in range(3):
            assert client.post("/v1/users", json=sign_up_body()).status_code == 201
        refused = client.post("/v1/users", json=sign_up_body())
        body = assert_problem(refused, 429, "too-many-requests")
        assert refused.headers["retry-after"] == "1770"  # the held clock's hour ends in 29 min 30 s
        assert body["retry_after_seconds"] == int(refused.headers["retry-after"])
        # A refused sign-up creates nothing; calls of other kinds are not sign-ups.
        assert client.post("/v1/users", json=sign_up_body()).status_code == 429
        calculation = {"amount": "100000.00", "rate_annual": "17", "term_months": 12}
        assert client.post("/v1/calculator", json=calculation).status_code == 200
    with app_client(settings, "198.51.100.8", SIGNUPS_PER_ADDRESS_PER_HOUR=3) as neighbour:
        assert neighbour.post("/v1/users", json=sign_up_body()).status_code == 201
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 4
    counts = {(c.scope, c.address): c.count for c in request_counts(session_factory)}
    assert counts == {
        ("signup", "198.51.100.7"): 5,  # refused requests count too
        ("signup", "198.51.100.8"): 1,
        ("anonymous-post", "198.51.100.7"): 1,
    }


def test_refresh_logout_and_the_calculator_share_a_per_minute_limit_per_address(settings, session_factory):
    made_up = {"refresh_token": "x" * 43}
    calculation = {"amount": "100000.00", "rate_annual": "17", "term_months": 12}
    with app_client(settings, "203.0.113.20", ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=4) as client:
        assert client.post("/v1/calculator", json=calculation).status_code == 200
        assert client.post("/v1/auth/refresh", json=made_up).status_code == 401
        assert client.post("/v1/auth/logout", json=made_up).status_code == 204
        assert client.post("/v1/calculator", json={"amount": "nope"}).status_code == 422  # counted as well
        for path, body in (
            ("/v1/calculator", calculation),
            ("/v1/auth/refresh", made_up),
            ("/v1/auth/logout", made_up),
        ):
            refused = client.post(path, json=body)
            assert_problem(refused, 429, "too-many-requests")
            assert refused.headers["retry-after"] == "30"  # the held clock's minute ends in 30 s
        # Logging in has limits of its own: a wrong password is still just wrong.
        login = client.post("/v1/auth/token", data={"username": "nobody@example.com", "password": "wrong one"})
        assert login.status_code == 401
    with app_client(settings, "203.0.113.21", ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=4) as neighbour:
        assert neighbour.post("/v1/calculator", json=calculation).status_code == 200


def test_every_api_process_shares_the_counts(settings, session_factory):
    """Two apps (two engines, as two API processes have) on one database: one count. And
    concurrent requests are counted exactly by the one INSERT ... ON CONFLICT statement."""
    with (
        app_client(settings, "192.0.2.1", SIGNUPS_PER_ADDRESS_PER_HOUR=2) as first,
        app_client(settings, "192.0.2.1", SIGNUPS_PER_ADDRESS_PER_HOUR=2) as second,
    ):
        assert first.post("/v1/users", json=sign_up_body()).status_code == 201
        assert second.post("/v1/users", json=sign_up_body()).status_code == 201
        assert first.post("/v1/users", json=sign_up_body()).status_code == 429
        assert second.post("/v1/users", json=sign_up_body()).status_code == 429

    now = datetime.now(UTC)
    answers: list[int | str] = []
    start = threading.Barrier(24)

    def one() -> None:
        start.wait()
        try:
            answers.append(count_request(session_factory, ANONYMOUS_POSTS, "192.0.2.50", 10, now))
        except TooManyRequests:
            answers.append("refused")

    threads = [threading.Thread(target=one) for _ in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a for a in answers if isinstance(a, int)) == list(range(1, 11))
    assert answers.count("refused") == 14


def test_windows_are_fixed_and_ended_ones_are_deleted(session_factory):
    at = datetime(2026, 11, 23, 10, 0, 50, tzinfo=UTC)
    for expected in (1, 2):
        assert count_request(session_factory, ANONYMOUS_POSTS, "192.0.2.7", 2, at) == expected
    assert count_request(session_factory, SIGNUPS, "192.0.2.7", 5, at) == 1
    with pytest.raises(TooManyRequests) as refused:
        count_request(session_factory, ANONYMOUS_POSTS, "192.0.2.7", 2, at)
    assert refused.value.headers == {"Retry-After": "10"}  # the minute ends at 10:01:00
    # The next minute starts over, and its first request deletes the minute that ended
    # (the sign-up hour has not ended: kept).
    later = at + timedelta(seconds=15)
    assert count_request(session_factory, ANONYMOUS_POSTS, "192.0.2.7", 2, later) == 1
    rows = request_counts(session_factory)
    assert [(r.scope, r.window_start, r.count) for r in rows] == [
        ("anonymous-post", datetime(2026, 11, 23, 10, 1, tzinfo=UTC), 1),
        ("signup", datetime(2026, 11, 23, 10, 0, tzinfo=UTC), 1),
    ]
    assert rows[1].window_end == datetime(2026, 11, 23, 11, 0, tzinfo=UTC)


# What needs no bearer token and is not limited here, and why.
UNLIMITED_ANONYMOUS_POSTS = {
    "/v1/auth/token": "logging in has limits of its own (auth/login_limits.py)",
    "/codec/{codec_token}/decode": "a signed operator credential; the Temporal UI calls it many times a page",
    "/codec/local-dev/decode": "dev only, from this machine (404 for anyone else)",
}


def test_every_post_that_needs_no_token_is_limited(settings):
    """Every POST the OpenAPI document lists without a bearer token: its second request from
    one address, with both limits at one, is refused (or the exemption above says why not)."""
    with app_client(
        settings, "192.0.2.99", SIGNUPS_PER_ADDRESS_PER_HOUR=1, ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=1
    ) as client:
        spec = client.get("/openapi.json").json()
        anonymous = {path for path, operations in spec["paths"].items() if "post" in operations}
        anonymous = {path for path in anonymous if not spec["paths"][path]["post"].get("security")}
        assert {"/v1/users", "/v1/auth/token", "/v1/auth/refresh", "/v1/auth/logout", "/v1/calculator"} <= anonymous
        assert {path for path in UNLIMITED_ANONYMOUS_POSTS if "local-dev" not in path} <= anonymous
        for path in sorted(anonymous - set(UNLIMITED_ANONYMOUS_POSTS)):
            url = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
            client.post(url, json={})  # the first, whatever its answer (counted even when invalid)
            assert_problem(client.post(url, json={}), 429, "too-many-requests")


# -- 3. trail.pdf in processes of its own ------------------------------------------------------------


def loan_with_trail(session_factory, steps: int) -> tuple[uuid.UUID, uuid.UUID]:
    borrower = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("100000.00"),
            term_months=12,
            purpose="a tractor",
            simulation_id=None,
            client_key=None,
        )
        for n in range(steps):
            append_audit(session, loan.id, f"test:step:{n}", "loan.noted", note=f"step number {n}")
        return borrower, loan.id


def pdf_text(content: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(content)).pages)


def test_trail_pdf_renders_in_a_process_of_its_own_that_ends_with_the_app(settings, session_factory, seeded):
    borrower, loan_id = loan_with_trail(session_factory, 12)
    headers = bearer(settings, borrower, "borrower")
    with app_client(settings) as client:
        pool: RenderPool = client.app.state.render_pool
        assert pool.process_ids() == []  # started by the first render, not with the app
        response = client.get(f"/v1/loans/{loan_id}/trail.pdf", headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/pdf"
        assert response.content.startswith(b"%PDF-")
        text = pdf_text(response.content)
        assert f"Trail of loan {loan_id}" in text and "loan.noted" in text and "step number 11" in text
        renderers = pool.process_ids()
        assert len(renderers) == settings.PDF_RENDER_PROCESSES == 1
        assert all(alive(pid) for pid in renderers)
        again = client.get(f"/v1/loans/{loan_id}/trail.pdf", headers=headers)
        assert again.content == response.content and pool.process_ids() == renderers  # the same process
    assert not any(alive(pid) for pid in renderers)  # the app's end stopped its renderer


RENDER_THEN_WAIT = """
import asyncio, sys, time
from documents.render_pool import RenderPool
from tests.test_resource_limits import trail_context

async def main():
    pool = RenderPool(1, 0)
    await pool.render("loan_trail.html", trail_context(1))
    print(*pool.process_ids(), flush=True)
    time.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_a_render_process_ends_when_the_api_process_is_killed(tmp_path):
    """No lifespan runs after a SIGKILL: the render process notices its API is gone."""
    script = tmp_path / "api_stand_in.py"
    script.write_text(RENDER_THEN_WAIT)
    api = subprocess.Popen(
        [sys.executable, "-W", "ignore", str(script)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    renderers: list[int] = []
    try:
        assert api.stdout is not None
        renderers = [int(pid) for pid in api.stdout.readline().split()]
        assert len(renderers) == 1 and alive(renderers[0])
        api.kill()
        api.wait(10)
        deadline = time.monotonic() + 10
        while alive(renderers[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(renderers[0])
    finally:
        if api.poll() is None:
            api.kill()
            api.wait(10)
        for pid in renderers:  # (only if the test failed: it is ours)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def trail_context(steps: int) -> dict[str, Any]:
    return {
        "platform": {"name": "P", "details": "D"},
        "generated_at": "2026-11-23",
        "loan": {
            "id": uuid.uuid4(),
            "status": "active",
            "amount": D("1000.00"),
            "currency": "RUB",
            "term_months": 3,
            "workflow_id": "loan-x",
        },
        "steps": [
            {
                "seq": n,
                "at": "2026-11-23",
                "actor_role": "system",
                "actor_pseudonym": None,
                "actor_email": None,
                "action": "loan.noted",
                "note": f"step {n}",
                "record_hash": "ab" * 32,
                "history": None,
            }
            for n in range(steps)
        ],
        "check": {"intact": True, "head_hash": "ab" * 32},
    }


async def test_renders_past_the_queue_are_refused_not_queued(settings, session_factory, seeded):
    pool = RenderPool(processes=1, waiting=1)
    try:
        first = asyncio.ensure_future(pool.render("loan_trail.html", trail_context(5)))
        second = asyncio.ensure_future(pool.render("loan_trail.html", trail_context(5)))
        await asyncio.sleep(0)  # both admitted: one rendering (its process is still starting), one waiting
        with pytest.raises(ServiceUnavailable) as refused:
            await pool.render("loan_trail.html", trail_context(5))
        assert refused.value.status_code == 503 and refused.value.headers["Retry-After"] == "5"
        pdfs = await asyncio.wait_for(asyncio.gather(first, second), 120)
        assert all(pdf.startswith(b"%PDF-") for pdf in pdfs)
        assert (await pool.render("loan_trail.html", trail_context(1))).startswith(b"%PDF-")  # room again
    finally:
        await asyncio.to_thread(pool.shutdown)

    # Through the API: 503 problem+json with Retry-After while the renderer is taken.
    borrower, loan_id = loan_with_trail(session_factory, 2)
    headers = bearer(settings, borrower, "borrower")
    app = create_app(settings.model_copy(update={"PDF_RENDERS_WAITING": 0}))
    taken = asyncio.ensure_future(app.state.render_pool.render("loan_trail.html", trail_context(1)))
    await asyncio.sleep(0)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:
            busy = await api.get(f"/v1/loans/{loan_id}/trail.pdf", headers=headers)
            assert_problem(busy, 503, "service-unavailable")
            assert busy.headers["retry-after"] == "5"
            await asyncio.wait_for(taken, 120)
            assert (await api.get(f"/v1/loans/{loan_id}/trail.pdf", headers=headers)).status_code == 200
    finally:
        await asyncio.to_thread(app.state.render_pool.shutdown)
        app.state.engine.dispose()


# -- 4. PostgreSQL or Temporal down: 503, never 500 --------------------------------------------------


def test_with_postgresql_down_the_app_starts_and_answers_503(settings):
    closed = f"postgresql+psycopg://nobody:nothing@127.0.0.1:{free_port()}/crowdlending"
    token = issue_access_token(settings, uuid.uuid4(), "investor", 0)[0]
    with app_client(settings, DATABASE_URL=closed) as client:  # the lifespan ran: it started
        for response in (
            client.get("/v1/products"),
            client.post("/v1/auth/token", data={"username": "ann@example.com", "password": "a password"}),
            client.post("/v1/users", json=sign_up_body()),
            client.post("/v1/calculator", json={"amount": "1000.00", "rate_annual": "10", "term_months": 3}),
            client.get("/v1/wallets/me", headers={"Authorization": f"Bearer {token}"}),
        ):
            body = assert_problem(response, 503, "service-unavailable")
            assert response.headers["retry-after"] == "5"
            assert "database" in body["detail"] and "nobody" not in response.text  # no URL, no SQL


def test_with_temporal_unreachable_the_routes_that_need_it_answer_503(settings, session_factory, seeded):
    assert settings.TEMPORAL_ADDRESS == "127.0.0.1:1"  # nothing listens there
    borrower, loan_id = loan_with_trail(session_factory, 0)
    operator = token_for(settings, session_factory, "operator")
    mine = bearer(settings, borrower, "borrower")
    with app_client(settings) as client:
        for response in (
            client.get(f"/v1/operator/loans/{loan_id}/live", headers=operator),
            client.post(f"/v1/loans/{loan_id}/early-repayment", headers=mine),
            client.post(f"/v1/operator/loans/{loan_id}/decision", json={"approve": True}, headers=operator),
        ):
            assert_problem(response, 503, "service-unavailable")
            assert response.headers["retry-after"] == "5"


def test_temporal_going_down_after_the_api_connected_is_503(settings, session_factory, seeded, tmp_path):
    """The client is connected (at start), then the server goes away: the SDK's retries end
    in RPCError UNAVAILABLE, which is 503 like an unreachable server at start."""
    from runner.temporal import TemporalDevServer

    server = TemporalDevServer(tmp_path / "temporal", free_port(), free_port(), persistent=False)
    server.start()
    try:
        _, loan_id = loan_with_trail(session_factory, 0)
        operator = token_for(settings, session_factory, "operator")
        with app_client(settings, TEMPORAL_ADDRESS=f"127.0.0.1:{server.port}") as client:
            assert client.app.state.temporal._client is not None  # connected in the lifespan
            server.stop()
            down = client.get(f"/v1/operator/loans/{loan_id}/live", headers=operator)
            assert_problem(down, 503, "service-unavailable")
            assert down.headers["retry-after"] == "5"
    finally:
        server.stop()


def test_temporal_and_database_outages_mid_call_are_503_other_failures_stay_500(settings):
    app = create_app(settings)

    @app.get("/test/temporal/{code}")
    async def temporal_fails(code: str) -> None:
        raise RPCError("connection refused", RPCStatusCode[code], b"")

    @app.get("/test/database-connection-lost")
    def database_fails() -> None:
        raise OperationalError("SELECT secret", {"email": "x@example.com"}, psycopg.OperationalError("server closed"))

    with TestClient(app, raise_server_exceptions=False) as client:
        for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
            response = client.get(f"/test/temporal/{code}")
            assert_problem(response, 503, "service-unavailable")
            assert response.headers["retry-after"] == "5"
        assert_problem(client.get("/test/temporal/INVALID_ARGUMENT"), 500, "internal")
        lost = client.get("/test/database-connection-lost")
        assert_problem(lost, 503, "service-unavailable")
        assert "secret" not in lost.text and "x@example.com" not in lost.text


# -- 5. numbers in ASCII digits only -------------------------------------------------------------------

# The zero of each script: Python's Decimal() reads every one of them as 0.
DIGIT_ZEROS = {
    "fullwidth": "\uff10",
    "arabic-indic": "\u0660",
    "extended arabic-indic": "\u06f0",
    "devanagari": "\u0966",
    "bengali": "\u09e6",
    "thai": "\u0e50",
    "mongolian": "\u1810",
    "mathematical bold": "\U0001d7ce",
}


def in_script(text: str, zero: str) -> str:
    return "".join(chr(ord(zero) + int(c)) if c.isascii() and c.isdigit() else c for c in text)


def test_every_script_spells_numbers_python_would_accept():
    for zero in DIGIT_ZEROS.values():
        assert Decimal(in_script("1000.50", zero)) == Decimal("1000.50")  # what the API must not do


def product_body(**changes: Any) -> dict[str, Any]:
    return {**STANDARD.model_dump(mode="json"), "code": f"p{uuid.uuid4().hex[:8]}", **changes}


# Valid bodies, each spelled in another script one field at a time (NUMBER_FIELDS).
CALCULATOR_BODY = {"amount": "1000.50", "rate_annual": "17.25", "term_months": 12}
PROFILE_BODY = {"monthly_income": "250000", "monthly_obligations": "1000", "employment_months": 60}
AUTO_INVEST_RULE = {
    "is_active": True,
    "max_amount_per_loan": "5000.00",
    "min_loan_amount": "10000.00",
    "max_loan_amount": "500000.00",
    "allowed_grades": ["A", "B"],
    "min_rate": "12.5",
    "max_term_months": 24,
    "reinvest_returns": False,
    "max_portfolio_share_percent": "10",
}

# (role, method, path, ASCII body or None, the field to spell in another script, its ASCII value)
NUMBER_FIELDS: list[tuple[str | None, str, str, dict[str, Any] | None, str, str]] = [
    (None, "POST", "/v1/calculator", CALCULATOR_BODY, "amount", "1000.50"),
    (None, "POST", "/v1/calculator", CALCULATOR_BODY, "rate_annual", "17.25"),
    ("investor", "POST", "/v1/wallets/deposits", {"amount": "5000.00"}, "amount", "5000.00"),
    (
        "borrower",
        "POST",
        "/v1/loans",
        {"amount": "100000.00", "term_months": 12, "purpose": "tractor"},
        "amount",
        "100000.00",
    ),
    ("borrower", "PUT", "/v1/users/me/profile", PROFILE_BODY, "monthly_income", "250000"),
    ("borrower", "PUT", "/v1/users/me/profile", PROFILE_BODY, "monthly_obligations", "1000"),
    ("investor", "PUT", "/v1/auto-invest/rule", AUTO_INVEST_RULE, "min_rate", "12.5"),
    ("investor", "PUT", "/v1/auto-invest/rule", AUTO_INVEST_RULE, "max_portfolio_share_percent", "10"),
    ("operator", "POST", "/v1/operator/products", None, "platform_fee_percent", "1.5"),
    ("operator", "POST", "/v1/operator/products", None, "rates_by_grade.A", "14.5"),
    ("investor", "GET", "/v1/loans?status=funding&limit={}", None, "limit", "20"),
    ("investor", "GET", "/v1/wallets/me/transactions?before={}", None, "before", "15"),
    ("operator", "GET", "/v1/operator/scoring-rules/versions/{}", None, "version", "1"),
]


def _with_field(body: dict[str, Any], dotted: str, value: str) -> dict[str, Any]:
    body = {**body}
    head, _, rest = dotted.partition(".")
    body[head] = _with_field(body[head], rest, value) if rest else value
    return body


def test_numbers_in_any_other_script_are_refused_everywhere(settings, session_factory, seeded):
    tokens = {role: token_for(settings, session_factory, role) for role in ("borrower", "investor", "operator")}
    with app_client(settings, ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=1000) as client:
        for role, method, path, body, field, ascii_value in NUMBER_FIELDS:
            headers = tokens[role] if role else {}
            if body is None and method != "GET":
                body = product_body()
            for spelled in [ascii_value, *(in_script(ascii_value, zero) for zero in DIGIT_ZEROS.values())]:
                if method == "GET":
                    response = client.get(path.format(spelled), headers=headers)
                else:
                    response = client.request(method, path, json=_with_field(body, field, spelled), headers=headers)
                if spelled == ascii_value:
                    assert response.status_code < 400 or response.status_code == 404, (path, field, response.text)
                    continue
                problem = assert_problem(response, 422, "invalid-request")
                named = {error["field"] for error in problem["errors"]}
                assert any(name == field or name.startswith(f"{field}.") for name in named), (path, field, named)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    number=st.decimals(min_value=1, max_value=100, places=2, allow_nan=False, allow_infinity=False),
    zero=st.sampled_from(sorted(DIGIT_ZEROS.values())),
    data=st.data(),
)
def test_a_single_foreign_digit_anywhere_is_refused(number: Decimal, zero: str, data) -> None:
    """Any ASCII number in 1..100 is valid in each of these fields; the same number with any
    of its digits (one or more) in another script is refused by each."""
    text = f"{number:.2f}"
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    foreign = data.draw(st.sets(st.sampled_from(digits), min_size=1))
    spoofed = "".join(chr(ord(zero) + int(c)) if i in foreign else c for i, c in enumerate(text))
    assert Decimal(spoofed) == number  # Python would read it as the same number
    rule = {
        "is_active": True,
        "max_amount_per_loan": "5000.00",
        "min_loan_amount": "10000.00",
        "max_loan_amount": "500000.00",
        "allowed_grades": ["A"],
        "min_rate": "12",
        "max_term_months": 24,
        "reinvest_returns": False,
    }
    fields: list[tuple[Any, dict[str, Any], str]] = [
        (CalculatorIn, {"amount": "1000", "rate_annual": "10", "term_months": 12}, "amount"),
        (CalculatorIn, {"amount": "1000", "rate_annual": "10", "term_months": 12}, "rate_annual"),
        (DepositIn, {"amount": "1"}, "amount"),
        (ProfileIn, {"monthly_income": "1", "monthly_obligations": "0", "employment_months": 1}, "monthly_income"),
        (AutoInvestRuleIn, rule, "min_rate"),
        (AutoInvestRuleIn, rule, "max_portfolio_share_percent"),
        (ProductTerms, STANDARD.model_dump(mode="json"), "rates_by_grade.C"),
        (ProductTerms, STANDARD.model_dump(mode="json"), "max_investor_share_percent"),
    ]
    for model, valid, field in fields:
        model.model_validate_json(json.dumps(_with_field(valid, field, text)))
        with pytest.raises(ValidationError):
            model.model_validate_json(json.dumps(_with_field(valid, field, spoofed), ensure_ascii=False))
