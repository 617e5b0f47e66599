"""Financing modalities through the API: the calculator's "I can pay X a month" for every
modality, simulations and requests made from them, an award credit's request (its asset,
seller and down payment), plans and their refusals, sellers, award events and bids. The
workflows' side is tests/test_financing_modalities.py."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.db import unit_of_work
from domain.money import KOPEK
from domain.purchase_plan import AwardEntry, decide_award, event_seed
from models.plan_workflow import AwardEventInput, CollectContributionInput, StartPlanInput
from models.plans import PurchasePlan
from plans import award_events, money
from plans.requests import PlanAsk, create_plan
from plans.trail import plan_records
from products.catalog import VEHICLE_PLAN
from products.service import create_product, current_product, schedule_of
from tests.api_helpers import login, sign_up
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import balance_of, give_money, make_borrower

D = Decimal
PROFILE = {"monthly_income": "400000", "monthly_obligations": "0", "employment_months": 60}


def borrower_with_profile(client):
    borrower = sign_up(client, "borrower")
    assert client.put("/v1/users/me/profile", json=PROFILE, headers=borrower.headers).status_code == 200
    return borrower


def register_seller(client, operator, name="AgroTech Dealer LLC") -> str:
    email = f"seller-{uuid.uuid4().hex[:6]}@example.com"
    answer = client.post(
        "/v1/operator/sellers",
        json={"email": email, "password": "seller password 123", "legal_name": name},
        headers=operator.headers,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def fund_wallet(client, operator, account, amount: str) -> None:
    deposit = client.post("/v1/wallets/deposits", json={"amount": amount}, headers=account.headers)
    assert deposit.status_code == 201, deposit.text
    assert (
        client.post(f"/v1/operator/deposits/{deposit.json()['id']}/confirm", headers=operator.headers).status_code
        == 200
    )


def fit(client, **body):
    return client.post("/v1/calculator/fit", json=body)


def test_i_can_pay_x_a_month_finds_the_largest_amount_and_the_shortest_term(client, seeded):
    answer = fit(client, product="standard", payment="10000.00", term_months=12, start_date="2027-01-15")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    assert found["solved"] == "amount" and found["modality"] == "loan"
    amount = D(found["amount"])
    # the answer fits, and a kopek more does not (at the product's highest rate, 29%)
    with unit_of_work_of(client) as session:
        product = current_product(session, "standard")
        start = date(2027, 1, 15)
        assert schedule_of(product, amount, D("29.00"), 12, start).highest_payment <= D("10000.00")
        assert schedule_of(product, amount + KOPEK, D("29.00"), 12, start).highest_payment > D("10000.00")
    assert max(D(r["total"]) for r in found["schedule"]["schedule"]) <= D("10000.00")
    # the term for an amount: the shortest that fits, at grade A's 14%
    term = fit(client, product="standard", payment="10000.00", amount="100000.00", risk_grade="A").json()
    assert term["solved"] == "term_months" and term["term_months"] == 11
    assert D(term["schedule"]["highest_monthly_burden"]) <= D("10000.00")
    # nothing fits: 422 with the reason
    refused = fit(client, product="standard", payment="100.00", term_months=12)
    assert refused.status_code == 422 and "does not fit" in refused.json()["detail"]
    both = fit(client, product="standard", payment="100.00", term_months=12, amount="10000.00")
    assert both.status_code == 422


def unit_of_work_of(client):
    return unit_of_work(client.app.state.sessionmaker)


def test_a_seasonal_plan_is_paid_only_in_its_months_and_fits_a_monthly_payment(client, seeded):
    found = fit(client, product="agro-seasonal", payment="50000.00", term_months=36, start_date="2027-01-10")
    assert found.status_code == 200, found.text
    schedule = found.json()["schedule"]
    assert schedule["method"] == "seasonal" and schedule["paying_months"] == [3, 9]
    dates = [date.fromisoformat(r["due_date"]) for r in schedule["schedule"]]
    assert {d.month for d in dates} == {3, 9} and len(dates) == 6
    assert sum(D(r["principal"]) for r in schedule["schedule"]) == D(found.json()["amount"])
    # a harvest payment carries the months since the one before: within 50,000 a month
    assert D(schedule["highest_monthly_burden"]) <= D("50000.00")
    assert max(D(r["total"]) for r in schedule["schedule"]) > D("50000.00")


def test_a_plan_fits_a_monthly_payment_in_contributions_and_its_award_credit(client, seeded):
    # the share rule: 30% of 600,000 at 20,000 a month is reached at the 9th contribution
    share = fit(client, product="vehicle-plan-share", payment="20000.00", amount="600000.00", loan_term_months=60)
    assert share.status_code == 200, share.text
    plan = share.json()["plan"]
    assert plan["contribution_months"] == 9 and plan["contributions_total"] == "180000.00"
    assert len(plan["contributions"]) == 9
    assert D(plan["award_credit_amount"]) + D(plan["down_payment"]) == D("600000.00")
    assert D(share.json()["schedule"]["highest_monthly_burden"]) <= D("20000.00")
    # the draw rule, months given: the largest price whose award credit at the plan's end fits
    draw = fit(client, product="vehicle-plan", payment="20000.00", term_months=24, loan_term_months=60)
    assert draw.status_code == 200, draw.text
    price = D(draw.json()["amount"])
    assert draw.json()["plan"]["contributions_total"] == "480000.00" and price > D("480000.00")
    too_dear = fit(client, product="vehicle-plan", payment="20000.00", amount=str(price * 3), loan_term_months=60)
    assert too_dear.status_code == 422
    no_term = fit(client, product="vehicle-plan", payment="20000.00", term_months=24)
    assert no_term.status_code == 422 and "loan_term_months" in no_term.text


def test_a_plan_is_asked_from_its_simulation(client, seeded, operator):
    borrower = borrower_with_profile(client)
    seller = register_seller(client, operator)
    simulation = client.post(
        "/v1/simulations",
        json={"product": "vehicle-plan", "payment": "20000.00", "term_months": 24, "loan_term_months": 60},
        headers=borrower.headers,
    )
    assert simulation.status_code == 201, simulation.text
    planned = simulation.json()["plan"]
    assert planned["contribution_months"] == 24
    asked = client.post(
        "/v1/plans",
        json={
            "simulation_id": simulation.json()["id"],
            "loan_term_months": 60,
            "asset": {"kind": "truck", "description": "KAMAZ 65115", "seller_id": seller},
        },
        headers={**borrower.headers, "Idempotency-Key": "plan-1"},
    )
    assert asked.status_code == 201, asked.text
    plan = client.get(f"/v1/plans/{asked.json()['id']}", headers=borrower.headers).json()
    # the simulation's result is the award credit's schedule; its plan, the contributions
    price = D(planned["award_credit_amount"]) + D(planned["down_payment"])
    assert simulation.json()["result"]["amount"] == planned["award_credit_amount"]
    assert (D(plan["asset_price"]), plan["monthly_contribution"], plan["contribution_months"]) == (
        price,
        "20000.00",
        24,
    )
    assert plan["status"] == "saving" and plan["award_rule"] == "draw"
    again = client.post(
        "/v1/plans",
        json={
            "simulation_id": simulation.json()["id"],
            "loan_term_months": 60,
            "asset": {"kind": "truck", "description": "KAMAZ 65115", "seller_id": seller},
        },
        headers={**borrower.headers, "Idempotency-Key": "plan-1"},
    )
    assert again.json()["id"] == asked.json()["id"]
    mine = client.get("/v1/plans", headers=borrower.headers).json()
    assert [p["id"] for p in mine] == [asked.json()["id"]]
    other = borrower_with_profile(client)
    assert client.get(f"/v1/plans/{plan['id']}", headers=other.headers).status_code == 404
    assert client.get("/v1/plans", headers=other.headers).json() == []


@pytest.mark.parametrize(
    ("change", "status", "said"),
    [
        ({"product": "standard"}, 422, "not a programmed purchase"),
        ({"monthly_contribution": "1000.00"}, 422, "never reach"),
        ({"asset": {"kind": "yacht"}}, 422, "not 'yacht'"),
        ({"asset": {"seller_id": str(uuid.uuid4())}}, 422, "no registered seller"),
        ({"asset": {"price": "20000000000.00"}}, 422, ""),
        ({"loan_term_months": 600}, 422, "would not fit"),
    ],
)
def test_what_a_plan_request_refuses(client, seeded, operator, change, status, said):
    borrower = borrower_with_profile(client)
    seller = register_seller(client, operator)
    body = {
        "product": "vehicle-plan-share",
        "asset": {"kind": "truck", "description": "KAMAZ 65115", "price": "600000.00", "seller_id": seller},
        "monthly_contribution": "20000.00",
        "contribution_months": 12,
        "loan_term_months": 36,
    }
    for key, value in change.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value
    answer = client.post("/v1/plans", json=body, headers=borrower.headers)
    assert answer.status_code == status, answer.text
    assert said in answer.text
    with unit_of_work_of(client) as session:
        assert session.scalar(select(PurchasePlan.id).where(PurchasePlan.borrower_id == uuid.UUID(borrower.id))) is None


def test_an_award_credit_request_holds_the_down_payment_or_is_refused_whole(client, seeded, operator):
    borrower = borrower_with_profile(client)
    seller = register_seller(client, operator)
    body = {
        "product": "vehicle-award-credit",
        "term_months": 24,
        "purpose": "a tractor",
        "asset": {
            "kind": "tractor",
            "description": "Belarus 82.1, 2024",
            "price": "500000.00",
            "down_payment": "100000.00",
            "seller_id": seller,
        },
    }
    # the wallet cannot hold the down payment and the withholding (112,000): nothing is made
    poor = client.post("/v1/loans", json=body, headers=borrower.headers)
    assert poor.status_code == 409 and "112000.00" in poor.text
    assert client.get("/v1/loans", headers=borrower.headers).json() == []
    for change, said in (
        ({"kind": "yacht"}, "not 'yacht'"),
        ({"down_payment": "10000.00"}, "at least 10%"),
        ({"seller_id": str(uuid.uuid4())}, "no registered seller"),
        ({"down_payment": "500000.00"}, "leave something to lend"),
    ):
        wrong = client.post("/v1/loans", json={**body, "asset": {**body["asset"], **change}}, headers=borrower.headers)
        assert wrong.status_code == 422 and said in wrong.text, wrong.text
    no_asset = client.post("/v1/loans", json={**body, "asset": None}, headers=borrower.headers)
    assert no_asset.status_code == 422 and "name the asset" in no_asset.text
    on_standard = client.post(
        "/v1/loans", json={**body, "product": "standard", "amount": "400000.00"}, headers=borrower.headers
    )
    assert on_standard.status_code == 422 and "names no asset" in on_standard.text
    plan_product = client.post("/v1/loans", json={**body, "product": "vehicle-plan"}, headers=borrower.headers)
    assert plan_product.status_code == 422 and "POST /v1/plans" in plan_product.text
    fund_wallet(client, operator, borrower, "120000.00")
    asked = client.post("/v1/loans", json=body, headers=borrower.headers)
    assert asked.status_code == 201, asked.text
    loan = client.get(f"/v1/loans/{asked.json()['id']}", headers=borrower.headers).json()
    assert loan["amount"] == "400000.00"
    assert loan["asset"] == {
        "kind": "tractor",
        "description": "Belarus 82.1, 2024",
        "price": "500000.00",
        "down_payment": "100000.00",
        "seller_id": seller,
        "plan_id": None,
    }
    assert client.get("/v1/wallets/me", headers=borrower.headers).json()["available"] == "8000.00"


def test_sellers_are_registered_by_operators_and_hold_a_wallet(client, seeded, operator):
    seller = register_seller(client, operator, "Tractor House LLC")
    listed = client.get("/v1/sellers", headers=sign_up(client, "borrower").headers).json()
    assert {"id": seller, "legal_name": "Tractor House LLC"} in listed
    assert (
        client.post(
            "/v1/users", json={"email": "x-seller@example.com", "password": "a password 1234", "role": "seller"}
        ).status_code
        == 422
    )  # nobody signs up as a seller
    with unit_of_work_of(client) as session:
        from ledger.accounts import wallet_of_user

        assert wallet_of_user(session, uuid.UUID(seller)).type == "seller"


def test_a_seller_reads_no_loans_not_even_the_award_credit_naming_it(client, seeded, operator):
    """A seller is paid for an asset; it is not a party to the loan: the list is empty for it,
    as each loan is 404 (not the purposes of every loan on the platform)."""
    email = f"seller-{uuid.uuid4().hex[:6]}@example.com"
    answer = client.post(
        "/v1/operator/sellers",
        json={"email": email, "password": "seller password 123", "legal_name": "Dealer LLC"},
        headers=operator.headers,
    )
    assert answer.status_code == 201, answer.text
    seller = {"Authorization": f"Bearer {login(client, email, 'seller password 123')}"}
    borrower = borrower_with_profile(client)
    fund_wallet(client, operator, borrower, "120000.00")
    asked = client.post(
        "/v1/loans",
        json={
            "product": "vehicle-award-credit",
            "term_months": 24,
            "purpose": "a tractor for the farm",
            "asset": {
                "kind": "tractor",
                "description": "Belarus 82.1",
                "price": "500000.00",
                "down_payment": "100000.00",
                "seller_id": answer.json()["id"],
            },
        },
        headers=borrower.headers,
    )
    assert asked.status_code == 201, asked.text
    assert client.get("/v1/loans", headers=borrower.headers).json() != []
    for status in (None, "pending", "scoring", "funding"):
        params = {"status": status} if status else {}
        listed = client.get("/v1/loans", params=params, headers=seller)
        assert listed.status_code == 200 and listed.json() == [], (status, listed.text)
    assert client.get(f"/v1/loans/{asked.json()['id']}", headers=seller).status_code == 404


def test_products_with_modalities_are_checked(client, seeded, operator):
    base = VEHICLE_PLAN.model_dump(mode="json")
    for change, said in (
        ({"code": "p1", "award_credit_product": "standard"}, "is not an award credit product"),
        ({"code": "p2", "award_rule": "share_reached"}, "award_share_percent"),
        ({"code": "p3", "asset_kinds": None}, "asset_kinds"),
        ({"code": "p4", "modality": "loan"}, "are for award credit products"),
        ({"code": "p5", "amortization_method": "seasonal"}, "paying_months"),
    ):
        answer = client.post("/v1/operator/products", json={**base, **change}, headers=operator.headers)
        assert answer.status_code == 422 and said in answer.text, (change, answer.text)


def test_a_bid_event_awards_the_highest_bid_its_wallet_holds(session_factory, seeded):
    """Two plans enter a bid event (the database's side, as its workflow runs it): the higher
    bid's wallet cannot hold it, so the lower one wins, paid into its plan; the outcome is
    decided again from the trail."""
    with unit_of_work(session_factory) as session:
        from models.users import User

        seller = User(email=f"s-{uuid.uuid4().hex[:6]}@example.com", password_hash="x", role="seller")
        session.add(seller)
        session.flush()
        from ledger.accounts import open_wallet
        from models.plans import Seller

        open_wallet(session, seller.id, "seller")
        session.add(Seller(user_id=seller.id, legal_name="Dealer"))
        create_product(session, VEHICLE_PLAN.model_copy(update={"code": "vehicle-plan-bid", "award_rule": "bid"}))
        seller_id = seller.id
    plans = []
    for bid, money_for_bid in (("60000.00", "0"), ("30000.00", "30000")):
        borrower = make_borrower(session_factory)
        give_money(session_factory, borrower, str(D("40000") + D(money_for_bid)))
        with unit_of_work(session_factory) as session:
            plan, _ = create_plan(
                session,
                borrower,
                PlanAsk("vehicle-plan-bid", "truck", "a truck", D("300000.00"), seller_id, D("20000.00"), 12, 36),
                simulation_id=None,
                client_key=None,
            )
            from domain.purchase_plan import contribution_schedule
            from models.plan_workflow import ContributionState

            planned = [
                ContributionState(number=c.number, due_date=c.due_date, amount=c.amount)
                for c in contribution_schedule(D("20000.00"), 12, date(2027, 1, 1))
            ]
            from datetime import UTC, datetime

            money.start_plan(
                session,
                StartPlanInput(
                    plan_id=plan.id, started_on=date(2027, 1, 1), contributions=planned, at=datetime.now(UTC)
                ),
            )
            for number in (1, 2):  # two contributions: enough to pay for the award credit
                paid = money.collect_contribution(
                    session,
                    CollectContributionInput(
                        plan_id=plan.id,
                        number=number,
                        amount=D("20000.00"),
                        late_fee=D("0.00"),
                        paid_on=date(2027, 1 + number, 1),
                    ),
                )
                assert paid.paid
            award_events.place_bid(session, plan.id, borrower, "2027-02", D(bid))
        plans.append((plan.id, borrower))
    (dear_plan, _), (cheap_plan, cheap_borrower) = plans
    with unit_of_work(session_factory) as session:
        from datetime import UTC, datetime

        held = award_events.hold_award_event(
            session, AwardEventInput(product_code="vehicle-plan-bid", period="2027-02"), datetime.now(UTC)
        )
    assert held.winner_plan_id == cheap_plan and held.entries == 2
    assert balance_of(session_factory, cheap_borrower).available == D("0.00")  # the bid was paid in
    with session_factory() as session:
        plan = session.get_one(PurchasePlan, cheap_plan)
        assert plan.contributed == D("70000.00") and plan.award_event_id == held.event_id
        record = next(r for r in plan_records(session, dear_plan) if r.action == "plan.award_event")
        dear = next(e for e in record.details["entries"] if e["plan_id"] == str(dear_plan))
        assert dear["bid"] == "0.00" and "did not hold it" in dear["bid_not_counted"]
        entries = [AwardEntry.from_record(e) for e in record.details["entries"]]
        seed = event_seed("vehicle-plan-bid", "2027-02", entries)
        assert seed == record.details["seed"]
        assert decide_award("bid", seed, entries).plan_id == str(cheap_plan)
    # the winner cannot be cancelled any more: its award (with its bid) goes on
    with unit_of_work(session_factory) as session, pytest.raises(Exception, match="won an award event"):
        from datetime import UTC, datetime

        from models.plan_workflow import CancelPlanInput

        money.cancel_plan(
            session, CancelPlanInput(plan_id=cheap_plan, reason="test", refund_percent=D("90"), at=datetime.now(UTC))
        )
    # the credit product changes before the winner is awarded: it cannot lend the award any
    # more, so the plan ends with everything back, its bid included
    with unit_of_work(session_factory) as session:
        from datetime import UTC, datetime

        from models.plan_workflow import AwardPlanInput
        from products.catalog import VEHICLE_AWARD_CREDIT
        from products.service import change_product

        change_product(
            session,
            "vehicle-award-credit",
            VEHICLE_AWARD_CREDIT.model_copy(update={"max_amount": D("100000.00"), "min_amount": D("50000.00")}),
        )
        refused = money.award_plan(
            session, AwardPlanInput(plan_id=cheap_plan, reason="award event won", at=datetime.now(UTC))
        )
    assert refused.loan is None and refused.refunded == D("70000.00") and "award credit unavailable" in refused.refused
    assert balance_of(session_factory, cheap_borrower).available == D("70000.00")
    with session_factory() as session:
        assert session.get_one(PurchasePlan, cheap_plan).status == "cancelled"
        assert_books_balance(session)
    # a bid for a month already held is refused
    with unit_of_work(session_factory) as session, pytest.raises(Exception, match="was held"):
        award_events.place_bid(session, dear_plan, plans[0][1], "2027-02", D("1000.00"))
