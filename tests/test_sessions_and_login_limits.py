"""Short-lived access tokens with rotating refresh tokens, blocking and deleting users, and
login rate limits per account and per address."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient
from sqlalchemy import delete

from api.main import create_app
from core.db import unit_of_work
from models.access import RefreshToken
from models.users import User
from tests.api_helpers import sign_up
from tests.conftest import make_staff


def _login(client, email: str, password: str):
    return client.post("/v1/auth/token", data={"username": email, "password": password})


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_access_tokens_are_short_lived_and_refresh_rotates(client, settings):
    account = sign_up(client, "investor")
    first = _login(client, account.email, account.password).json()
    assert first["expires_in"] == settings.ACCESS_TOKEN_MINUTES * 60 <= 3600
    assert first["refresh_expires_in"] == settings.REFRESH_TOKEN_DAYS * 86400
    second = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200, second.text
    pair = second.json()
    assert pair["refresh_token"] != first["refresh_token"] and pair["access_token"] != first["access_token"]
    assert client.get("/v1/users/me", headers=_bearer(pair["access_token"])).json()["id"] == account.id
    # The spent token, sent again, is a copy: its whole family ends, the newer token too.
    reused = client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401 and "already used" in reused.json()["detail"]
    assert client.post("/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    # Another login is another family, untouched.
    other = _login(client, account.email, account.password).json()
    assert client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code == 200


def test_logout_ends_the_session_and_garbage_is_refused(client):
    account = sign_up(client, "borrower")
    tokens = _login(client, account.email, account.password).json()
    assert client.post("/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}).status_code == 204
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": "x" * 40}).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": "short"}).status_code == 422
    assert client.post("/v1/auth/refresh", json={"refresh_token": "x" * 40, "user_id": "me"}).status_code == 422
    # an access token is not a refresh token: a signed JWT (~300 characters) is refused by the
    # request's own validation (a refresh token is at most 200), before any lookup
    access = tokens["access_token"]
    assert len(access) > 200
    assert client.post("/v1/auth/refresh", json={"refresh_token": access}).status_code == 422


def test_a_blocked_user_is_out_at_once_and_stays_out_of_old_sessions(client, operator):
    account = sign_up(client, "investor")
    tokens = _login(client, account.email, account.password).json()
    investor = sign_up(client, "investor")
    assert (
        client.post(
            f"/v1/operator/users/{account.id}/block", json={"reason": "fraud review"}, headers=investor.headers
        ).status_code
        == 403
    )
    blocked = client.post(
        f"/v1/operator/users/{account.id}/block", json={"reason": "fraud review"}, headers=operator.headers
    )
    assert blocked.status_code == 200 and blocked.json()["is_active"] is False
    assert client.get("/v1/users/me", headers=_bearer(tokens["access_token"])).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    refused = _login(client, account.email, account.password)
    assert refused.status_code == 401 and refused.json()["detail"] == "wrong email or password"
    assert (
        client.post(
            f"/v1/operator/users/{operator.id}/block", json={"reason": "oops"}, headers=operator.headers
        ).status_code
        == 409
    )
    assert client.post(f"/v1/operator/users/{account.id}/unblock", headers=operator.headers).status_code == 200
    assert client.get("/v1/users/me", headers=_bearer(tokens["access_token"])).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    assert _login(client, account.email, account.password).status_code == 200


def test_a_deleted_users_tokens_stop_working(client, session_factory):
    clerk = make_staff(session_factory, "compliance", client)
    tokens = _login(client, clerk.email, clerk.password).json()
    with unit_of_work(session_factory) as session:
        session.execute(delete(User).where(User.id == clerk.id))
    assert client.get("/v1/users/me", headers=_bearer(tokens["access_token"])).status_code == 401
    assert client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code == 401
    with session_factory() as session:
        assert session.query(RefreshToken).filter(RefreshToken.user_id == clerk.id).count() == 0


def test_failed_logins_are_limited_per_account(client, settings):
    victim, bystander = sign_up(client, "investor"), sign_up(client, "investor")
    for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT):
        assert _login(client, victim.email, "wrong password!").status_code == 401
    limited = _login(client, victim.email, victim.password)  # even the right password waits
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["retry_after_seconds"] >= 1
    # another account from the same address is not held back by this one
    assert _login(client, bystander.email, bystander.password).status_code == 200


def test_a_success_clears_the_accounts_failures(client, settings):
    account = sign_up(client, "borrower")
    for _ in range(2):
        for _ in range(settings.LOGIN_MAX_FAILURES_PER_ACCOUNT - 1):
            assert _login(client, account.email, "wrong password!").status_code == 401
        assert _login(client, account.email, account.password).status_code == 200


def test_a_burst_of_parallel_guesses_gets_no_more_tries(client, settings):
    account = sign_up(client, "investor")
    answers: list[int] = []

    def guess() -> None:
        answers.append(_login(client, account.email, "a wrong guess").status_code)

    threads = [threading.Thread(target=guess) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers.count(401) == settings.LOGIN_MAX_FAILURES_PER_ACCOUNT
    assert answers.count(429) == 16 - settings.LOGIN_MAX_FAILURES_PER_ACCOUNT


def test_failed_logins_are_limited_per_address(settings):
    strict = settings.model_copy(update={"LOGIN_MAX_FAILURES_PER_ADDRESS": 4})
    with TestClient(create_app(strict)) as client:
        accounts = [sign_up(client, "investor") for _ in range(3)]
        # one address guessing at many accounts, each below its own limit
        for account in accounts[:2]:
            for _ in range(2):
                assert _login(client, account.email, "wrong password!").status_code == 401
        assert _login(client, accounts[2].email, accounts[2].password).status_code == 429
        assert _login(client, "nobody@example.com", "whatever").status_code == 429
