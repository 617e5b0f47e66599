"""The API's one-statement reads (core/direct_reads.py) and the hot routes that read the caller
with the resource in one statement (api/deps.py, CallerRead): the same answers, the same types,
the same rules as a session's read and get_current_user."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import select, update

from api.routers.loans import _loan_view_query
from core.db import unit_of_work
from core.direct_reads import DirectReads, ReadStatement
from core.security import issue_access_token
from ledger.wallets import own_wallet_query
from models.loan_status import LoanStatus
from models.loans import LoanRequest
from models.users import User
from tests.api_helpers import sign_up
from tests.test_exactly_once import funding_loan

HOT_READS = ("/v1/loans/{loan_id}", "/v1/wallets/me", "/v1/loans", "/v1/loans?status=funding&grade=A")


def _funding_loans(session_factory, client, count: int) -> list[uuid.UUID]:
    borrower = sign_up(client, "borrower")
    profile = {"monthly_income": "120000.00", "monthly_obligations": "0", "employment_months": 30}
    assert client.put("/v1/users/me/profile", headers=borrower.headers, json=profile).status_code == 200
    return [funding_loan(session_factory, uuid.UUID(borrower.id)) for _ in range(count)]


async def test_a_read_gives_what_a_session_gives_value_for_value_type_for_type(
    session_factory, seeded, client, database_url
):
    (loan_id,) = _funding_loans(session_factory, client, 1)
    investor = sign_up(client, "investor")
    params = {"loan_id": loan_id, "user_id": uuid.UUID(investor.id)}
    with session_factory() as session:
        expected = session.execute(_loan_view_query(), params).one()
        wallet_expected = session.execute(own_wallet_query(), {"user_id": uuid.UUID(investor.id)}).one()
    reads = DirectReads(database_url, pool_size=2)
    for pooled in (False, True):  # another loop's read (a connection of its own), then the pool's
        if pooled:
            await reads.start()
        try:
            got = await reads.one(ReadStatement(_loan_view_query()), params)
            wallet = await reads.one(ReadStatement(own_wallet_query()), {"user_id": uuid.UUID(investor.id)})
        finally:
            await reads.stop()
        assert tuple(got) == tuple(expected) and got._fields == tuple(expected._fields)
        assert [type(value) for value in got] == [type(value) for value in expected]
        assert type(got.status) is LoanStatus and got.status is LoanStatus.funding
        assert type(got.amount) is D and got.amount == D("20000.00") and got.invested is False
        assert tuple(wallet) == tuple(wallet_expected) and type(wallet.available) is D


def test_a_statement_refuses_parameters_it_does_not_have_or_misses():
    statement = ReadStatement(_loan_view_query())
    assert statement.required == {"loan_id", "user_id"}
    with pytest.raises(ValueError, match="missing"):
        statement.parameters({"loan_id": uuid.uuid4()})
    with pytest.raises(ValueError, match="unknown"):
        statement.parameters({"loan_id": uuid.uuid4(), "user_id": uuid.uuid4(), "extra": 1})
    with pytest.raises(ValueError, match="IN with a list"):
        ReadStatement(select(User.id).where(User.role.in_(["investor", "borrower"])))
    # A value the statement carries itself goes as a parameter, processed by its type.
    funding = ReadStatement(select(LoanRequest.id).where(LoanRequest.status == LoanStatus.funding))
    assert list(funding.parameters({}).values()) == ["funding"]


def test_the_hot_reads_refuse_a_revoked_a_blocked_or_an_unknown_caller_before_anything_else(
    client, session_factory, seeded, settings
):
    """401 comes first: before a 404 for a loan that does not exist, a 403 for a role."""
    revoked, blocked = sign_up(client, "investor"), sign_up(client, "investor")
    unknown, _ = issue_access_token(settings, uuid.uuid4(), "investor", 0)
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == revoked.id).values(token_version=User.token_version + 1))
        session.execute(update(User).where(User.id == blocked.id).values(is_active=False))
    for path in HOT_READS:
        url = path.format(loan_id=uuid.uuid4())
        for headers in (revoked.headers, blocked.headers, {"Authorization": f"Bearer {unknown}"}, {}):
            answer = client.get(url, headers=headers)
            assert answer.status_code == 401, (url, headers, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_the_user_s_role_decides_not_the_token_s(client, session_factory, seeded):
    """A token issued before the user's role changed reads as the user's role now."""
    loans = _funding_loans(session_factory, client, 2)
    investor = sign_up(client, "investor")
    assert {loan["id"] for loan in client.get("/v1/loans", headers=investor.headers).json()} >= {
        str(loan) for loan in loans
    }
    assert client.get("/v1/wallets/me", headers=investor.headers).status_code == 200
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == investor.id).values(role="operator"))
    as_operator = client.get("/v1/loans?limit=200", headers=investor.headers)
    assert as_operator.status_code == 200
    assert {str(loan) for loan in loans} <= {loan["id"] for loan in as_operator.json()}
    assert all(loan["purpose"] == "x" for loan in as_operator.json() if loan["id"] in {str(n) for n in loans})
    assert client.get("/v1/wallets/me", headers=investor.headers).status_code == 403
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == investor.id).values(role="seller"))
    assert client.get("/v1/loans", headers=investor.headers).json() == []
    for filters in ("status=funding", "grade=A&product=standard", "status=repaid&limit=5&offset=5"):
        assert client.get(f"/v1/loans?{filters}", headers=investor.headers).json() == [], filters
    assert client.get(f"/v1/loans/{loans[0]}", headers=investor.headers).status_code == 404


def test_the_funding_list_keeps_its_order_and_its_pages(client, session_factory, seeded):
    loans = _funding_loans(session_factory, client, 5)
    investor = sign_up(client, "investor")
    with session_factory() as session:
        expected = [
            str(loan_id)
            for loan_id in session.scalars(
                select(LoanRequest.id)
                .where(LoanRequest.status == "funding")
                .order_by(LoanRequest.created_at.desc(), LoanRequest.id)
            )
        ]
    assert set(map(str, loans)) <= set(expected)
    pages = [
        [loan["id"] for loan in client.get(f"/v1/loans?limit=2&offset={offset}", headers=investor.headers).json()]
        for offset in range(0, len(expected) + 2, 2)
    ]
    assert [loan for page in pages for loan in page] == expected
    assert pages[-1] == []
    one = client.get(f"/v1/loans/{loans[0]}", headers=investor.headers).json()
    assert one["status"] == "funding" and one["purpose"] is None and one["amount"] == "20000.00"
    borrower = sign_up(client, "borrower")
    assert client.get("/v1/loans", headers=borrower.headers).json() == []  # (none of their own)


def test_a_wallet_read_is_for_wallet_owners(client, operator, seeded, session_factory):
    assert client.get("/v1/wallets/me", headers=operator.headers).status_code == 403
    investor = sign_up(client, "investor")
    mine = client.get("/v1/wallets/me", headers=investor.headers).json()
    assert mine["available"] == "0.00" and mine["type"] == "investor"
    with unit_of_work(session_factory) as session:
        session.execute(update(User).where(User.id == investor.id).values(role="compliance"))
    assert client.get("/v1/wallets/me", headers=investor.headers).status_code == 403


def test_a_dead_caller_hears_401_before_anything_about_an_invalid_request(client, session_factory, seeded):
    """FastAPI checks a route's parameters after its dependencies: the routes that check their
    caller in their own read answer a revoked caller 401, not 422, as get_current_user's do."""
    revoked = sign_up(client, "investor")
    for url in ("/v1/loans/not-a-uuid", "/v1/loans?limit=0", "/v1/loans?status=bogus", "/v1/wallets/me?x=1"):
        assert client.get(url, headers=revoked.headers).status_code in (200, 422), url
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == revoked.id).values(token_version=User.token_version + 1))
    for url in ("/v1/loans/not-a-uuid", "/v1/loans?limit=0", "/v1/loans?status=bogus"):
        answer = client.get(url, headers=revoked.headers)
        assert answer.status_code == 401, (url, answer.text)


