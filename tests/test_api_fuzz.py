"""Schemathesis against the app's own OpenAPI document: generated requests to every
operation, as a borrower, an investor and an operator, never get a 500, and every answer
is documented (status, media type, headers) and matches its schema.

Twice: every operation against the app with Temporal unreachable (routes that need it
answer a documented 503), and the routes that talk to a loan workflow against the platform
as `make run` runs it (the API in uvicorn, a worker, the real dev server and PostgreSQL), on
real loans in funding, active and awaiting review, so that every generated request gets
the workflow's real answer, and none is a 5xx."""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import sessionmaker

from api.main import create_app
from api.routers.users import create_user
from core.db import unit_of_work
from core.security import issue_access_token
from core.settings import Settings
from products.catalog import STANDARD
from runner.ports import free_port
from tests.codec_keys import TEST_PAYLOAD_KEY_ID, TEST_PAYLOAD_KEYS
from tests.ledger_helpers import assert_books_balance


def no_internal_error(ctx, response, case) -> bool | None:
    """No 500s. A 503 is documented (Temporal is unreachable in this test) and is not a bug."""
    if response.status_code >= 500 and response.status_code != 503:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}: {response.text[:300]}")
    return None


CHECKS = [
    no_internal_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ROLES = ("borrower", "investor", "operator")


@pytest.fixture
def fuzz_tokens(settings, session_factory) -> dict[str, str]:
    tokens = {}
    with unit_of_work(session_factory) as session:
        for role in ROLES:
            user = create_user(session, f"fuzz-{role}-{uuid.uuid4().hex[:6]}@example.com", "fuzz password 123", role)
            tokens[role] = issue_access_token(settings, user.id, role, 0)[0]
    return tokens


class _TestsApp:
    """The schema is loaded once, when this module is imported; each test then sends its
    requests to an app on its own fresh database."""

    def __init__(self) -> None:
        self.app: Any = create_app(
            Settings(
                _env_file=None,
                DATABASE_URL="postgresql+psycopg://unused@localhost/unused",
                JWT_SECRET=secrets.token_urlsafe(48),
                PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
                PAYLOAD_ENCRYPTION_KEY_ID=TEST_PAYLOAD_KEY_ID,
            )
        )

    async def __call__(self, scope, receive, send) -> None:
        await self.app(scope, receive, send)


_current = _TestsApp()
schema = schemathesis.openapi.from_asgi("/openapi.json", _current)


@pytest.fixture
def app_on_test_database(settings, seeded):
    _current.app = create_app(settings)
    yield
    _current.app.state.engine.dispose()


@schema.parametrize()
# Derandomized: `make test` sends the same requests every run, so a red run is this change's.
# FUZZ_RANDOM=1 explores new ones (and FUZZ_EXAMPLES more of them).
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "15")),
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, fuzz_tokens, app_on_test_database):
    for role in ROLES:
        case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_tokens[role]}"}, checks=CHECKS)


# -- the same, through a real Temporal: the routes that talk to a loan workflow --------------------
WORKFLOW_ROUTES = (
    r"^/v1/loans($|/\{loan_id\}($|/(investments|early-repayment|schedule|trail|trail\.pdf)$))"
    r"|^/v1/operator/loans/|^/v1/operator/deposits/\{deposit_id\}/confirm$|^/health$"
)
live_schema = schemathesis.openapi.from_dict(_current.app.openapi()).include(path_regex=WORKFLOW_ROUTES)
LIVE_OPERATIONS = {
    (method.upper(), path)
    for path, methods in _current.app.openapi()["paths"].items()
    for method in methods
    if re.search(WORKFLOW_ROUTES, path)
}


def no_server_error(ctx, response, case) -> bool | None:
    """Everything is up: no 5xx of any kind, 503 included."""
    if response.status_code >= 500:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}: {response.text[:300]}")
    return None


