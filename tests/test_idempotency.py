"""Idempotency-Key on the POSTs that move money: replay, reuse with another body, in flight,
retention, and a refusal that leaves the key free."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from api.idempotency import claim_key, request_fingerprint
from core.db import unit_of_work
from models.access import IdempotencyRecord
from models.ledger import Deposit, Withdrawal
from tests.api_helpers import sign_up
from tests.test_wallet_api import deposit


def _withdrawals(session_factory, user_id) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Withdrawal).where(Withdrawal.user_id == user_id))


def test_same_key_same_body_replays_the_first_answer_byte_for_byte(client, operator, session_factory):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "500.00")
    headers = {**investor.headers, "Idempotency-Key": "w-1"}
    first = client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers)
    # the same JSON with other whitespace and key order is the same request
    again = client.post(
        "/v1/wallets/withdrawals",
        content=b'{ "amount" :  "100.00" }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert first.status_code == again.status_code == 201
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _withdrawals(session_factory, investor.id) == 1
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["reserved"] == "100.00"


def test_same_key_with_another_body_or_route_is_422_and_changes_nothing(client, operator, session_factory):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "500.00")
    headers = {**investor.headers, "Idempotency-Key": "w-2"}
    assert client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers).status_code == 201
    other_body = client.post("/v1/wallets/withdrawals", json={"amount": "100.01"}, headers=headers)
    other_route = client.post("/v1/wallets/deposits", json={"amount": "100.00"}, headers=headers)
    for response in (other_body, other_route):
        assert response.status_code == 422, response.text
        assert response.json()["type"].endswith("idempotency-key-reused")
        assert response.json()["first_used_for"] == "POST /v1/wallets/withdrawals"
    assert _withdrawals(session_factory, investor.id) == 1
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["reserved"] == "100.00"


def test_keys_belong_to_their_user(client, operator, session_factory):
    alice, bob = sign_up(client, "investor"), sign_up(client, "investor")
    a = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers={**alice.headers, "Idempotency-Key": "k"})
    b = client.post("/v1/wallets/deposits", json={"amount": "20.00"}, headers={**bob.headers, "Idempotency-Key": "k"})
    assert a.status_code == b.status_code == 201 and a.json()["id"] != b.json()["id"]
    assert b.json()["amount"] == "20.00"


def test_a_request_in_flight_holds_its_key_until_its_lease_ends(client, operator, session_factory, settings):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "500.00")
    body = b'{"amount":"50.00"}'
    # Another API process took the key for this very request and is still working on it.
    fingerprint = request_fingerprint("POST", "/v1/wallets/withdrawals", b"", body)
    assert (
        claim_key(
            session_factory,
            investor.id,
            "busy",
            fingerprint,
            "POST",
            "/v1/wallets/withdrawals",
            settings,
            datetime.now(UTC),
        )
        is None
    )
    headers = {**investor.headers, "Idempotency-Key": "busy", "Content-Type": "application/json"}
    busy = client.post("/v1/wallets/withdrawals", content=body, headers=headers)
    assert busy.status_code == 409 and busy.json()["type"].endswith("idempotency-key-in-flight")
    assert busy.headers["retry-after"] == "1"
    # A different request with that key is still 422, in flight or not.
    assert client.post("/v1/wallets/withdrawals", json={"amount": "51.00"}, headers=headers).status_code == 422
    assert _withdrawals(session_factory, investor.id) == 0
    # That process died: once its lease is over, the repeat takes the key over and is served.
    with unit_of_work(session_factory) as session:
        session.execute(update(IdempotencyRecord).values(locked_until=datetime.now(UTC) - timedelta(seconds=1)))
    taken_over = client.post("/v1/wallets/withdrawals", content=body, headers=headers)
    assert taken_over.status_code == 201, taken_over.text
    assert client.post("/v1/wallets/withdrawals", content=body, headers=headers).json() == taken_over.json()
    assert _withdrawals(session_factory, investor.id) == 1


def test_concurrent_repeats_make_one_withdrawal(client, operator, session_factory):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "500.00")
    headers = {**investor.headers, "Idempotency-Key": "rush"}
    answers: list = []

    def send() -> None:
        answers.append(client.post("/v1/wallets/withdrawals", json={"amount": "70.00"}, headers=headers))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {a.status_code for a in answers} <= {201, 409}
    created = [a for a in answers if a.status_code == 201]
    assert created and len({a.json()["id"] for a in created}) == 1
    assert _withdrawals(session_factory, investor.id) == 1
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["reserved"] == "70.00"


def test_a_refusal_keeps_nothing_and_the_key_can_be_sent_again(client, operator, session_factory):
    investor = sign_up(client, "investor")
    headers = {**investor.headers, "Idempotency-Key": "too-early"}
    refused = client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers)
    assert refused.status_code == 409 and refused.json()["type"].endswith("insufficient-funds")
    deposit(client, investor, operator, "100.00")
    accepted = client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers)
    assert accepted.status_code == 201 and "idempotent-replayed" not in accepted.headers


def test_keys_are_kept_a_day_then_may_be_used_afresh(client, operator, session_factory, settings):
    investor = sign_up(client, "investor")
    headers = {**investor.headers, "Idempotency-Key": "daily"}
    first = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers=headers)
    with session_factory() as session:
        record = session.scalars(select(IdempotencyRecord)).one()
        assert record.state == "completed" and record.expires_at - record.created_at >= timedelta(hours=24)
    with unit_of_work(session_factory) as session:
        session.execute(update(IdempotencyRecord).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    # Past retention the key is new again: a new deposit (the route's own client_key still
    # answers with the first deposit, so nothing is doubled by accident).
    later = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers=headers)
    assert later.status_code == 200 and later.json()["id"] == first.json()["id"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Deposit)) == 1


def test_operator_confirmation_replays_and_a_bad_key_is_422(client, operator, session_factory):
    investor = sign_up(client, "investor")
    created = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers=investor.headers).json()
    url = f"/v1/operator/deposits/{created['id']}/confirm"
    headers = {**operator.headers, "Idempotency-Key": "confirm-1"}
    first, again = client.post(url, headers=headers), client.post(url, headers=headers)
    assert first.status_code == again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["balance"] == "10.00"
    bad = client.post(
        "/v1/wallets/deposits", json={"amount": "1.00"}, headers={**investor.headers, "Idempotency-Key": "has space"}
    )
    assert bad.status_code == 422