def test_the_borrower_filter_follows_the_user_s_role_not_the_token_s(client, session_factory, seeded, operator):
    (loan_id,) = _funding_loans(session_factory, client, 1)
    with session_factory() as session:
        borrower_id = session.get_one(LoanRequest, loan_id).borrower_id
    promoted = sign_up(client, "investor")
    assert client.get(f"/v1/loans?borrower={borrower_id}", headers=promoted.headers).status_code == 403
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == promoted.id).values(role="compliance"))
    allowed = client.get(f"/v1/loans?borrower={borrower_id}", headers=promoted.headers)
    assert allowed.status_code == 200 and [loan["id"] for loan in allowed.json()] == [str(loan_id)]
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == operator.id).values(role="investor"))
    assert client.get(f"/v1/loans?borrower={borrower_id}", headers=operator.headers).status_code == 403


async def test_a_caller_read_gives_the_route_a_session_s_types(session_factory, seeded, client, database_url, settings):
    """What the routes get from CallerRead: the caller as a User, the rows typed as a session
    types them (a LoanStatus, Decimals, aware datetimes)."""
    from api.deps import CallerRead
    from api.routers.loans import _LOAN_OUT_COLUMNS
    from core.security import decode_access_token

    loans = _funding_loans(session_factory, client, 3)
    investor = sign_up(client, "investor")
    claims = decode_access_token(settings, investor.token)
    view = CallerRead(_loan_view_query())
    listing = CallerRead(
        select(*_LOAN_OUT_COLUMNS).where(
            LoanRequest.id.in_(select(LoanRequest.id).where(LoanRequest.status == "funding"))
        ),
        order=[(LoanRequest.created_at, True), (LoanRequest.id, False)],
        paged=True,
    )
    reads = DirectReads(database_url, pool_size=2)
    user, (row,) = await view.read(reads, claims, {"loan_id": loans[0], "user_id": claims.user_id})
    assert isinstance(user, User) and str(user.id) == investor.id and user.role == "investor"
    assert type(row.status) is LoanStatus and type(row.amount) is D and row.created_at.tzinfo is not None
    with session_factory() as session:
        expected = session.execute(_loan_view_query(), {"loan_id": loans[0], "user_id": claims.user_id}).one()
    assert tuple(row) == tuple(expected)
    _, rows = await listing.read(reads, claims, {"limit": 200, "offset": 0})
    with session_factory() as session:
        expected_rows = session.execute(
            select(*_LOAN_OUT_COLUMNS)
            .where(LoanRequest.status == "funding")
            .order_by(LoanRequest.created_at.desc(), LoanRequest.id)
        ).all()
    assert [tuple(r) for r in rows] == [tuple(r) for r in expected_rows] and len(rows) >= 3
    _, none = await view.read(reads, claims, {"loan_id": uuid.uuid4(), "user_id": claims.user_id})
    assert none == []
    with pytest.raises(ValueError, match="caller_id"):
        await view.read(reads, claims, {"loan_id": loans[0], "user_id": claims.user_id, "caller_id": uuid.uuid4()})