def _body(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# An answer only the workflow behind the route gives: the run must reach each route's workflow
# at least once, or it fuzzed only the checks in front of it. (The deposit's signal is checked
# in the loan's history, below: the route answers 200 whether or not a loan was signalled.)
REACHED = {
    ("POST", "/v1/loans"): lambda r: r.status_code == 201,  # a workflow started
    ("POST", "/v1/loans/{loan_id}/investments"): lambda r: r.status_code == 201,  # the invest update took it
    # repay_early answered: repaid, or refused by the workflow itself (not "its workflow has ended")
    ("POST", "/v1/loans/{loan_id}/early-repayment"): lambda r: (
        r.status_code == 200
        or (
            r.status_code == 409
            and (_body(r).get("reason") == "LoanNotActive" or _body(r).get("type", "").endswith("insufficient-funds"))
        )
    ),
    ("POST", "/v1/operator/loans/{loan_id}/decision"): lambda r: r.status_code == 200,  # the decide update
    ("GET", "/v1/operator/loans/{loan_id}/live"): lambda r: r.status_code == 200,  # the snapshot query
    # joined to the workflow's history, not the audit log alone
    ("GET", "/v1/loans/{loan_id}/trail"): lambda r: r.status_code == 200 and _body(r).get("history_available") is True,
}
assert set(REACHED) <= LIVE_OPERATIONS, "a route the live run must reach is not in it"


LIVE_CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass
class LivePlatform:
    base_url: str
    tokens: dict[str, str]
    loans: dict[str, str]  # what the loan is doing -> its id
    deposits: list[str]  # the borrower's deposits awaiting an operator
    calls: itertools.count = field(default_factory=itertools.count)
    operations: set[tuple[str, str]] = field(default_factory=set)
    reached: set[tuple[str, str]] = field(default_factory=set)

    def path_parameters(self, case) -> dict[str, Any]:
        """Real ids where the workflow behind them answers, each case the next loan (and
        deposit) in turn, so every role meets every loan; other path parameters as generated."""
        n = next(self.calls)
        chosen = dict(case.path_parameters or {})
        if "loan_id" in chosen:
            chosen["loan_id"] = list(self.loans.values())[n % len(self.loans)]
        if "deposit_id" in chosen:
            chosen["deposit_id"] = self.deposits[n % len(self.deposits)]
        return chosen


def _wait_for_loan(api: httpx.Client, loan_id: str, headers: dict, done, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = api.get(f"/v1/loans/{loan_id}", headers=headers).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


async def _signals_received(address: str, loan_id: str) -> int:
    from temporalio.client import Client

    from tests.codec_keys import test_data_converter

    client = await Client.connect(address, data_converter=test_data_converter())
    history = await client.get_workflow_handle(f"loan-{loan_id}").fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
        and e.workflow_execution_signaled_event_attributes.signal_name == "funds_arrived"
    )


@pytest.fixture(scope="module")
def live_platform(postgres, temporal_dev_server, tmp_path_factory) -> Iterator[LivePlatform]:
    """One platform for the whole live fuzz run: a database of its own, the worker and the
    API in their own processes, and loans in every state a workflow route acts on."""
    from core.db import make_engine
    from runner.seed import seed
    from runner.temporal import register_search_attributes
    from tests.loan_helpers import give_money
    from tests.worker_process import api_process, worker_process

    async def search_attributes() -> None:
        from temporalio.client import Client

        await register_search_attributes(await Client.connect(temporal_dev_server), "default")

    asyncio.run(search_attributes())
    tmp = tmp_path_factory.mktemp("live-fuzz")
    url = postgres.new_database()
    settings = Settings(
        _env_file=None,
        ENVIRONMENT="test",
        DATABASE_URL=postgres.app_url_for(url.rpartition("/")[2]),
        DATA_DIR=tmp / "data",
        JWT_SECRET=secrets.token_urlsafe(48),
        TEMPORAL_ADDRESS=temporal_dev_server,
        TASK_QUEUE=f"fuzz-{uuid.uuid4().hex[:8]}",
        PAYLOAD_ENCRYPTION_KEYS=TEST_PAYLOAD_KEYS,
        PAYLOAD_ENCRYPTION_KEY_ID=TEST_PAYLOAD_KEY_ID,
        SIGNUPS_PER_ADDRESS_PER_HOUR=100_000,
        ANONYMOUS_POSTS_PER_ADDRESS_PER_MINUTE=100_000,
    )
    engine = make_engine(url, 5)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    try:
        with unit_of_work(factory) as session:
            seed(session, settings)
        ids: dict[str, uuid.UUID] = {}
        with unit_of_work(factory) as session:
            for name, role in (
                ("borrower", "borrower"),
                ("investor", "investor"),
                ("operator", "operator"),
                ("second_investor", "investor"),
            ):
                ids[name] = create_user(
                    session, f"live-{name}-{uuid.uuid4().hex[:6]}@example.com", "fuzz password 123", role
                ).id
        tokens = {
            name: issue_access_token(settings, user_id, role, 0)[0]
            for (name, user_id), role in zip(ids.items(), ("borrower", "investor", "operator", "investor"))
        }
        for name in ("investor", "second_investor"):
            give_money(factory, ids[name], "1000000")
        with (
            worker_process(settings, tmp / "worker.log"),
            api_process(settings, tmp / "api.log", free_port()) as base_url,
            httpx.Client(base_url=base_url, timeout=30) as api,
        ):
            auth = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
            assert (
                api.put(
                    "/v1/users/me/profile",
                    json={"monthly_income": "10000000.00", "monthly_obligations": "0", "employment_months": 120},
                    headers=auth["borrower"],
                ).status_code
                == 200
            )
            product = {**STANDARD.model_dump(mode="json"), "code": "reviewed", "requires_manual_approval": True}
            assert api.post("/v1/operator/products", json=product, headers=auth["operator"]).status_code == 201

            def ask(amount: str, term: int, product: str = "standard") -> str:
                created = api.post(
                    "/v1/loans",
                    json={"product": product, "amount": amount, "term_months": term, "purpose": "fuzz"},
                    headers=auth["borrower"],
                )
                assert created.status_code == 201, created.text
                return created.json()["id"]

            active, funding, review = ask("20000.00", 3), ask("5000000.00", 36), ask("100000.00", 12, "reviewed")
            _wait_for_loan(api, active, auth["borrower"], lambda b: b["status"] == "funding")
            for name in ("investor", "second_investor"):
                invested = api.post(f"/v1/loans/{active}/investments", json={"amount": "10000.00"}, headers=auth[name])
                assert invested.status_code == 201, invested.text
            _wait_for_loan(api, active, auth["borrower"], lambda b: b["status"] == "active")
            _wait_for_loan(api, funding, auth["borrower"], lambda b: b["status"] == "funding")
            _wait_for_loan(api, review, auth["borrower"], lambda b: b["status"] == "scoring" and b["risk_grade"])
            deposits = []
            for amount in ("5000.00", "7000.00", "9000.00"):
                deposit = api.post("/v1/wallets/deposits", json={"amount": amount}, headers=auth["borrower"])
                assert deposit.status_code == 201, deposit.text
                deposits.append(deposit.json()["id"])
            platform = LivePlatform(
                base_url=base_url,
                tokens={role: tokens[role] for role in ROLES},
                loans={"active": active, "funding": funding, "awaiting review": review},
                deposits=deposits,
            )
            yield platform
            with factory() as session:
                assert_books_balance(session)
            if platform.operations == LIVE_OPERATIONS:  # the whole live run (not a -k subset of it)
                assert sorted(set(REACHED) - platform.reached) == [], "never answered by the workflow"
                signalled = asyncio.run(_signals_received(temporal_dev_server, active))
                assert signalled >= 1, "no confirmed deposit signalled the borrower's active loan"
    finally:
        engine.dispose()
        postgres.drop(url)


@live_schema.parametrize()
@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "10")),
    deadline=None,
    derandomize=os.environ.get("FUZZ_RANDOM") != "1",
    suppress_health_check=list(HealthCheck),
)
def test_workflow_routes_answer_as_documented_on_a_real_temporal(case, live_platform):
    case.path_parameters = live_platform.path_parameters(case)
    operation = (case.method.upper(), case.operation.path)
    live_platform.operations.add(operation)
    for role in ROLES:
        response = case.call_and_validate(
            base_url=live_platform.base_url,
            checks=LIVE_CHECKS,
            headers={"Authorization": f"Bearer {live_platform.tokens[role]}"},
        )
        if operation in REACHED and REACHED[operation](response):
            live_platform.reached.add(operation)


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _objects(spec: dict, schema: dict, seen: set[str]):
    """Every object schema reachable from a request body schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return
        seen.add(name)
    schema = _resolve(spec, schema)
    if schema.get("type") == "object" and "properties" in schema:
        yield schema
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _objects(spec, sub, seen)
    for sub in schema.get("properties", {}).values():
        yield from _objects(spec, sub, seen)
    if isinstance(schema.get("items"), dict):
        yield from _objects(spec, schema["items"], seen)


def test_request_bodies_refuse_unknown_fields_and_pages_are_capped():
    """No mass assignment (OWASP API3): every JSON body, and every object inside one, forbids
    fields it does not name. No unbounded reads (API4): every page size has a maximum."""
    spec = _current.app.openapi()
    open_bodies, uncapped, checked = [], [], 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                for obj in _objects(spec, content["application/json"]["schema"], set()):
                    checked += 1
                    if obj.get("additionalProperties") is not False:
                        open_bodies.append(f"{method.upper()} {path}: {obj.get('title')}")
            for parameter in operation.get("parameters", []):
                if parameter["name"] in ("limit", "offset", "before"):
                    checked += 1
                    bounds = [
                        s for s in parameter["schema"].get("anyOf", [parameter["schema"]]) if s.get("type") == "integer"
                    ]
                    if not bounds or any("maximum" not in s for s in bounds):
                        uncapped.append(f"{method.upper()} {path}: {parameter['name']}")
    assert checked > 30  # the walk found the bodies and the page parameters
    assert open_bodies == []
    assert uncapped == []


def test_text_with_a_nul_character_is_refused_not_a_500(client, operator):
    """Found by the fuzzer: PostgreSQL cannot store NUL, wherever the text comes from."""
    login = client.post("/v1/auth/token", data={"username": "a\x00@example.com", "password": "whatever"})
    assert login.status_code == 422 and "NUL" in login.json()["detail"]
    assert client.get("/v1/products/stan%00dard").status_code == 422
    investor = client.post(
        "/v1/users", json={"email": "nul@example.com", "password": "long enough \x00 pw", "role": "investor"}
    )
    assert investor.status_code == 422 and investor.json()["errors"][0]["field"] == "password"
    rules = client.get("/v1/operator/scoring-rules", headers=operator.headers).json()["rules"]
    changed = client.put(
        "/v1/operator/scoring-rules", json={"rules": rules, "note": "bad \x00 note"}, headers=operator.headers
    )
    assert changed.status_code == 422
    # inside the rules document (JSONB), past the request schema's own checks
    rules["debt_to_income_percent"][0]["label"] = "a light \x00 debt load"
    changed = client.put(
        "/v1/operator/scoring-rules", json={"rules": rules, "note": "label with NUL"}, headers=operator.headers
    )
    assert changed.status_code == 422, changed.text
