"""Short-lived access tokens with rotating refresh tokens, blocking and deleting users, and
login limits: growing delays per account and address, per account from unknown addresses,
per address; proxy headers believed only from trusted proxies."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from api.client_address import forwarded_client, limited_as
from api.main import create_app
from auth.login_limits import begin_attempt, finish_attempt, growing_delay
from core.db import unit_of_work
from core.errors import TooManyRequests
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
    for _ in range(settings.LOGIN_FREE_FAILURES):
        assert _login(client, victim.email, "wrong password!").status_code == 401
    limited = _login(client, victim.email, victim.password)  # even the right password waits
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert limited.json()["retry_after_seconds"] >= 1
    # another account from the same address is not held back by this one
    assert _login(client, bystander.email, bystander.password).status_code == 200


def test_a_success_clears_the_accounts_failures(client, settings):
    account = sign_up(client, "borrower")
    for _ in range(2):
        for _ in range(settings.LOGIN_FREE_FAILURES - 1):
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
    assert answers.count(401) == settings.LOGIN_FREE_FAILURES
    assert answers.count(429) == 16 - settings.LOGIN_FREE_FAILURES


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


def _from(settings, address: str) -> TestClient:
    """A client whose connections come from `address` (the peer uvicorn would see)."""
    return TestClient(create_app(settings), client=(address, 40000))


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(settings):
    # The bypass: one address naming a new X-Forwarded-For on every guess.
    strict = settings.model_copy(update={"LOGIN_MAX_FAILURES_PER_ADDRESS": 4})
    with _from(strict, "198.51.100.7") as client:
        for n in range(4):
            headers = {"X-Forwarded-For": f"10.9.8.{n}"}
            answer = client.post(
                "/v1/auth/token", data={"username": f"u{n}@example.com", "password": "x"}, headers=headers
            )
            assert answer.status_code == 401
        spoofed = client.post(
            "/v1/auth/token",
            data={"username": "u9@example.com", "password": "x"},
            headers={"X-Forwarded-For": "10.9.8.77"},
        )
        assert spoofed.status_code == 429


def test_the_client_behind_a_trusted_proxy_is_the_rightmost_untrusted_hop():
    trusted = ("10.0.0.0/8",)
    # what a client wrote itself stays on the left; our proxies append what they saw
    assert forwarded_client("10.0.0.2", ["6.6.6.6, 203.0.113.5, 10.0.0.3"], trusted) == "203.0.113.5"
    assert forwarded_client("10.0.0.2", ["6.6.6.6", "203.0.113.5"], trusted) == "203.0.113.5"
    assert forwarded_client("198.51.100.1", ["203.0.113.5"], trusted) == "198.51.100.1"  # not our proxy
    assert forwarded_client("10.0.0.2", [], trusted) == "10.0.0.2"
    assert forwarded_client("10.0.0.2", ["203.0.113.5"], ()) == "10.0.0.2"  # no proxies trusted
    # an IPv6 subscriber rotating through their /64 is one address to the limits
    assert limited_as("2001:db8:1:2::1") == limited_as("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limited_as("2001:db8:1:3::1") != limited_as("2001:db8:1:2::1")
    assert limited_as("::ffff:203.0.113.5") == "203.0.113.5" and limited_as("203.0.113.5") == "203.0.113.5"


def test_proxies_named_in_the_setting_give_the_clients_address(settings):
    behind = settings.model_copy(update={"TRUSTED_PROXIES": ["10.0.0.0/8"], "LOGIN_MAX_FAILURES_PER_ADDRESS": 3})
    with _from(behind, "10.0.0.2") as proxy:
        for n in range(3):
            assert (
                proxy.post(
                    "/v1/auth/token",
                    data={"username": f"p{n}@example.com", "password": "x"},
                    headers={"X-Forwarded-For": "203.0.113.5"},
                ).status_code
                == 401
            )
        refused = {"username": "p9@example.com", "password": "x"}
        assert proxy.post("/v1/auth/token", data=refused, headers={"X-Forwarded-For": "203.0.113.5"}).status_code == 429
        # another client behind the same proxy is its own address
        assert proxy.post("/v1/auth/token", data=refused, headers={"X-Forwarded-For": "203.0.113.6"}).status_code == 401


def test_the_owner_logs_in_while_an_attacker_is_throttled(settings):
    with _from(settings, "203.0.113.9") as home:
        owner = sign_up(home, "investor")
        with _from(settings, "198.51.100.7") as attacker:
            answers = [
                _login(attacker, owner.email, f"guess {n}").status_code for n in range(settings.LOGIN_FREE_FAILURES + 3)
            ]
            assert answers[: settings.LOGIN_FREE_FAILURES] == [401] * settings.LOGIN_FREE_FAILURES
            assert set(answers[settings.LOGIN_FREE_FAILURES :]) == {429}
            # the owner, from their own address (never logged in before, even), is not held back
            assert _login(home, owner.email, owner.password).status_code == 200
            # and the attacker's wait was not cleared by the owner's success
            assert _login(attacker, owner.email, owner.password).status_code == 429


def test_guessing_spread_over_many_addresses_is_bounded_but_spares_the_owners_address(settings):
    spread = settings.model_copy(update={"LOGIN_FREE_FAILURES_PER_ACCOUNT": 6})
    with _from(spread, "203.0.113.9") as home:
        owner = sign_up(home, "investor")
        assert _login(home, owner.email, owner.password).status_code == 200  # home is known now
        for n in range(6):  # one guess from each of many addresses: none hits its own delay
            with _from(spread, f"198.51.100.{n + 10}") as bot:
                assert _login(bot, owner.email, "a guess").status_code == 401
        with _from(spread, "198.51.100.99") as new_bot:
            assert _login(new_bot, owner.email, owner.password).status_code == 429
        assert _login(home, owner.email, owner.password).status_code == 200


def test_the_address_an_account_signed_up_from_is_known_before_its_first_login(settings):
    spread = settings.model_copy(update={"LOGIN_FREE_FAILURES_PER_ACCOUNT": 3})
    email, password = f"new-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery"
    with _from(spread, "203.0.113.20") as home:
        body = {"email": email, "password": password, "role": "investor"}
        assert home.post("/v1/users", json=body).status_code == 201
        for n in range(3):  # guesses from elsewhere, before the owner ever logged in
            with _from(spread, f"198.51.100.{n + 40}") as bot:
                assert _login(bot, email, "a guess").status_code == 401
        with _from(spread, "198.51.100.99") as new_bot:
            assert _login(new_bot, email, password).status_code == 429
        assert _login(home, email, password).status_code == 200


def test_each_wait_doubles_and_ends(session_factory, settings):
    settings = settings.model_copy(update={"LOGIN_FIRST_DELAY_SECONDS": 2})  # (every `now` is given here)
    email, address = f"{uuid.uuid4().hex[:8]}@example.com", "192.0.2.1"
    start = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    free, first = settings.LOGIN_FREE_FAILURES, settings.LOGIN_FIRST_DELAY_SECONDS

    def attempt(at: datetime) -> None:
        attempt_id = begin_attempt(session_factory, settings, email, address, at)
        finish_attempt(session_factory, settings, attempt_id, email, address, False, at)

    now = start
    for _ in range(free):
        attempt(now)
    for n in range(3):
        wait = first * 2**n
        with pytest.raises(TooManyRequests) as refused:
            begin_attempt(session_factory, settings, email, address, now + timedelta(seconds=wait - 1))
        assert refused.value.extra["retry_after_seconds"] == 1
        now += timedelta(seconds=wait)
        attempt(now)
    # the window passes: free again
    now += timedelta(minutes=settings.LOGIN_WINDOW_MINUTES, seconds=1)
    attempt(now)


def test_growing_delay_is_capped():
    assert growing_delay(4, 5, 2, 900) == 0
    assert [growing_delay(n, 5, 2, 900) for n in (5, 6, 7)] == [2, 4, 8]
    assert growing_delay(10**6, 5, 2, 900) == 900
