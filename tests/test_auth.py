from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import SecretStr
from sqlalchemy import select, update

from core.errors import Unauthorized
from core.security import decode_access_token, issue_access_token
from models.ledger import LedgerAccount, Wallet
from models.users import User
from tests.api_helpers import login, sign_up


def test_registration_creates_user_and_wallet(client, session_factory):
    response = client.post(
        "/v1/users", json={"email": "Ann@Example.com", "password": "long enough pw", "role": "investor"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["email"] == "ann@example.com" and body["role"] == "investor"
    with session_factory() as session:
        user = session.scalars(select(User).where(User.email == "ann@example.com")).one()
        assert user.password_hash.startswith("$argon2id$")
        assert "long enough pw" not in user.password_hash
        wallet = session.scalars(select(Wallet).where(Wallet.user_id == user.id)).one()
        kinds = sorted(
            a.kind for a in session.scalars(select(LedgerAccount).where(LedgerAccount.wallet_id == wallet.id))
        )
        assert kinds == ["wallet_available", "wallet_reserved"]


def test_duplicate_email_is_409(client):
    body = {"email": "dup@example.com", "password": "long enough pw", "role": "borrower"}
    assert client.post("/v1/users", json=body).status_code == 201
    again = client.post("/v1/users", json={**body, "email": "DUP@example.com"})
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


def test_bad_input_names_the_field_and_unknown_fields_are_refused(client):
    bad = client.post("/v1/users", json={"email": "not-an-email", "password": "long enough pw", "role": "investor"})
    assert bad.status_code == 422
    problem = bad.json()
    assert problem["status"] == 422 and any(e["field"] == "email" for e in problem["errors"])
    staff = client.post("/v1/users", json={"email": "x@example.com", "password": "long enough pw", "role": "operator"})
    assert staff.status_code == 422 and any(e["field"] == "role" for e in staff.json()["errors"])
    extra = client.post(
        "/v1/users",
        json={
            "email": "y@example.com",
            "password": "long enough pw",
            "role": "investor",
            "is_qualified_investor": True,
        },
    )
    assert extra.status_code == 422 and any(e["field"] == "is_qualified_investor" for e in extra.json()["errors"])
    short = client.post("/v1/users", json={"email": "z@example.com", "password": "short", "role": "investor"})
    assert short.status_code == 422


def test_login_and_me(client):
    account = sign_up(client, "borrower")
    me = client.get("/v1/users/me", headers=account.headers)
    assert me.status_code == 200 and me.json()["id"] == account.id


def test_wrong_password_and_unknown_email_get_the_same_401(client):
    account = sign_up(client, "investor")
    wrong = client.post("/v1/auth/token", data={"username": account.email, "password": "not the password"})
    unknown = client.post("/v1/auth/token", data={"username": "nobody@example.com", "password": "whatever123"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]


def test_no_token_and_garbage_token_are_401(client):
    assert client.get("/v1/users/me").status_code == 401
    assert client.get("/v1/users/me", headers={"Authorization": "Bearer garbage"}).status_code == 401


def test_expired_token_is_refused(client, settings):
    account = sign_up(client, "investor")
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    token, _ = issue_access_token(settings, account.id, "investor", 0, now=long_ago)
    response = client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_token_signed_with_another_secret_is_refused(client, settings):
    account = sign_up(client, "investor")
    now = datetime.now(UTC)
    forged = jwt.encode(
        {
            "sub": account.id,
            "role": "operator",
            "tv": 0,
            "typ": "access",
            "iat": int(now.timestamp()),
            "exp": int((now + timedelta(minutes=5)).timestamp()),
        },
        "another-secret-another-secret-another-secret",
        algorithm="HS256",
    )
    assert client.get("/v1/users/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401


def test_a_token_verified_once_is_still_refused_when_it_expires(client, settings):
    """The process remembers tokens it has verified (core/security.py); the expiry is checked
    on every use all the same."""
    account = sign_up(client, "investor")
    lifetime = timedelta(minutes=settings.ACCESS_TOKEN_MINUTES)
    token, _ = issue_access_token(
        settings, account.id, "investor", 0, now=datetime.now(UTC) - lifetime + timedelta(seconds=4)
    )
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/users/me", headers=headers).status_code == 200
    time.sleep(max(expires - time.time(), 0) + 0.2)
    expired = client.get("/v1/users/me", headers=headers)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


def test_a_token_verified_once_stops_working_when_revoked_or_blocked(client, session_factory):
    """Remembering a verified token never skips the user's check: a revocation (token_version)
    or a block takes effect at the next call."""
    revoked, blocked = sign_up(client, "investor"), sign_up(client, "investor")
    for account in (revoked, blocked):
        assert client.get("/v1/users/me", headers=account.headers).status_code == 200
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == revoked.id).values(token_version=User.token_version + 1))
        session.execute(update(User).where(User.id == blocked.id).values(is_active=False))
    for account in (revoked, blocked):
        assert client.get("/v1/users/me", headers=account.headers).status_code == 401


def test_a_token_verified_under_one_secret_is_not_taken_under_another(settings):
    """A rotated secret: what the old one verified counts for nothing under the new one."""
    token, _ = issue_access_token(settings, uuid.uuid4(), "investor", 0)
    assert decode_access_token(settings, token).role == "investor"
    rotated = settings.model_copy(update={"JWT_SECRET": SecretStr("a rotated secret, a rotated secret, rotated!!")})
    with pytest.raises(Unauthorized):
        decode_access_token(rotated, token)
    assert decode_access_token(settings, token).role == "investor"


def test_blocked_user_token_stops_working(client, session_factory):
    account = sign_up(client, "investor")
    with session_factory.begin() as session:
        session.execute(update(User).where(User.id == account.id).values(is_active=False))
    assert client.get("/v1/users/me", headers=account.headers).status_code == 401
    assert (
        client.post("/v1/auth/token", data={"username": account.email, "password": account.password}).status_code == 401
    )


def test_role_that_may_not_call_operator_route_is_403(client, operator):
    investor = sign_up(client, "investor")
    body = {"email": "clerk@example.com", "password": "a staff password", "role": "compliance"}
    denied = client.post("/v1/operator/users", json=body, headers=investor.headers)
    assert denied.status_code == 403
    assert denied.headers["content-type"].startswith("application/problem+json")
    allowed = client.post("/v1/operator/users", json=body, headers=operator.headers)
    assert allowed.status_code == 201
    assert login(client, "clerk@example.com", "a staff password")


def test_profile_is_for_borrowers_and_validated(client):
    borrower = sign_up(client, "borrower")
    ok = client.put(
        "/v1/users/me/profile",
        headers=borrower.headers,
        json={"monthly_income": "120000.00", "monthly_obligations": "15000", "employment_months": 30},
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["monthly_income"] == "120000.00"
    negative = client.put(
        "/v1/users/me/profile",
        headers=borrower.headers,
        json={"monthly_income": "-1", "monthly_obligations": "0", "employment_months": 3},
    )
    assert negative.status_code == 422
    investor = sign_up(client, "investor")
    assert (
        client.put(
            "/v1/users/me/profile",
            headers=investor.headers,
            json={"monthly_income": "1", "monthly_obligations": "0", "employment_months": 3},
        ).status_code
        == 403
    )
