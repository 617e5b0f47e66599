"""Deposits, withdrawals, the statement and the trial balance through the API."""

from __future__ import annotations

import pytest

from tests.api_helpers import sign_up
from tests.ledger_helpers import snapshot


def deposit(client, account, operator, amount: str, **headers) -> dict:
    created = client.post("/v1/wallets/deposits", json={"amount": amount}, headers={**account.headers, **headers})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "pending"
    confirmed = client.post(f"/v1/operator/deposits/{created.json()['id']}/confirm", headers=operator.headers)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "confirmed"
    return confirmed.json()


def test_deposit_is_pending_until_an_operator_confirms(client, operator):
    investor = sign_up(client, "investor")
    created = client.post("/v1/wallets/deposits", json={"amount": "1500.50"}, headers=investor.headers)
    assert created.status_code == 201 and created.json()["status"] == "pending"
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["balance"] == "0.00"
    pending = client.get("/v1/operator/deposits", headers=operator.headers).json()
    assert [d["id"] for d in pending] == [created.json()["id"]]
    url = f"/v1/operator/deposits/{created.json()['id']}/confirm"
    assert client.post(url, headers=investor.headers).status_code == 403
    assert client.post(url, headers=operator.headers).status_code == 200
    assert client.post(url, headers=operator.headers).status_code == 200  # idempotent: no second credit
    wallet = client.get("/v1/wallets/me", headers=investor.headers).json()
    assert wallet == {**wallet, "balance": "1500.50", "reserved": "0.00", "available": "1500.50"}
    rejected = client.post(
        f"/v1/operator/deposits/{created.json()['id']}/reject",
        json={"reason": "no such payment"},
        headers=operator.headers,
    )
    assert rejected.status_code == 409


def test_withdrawal_reserves_then_pays_out_or_releases(client, operator):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "1000.00")
    first = client.post("/v1/wallets/withdrawals", json={"amount": "600.00"}, headers=investor.headers)
    assert first.status_code == 201 and first.json()["status"] == "pending"
    wallet = client.get("/v1/wallets/me", headers=investor.headers).json()
    assert (wallet["balance"], wallet["reserved"], wallet["available"]) == ("1000.00", "600.00", "400.00")
    too_much = client.post("/v1/wallets/withdrawals", json={"amount": "400.01"}, headers=investor.headers)
    assert too_much.status_code == 409 and too_much.json()["type"].endswith("insufficient-funds")
    second = client.post("/v1/wallets/withdrawals", json={"amount": "400.00"}, headers=investor.headers)
    assert second.status_code == 201
    paid = client.post(f"/v1/operator/withdrawals/{first.json()['id']}/pay", headers=operator.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    rejected = client.post(
        f"/v1/operator/withdrawals/{second.json()['id']}/reject",
        json={"reason": "account closed"},
        headers=operator.headers,
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert (
        client.post(f"/v1/operator/withdrawals/{second.json()['id']}/pay", headers=operator.headers).status_code == 409
    )
    wallet = client.get("/v1/wallets/me", headers=investor.headers).json()
    assert (wallet["balance"], wallet["reserved"], wallet["available"]) == ("400.00", "0.00", "400.00")


def test_statement_has_balance_after_each_line_and_pages(client, operator):
    borrower = sign_up(client, "borrower")
    deposit(client, borrower, operator, "100.00")
    deposit(client, borrower, operator, "50.25")
    client.post("/v1/wallets/withdrawals", json={"amount": "30.00"}, headers=borrower.headers)
    page = client.get("/v1/wallets/me/transactions?limit=2", headers=borrower.headers).json()
    lines = page["items"]
    assert [(x["kind"], x["amount"], x["balance_after"], x["available_after"], x["reserved_after"]) for x in lines] == [
        ("withdrawal_reserve", "0.00", "150.25", "120.25", "30.00"),
        ("deposit", "50.25", "150.25", "150.25", "0.00"),
    ]
    older = client.get(
        f"/v1/wallets/me/transactions?limit=2&before={page['next_before']}", headers=borrower.headers
    ).json()
    assert [(x["kind"], x["balance_after"]) for x in older["items"]] == [("deposit", "100.00")]
    assert older["next_before"] is None
    assert client.get("/v1/wallets/me/transactions?limit=5000", headers=borrower.headers).status_code == 422


@pytest.mark.parametrize(
    "amount", ["-5", "0", "0.00", "1.001", "1e3", "10000000000", "abc", "", "NaN", "Infinity", True, None, [], {"v": 1}]
)
def test_bad_amounts_are_422_and_nothing_is_posted(client, operator, session_factory, amount):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "100.00")
    with session_factory() as session:
        before = snapshot(session)
    for path in ("/v1/wallets/deposits", "/v1/wallets/withdrawals"):
        response = client.post(path, json={"amount": amount}, headers=investor.headers)
        assert response.status_code == 422, (amount, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert any(e["field"] == "amount" for e in response.json()["errors"])
    with session_factory() as session:
        assert snapshot(session) == before


def test_idempotency_key_replays_the_first_answer(client, operator, session_factory):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "500.00")
    headers = {**investor.headers, "Idempotency-Key": "withdraw-2026-11-22-1"}
    first = client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers)
    again = client.post("/v1/wallets/withdrawals", json={"amount": "100.00"}, headers=headers)
    assert first.status_code == 201 and again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.content == first.content
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/v1/wallets/withdrawals", json={"amount": "101.00"}, headers=headers)
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")
    assert client.get("/v1/wallets/me", headers=investor.headers).json()["reserved"] == "100.00"


def test_someone_elses_wallet_and_deposit_are_not_found(client, operator):
    alice, bob = sign_up(client, "investor"), sign_up(client, "investor")
    created = client.post("/v1/wallets/deposits", json={"amount": "10.00"}, headers=alice.headers).json()
    assert client.get(f"/v1/wallets/deposits/{created['id']}", headers=bob.headers).status_code == 404
    assert client.get(f"/v1/wallets/deposits/{created['id']}", headers=alice.headers).status_code == 200
    alice_wallet = client.get("/v1/wallets/me", headers=alice.headers).json()["id"]
    assert client.get(f"/v1/wallets/{alice_wallet}", headers=bob.headers).status_code == 404
    assert client.get(f"/v1/wallets/{alice_wallet}", headers=operator.headers).status_code == 200
    assert client.get("/v1/wallets/00000000-0000-0000-0000-000000000000", headers=alice.headers).status_code == 404
    assert client.get("/v1/wallets/not-a-uuid", headers=alice.headers).status_code == 422
    assert (
        client.post(
            "/v1/operator/deposits/00000000-0000-0000-0000-000000000000/confirm", headers=operator.headers
        ).status_code
        == 404
    )


def test_trial_balance_is_zero_and_for_operators_and_compliance_only(client, operator, compliance):
    investor = sign_up(client, "investor")
    deposit(client, investor, operator, "250.00")
    client.post("/v1/wallets/withdrawals", json={"amount": "50.00"}, headers=investor.headers)
    for staff in (operator, compliance):
        report = client.get("/v1/operator/ledger/trial-balance", headers=staff.headers)
        assert report.status_code == 200
        body = report.json()
        assert body["total"] == "0.00" and body["balanced"] is True
        assert body["totals_by_kind"]["nominal"] == "-250.00"
        assert body["totals_by_kind"]["wallet_reserved"] == "50.00"
    assert client.get("/v1/operator/ledger/trial-balance", headers=investor.headers).status_code == 403
    assert client.get("/v1/operator/ledger/trial-balance").status_code == 401
