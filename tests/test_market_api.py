"""The secondary market's API without the workflow: who may list what, at which terms, the
reasons for a refusal, cancelling, the listings buyers see, the refusals a purchase meets
before it reaches the loan, listings closing by themselves, and who reads an assignment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from core.db import unit_of_work
from documents.assignments import ASSIGNMENT_AGREEMENT
from documents.register import register_document
from documents.store import DocumentStore
from investing.market import close_listings_if_untradeable
from models.loans import Investment, LoanRequest, RepaymentInstallment
from models.market import MarketListing
from models.records import AuditRecord
from products.service import change_product, current_product, terms_of
from tests.api_helpers import sign_up
from tests.loan_helpers import active_loan_in_db, give_money

D = Decimal


@pytest.fixture
def market(client, seeded, session_factory):
    """An active loan of 14,000 (two installments of 7,000 + 900 unpaid) held by one investor,
    on a product whose holdings may be listed at once."""
    with unit_of_work(session_factory) as session:
        terms = terms_of(current_product(session, "standard"))
        change_product(session, "standard", terms.model_copy(update={"market_min_holding_days": 0}))
    borrower = sign_up(client, "borrower")
    profile = {"monthly_income": "150000.00", "monthly_obligations": "0.00", "employment_months": 36}
    assert client.put("/v1/users/me/profile", json=profile, headers=borrower.headers).status_code == 200
    seller = sign_up(client, "investor")
    buyer = sign_up(client, "investor")
    loan_id = active_loan_in_db(session_factory, uuid.UUID(borrower.id), [uuid.UUID(seller.id)])
    with session_factory() as session:
        (holding,) = session.scalars(select(Investment.id).where(Investment.loan_id == loan_id))
    return {"loan": loan_id, "holding": holding, "seller": seller, "buyer": buyer, "borrower": borrower}


def _list(client, m, principal="5000.00", price="98.50", key=None, who="seller"):
    headers = m[who].headers | ({"Idempotency-Key": key} if key else {})
    return client.post(
        "/v1/market/listings",
        json={"investment_id": str(m["holding"]), "principal": principal, "price_percent": price},
        headers=headers,
    )


def test_a_holding_is_listed_once_and_seen_by_buyers_priced_today(client, market):
    listed = _list(client, market, key="l-1")
    assert listed.status_code == 201, listed.text
    assert (listed.json()["remaining_principal"], listed.json()["mine"]) == ("5000.00", True)
    assert _list(client, market, key="l-1").json()["id"] == listed.json()["id"]  # the same key: the same listing
    again = _list(client, market, principal="1000.00")
    assert again.status_code == 409 and "already listed" in again.json()["detail"]
    (seen,) = client.get("/v1/market/listings", headers=market["buyer"].headers).json()
    assert seen["id"] == listed.json()["id"] and seen["mine"] is False and seen["investment_id"] is None
    assert seen["price"] == "4925.00" and seen["remaining_installments"] == 2
    # the next installment's interest on the part sold (900.00 x 5,000 / 14,000), all accrued:
    # its due date has passed
    assert seen["accrued_interest"] == "321.43"
    assert D(seen["buyer_pays"]) == D(seen["price"]) + D(seen["accrued_interest"])
    assert client.get("/v1/market/listings", headers=market["borrower"].headers).status_code == 403


@pytest.mark.parametrize(
    ("principal", "price", "words"),
    [
        ("5000.00", "120.00", "price"),
        ("13500.00", "100.00", "leaves"),
        ("14000.01", "100.00", "14000.00"),
        ("500.00", "100.00", "1000.00"),
    ],
)
def test_bad_terms_are_422_with_the_rule(client, market, principal, price, words):
    answer = _list(client, market, principal=principal, price=price)
    assert answer.status_code == 422, answer.text
    assert words in answer.json()["detail"]


def test_a_loan_that_cannot_be_traded_is_409_with_its_reason(client, market, session_factory):
    with unit_of_work(session_factory) as session:
        session.execute(
            update(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == market["loan"], RepaymentInstallment.payment_num == 1)
            .values(status="overdue")
        )
    answer = _list(client, market)
    assert answer.status_code == 409 and "overdue" in answer.json()["detail"]
    with unit_of_work(session_factory) as session:
        session.execute(
            update(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == market["loan"], RepaymentInstallment.payment_num == 1)
            .values(status="paid")
        )
    answer = _list(client, market)
    assert answer.status_code == 409 and "last installment" in answer.json()["detail"]
    with unit_of_work(session_factory) as session:
        session.execute(update(LoanRequest).where(LoanRequest.id == market["loan"]).values(status="defaulted"))
        session.execute(update(Investment).where(Investment.id == market["holding"]).values(status="defaulted"))
    answer = _list(client, market)
    assert answer.status_code == 409 and "defaulted" in answer.json()["detail"]


def test_a_holding_is_kept_the_products_minimum_days_before_it_is_listed(client, market, session_factory):
    with unit_of_work(session_factory) as session:
        terms = terms_of(current_product(session, "standard"))
        change_product(session, "standard", terms.model_copy(update={"market_min_holding_days": 30}))
        loan = session.get_one(LoanRequest, market["loan"])
        # the loan keeps the version it was made under: point it at the new one for this test
        loan.product_id = current_product(session, "standard").id
        session.execute(
            update(Investment)
            .where(Investment.id == market["holding"])
            .values(acquired_at=datetime.now(UTC) - timedelta(days=29))
        )
    answer = _list(client, market)
    assert answer.status_code == 409 and "held 30 days" in answer.json()["detail"]
    with unit_of_work(session_factory) as session:
        session.execute(
            update(Investment)
            .where(Investment.id == market["holding"])
            .values(acquired_at=datetime.now(UTC) - timedelta(days=31))
        )
    assert _list(client, market).status_code == 201


def test_only_the_seller_cancels_and_only_an_open_listing(client, market):
    listing = _list(client, market).json()["id"]
    assert client.delete(f"/v1/market/listings/{listing}", headers=market["buyer"].headers).status_code == 404
    cancelled = client.delete(f"/v1/market/listings/{listing}", headers=market["seller"].headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get("/v1/market/listings", headers=market["buyer"].headers).json() == []
    assert _list(client, market).status_code == 201  # listed again once the first is off


def test_a_purchase_is_refused_before_the_loan_when_it_cannot_be_paid(client, market):
    listing = _list(client, market).json()["id"]
    url = f"/v1/market/listings/{listing}/purchase"
    own = client.post(url, json={}, headers=market["seller"].headers)
    assert own.status_code == 409 and "own listing" in own.json()["detail"]
    small = client.post(url, json={"principal": "999.99"}, headers=market["buyer"].headers)
    assert small.status_code == 422
    poor = client.post(url, json={}, headers=market["buyer"].headers)
    assert poor.status_code == 409 and poor.json()["type"].endswith("insufficient-funds")


def test_a_purchase_counts_toward_the_annual_limit(client, market, session_factory):
    from models.auto_invest import InvestorYearTotal

    listing = _list(client, market).json()["id"]
    buyer = uuid.UUID(market["buyer"].id)
    give_money(session_factory, buyer, "10000")
    with unit_of_work(session_factory) as session:
        session.add(InvestorYearTotal(investor_id=buyer, year=datetime.now(UTC).year, invested=D("597000.00")))
    answer = client.post(f"/v1/market/listings/{listing}/purchase", json={}, headers=market["buyer"].headers)
    assert answer.status_code == 409 and answer.json()["type"].endswith("annual-limit-exceeded")


def test_listings_close_by_themselves_when_the_loan_cannot_be_traded(client, market, session_factory):
    listing = uuid.UUID(_list(client, market).json()["id"])
    with unit_of_work(session_factory) as session:
        assert close_listings_if_untradeable(session, market["loan"]) == 0  # still tradeable
        session.execute(
            update(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == market["loan"], RepaymentInstallment.payment_num == 1)
            .values(status="overdue")
        )
        assert close_listings_if_untradeable(session, market["loan"]) == 1
    with session_factory() as session:
        closed = session.get_one(MarketListing, listing)
        assert (closed.status, closed.close_reason) == ("closed", "an installment of the loan is overdue")
        actions = session.scalars(select(AuditRecord.action).where(AuditRecord.loan_id == market["loan"])).all()
        assert "market.listed" in actions and "market.listing_closed" in actions


def test_an_assignment_is_read_by_its_parties_and_staff_not_the_borrower(
    client, market, session_factory, settings, operator
):
    with unit_of_work(session_factory) as session:
        document, _ = register_document(
            session,
            DocumentStore(settings.documents_dir),
            kind=ASSIGNMENT_AGREEMENT,
            subject_key="trade:test:seller",
            loan_id=market["loan"],
            owner_id=uuid.UUID(market["seller"].id),
            render=lambda: b"%PDF-1.4 an assignment",
        )
    url = f"/v1/documents/{document.id}"
    assert client.get(url, headers=market["seller"].headers).status_code == 200
    assert client.get(url, headers=operator.headers).status_code == 200
    assert client.get(url, headers=market["borrower"].headers).status_code == 404
    listed = client.get(f"/v1/loans/{market['loan']}/documents", headers=market["borrower"].headers).json()
    assert str(document.id) not in {d["id"] for d in listed}


def test_a_listing_larger_than_what_is_still_owed_is_not_sold_and_closes(client, market, session_factory):
    """Listed whole, then a collection pays part of the holding: the listing offers more than is
    owed. Buyers no longer see it, a purchase is a 409 (never a crash), and the loan's next
    collection closes it."""
    from models.loans import InvestmentInstallment

    listing = _list(client, market, principal="14000.00").json()["id"]
    with unit_of_work(session_factory) as session:
        session.execute(
            update(InvestmentInstallment)
            .where(InvestmentInstallment.investment_id == market["holding"], InvestmentInstallment.payment_num == 1)
            .values(received_principal=D("1000.00"))
        )
    assert client.get("/v1/market/listings", headers=market["buyer"].headers).json() == []
    give_money(session_factory, uuid.UUID(market["buyer"].id), "20000")
    bought = client.post(f"/v1/market/listings/{listing}/purchase", json={}, headers=market["buyer"].headers)
    assert bought.status_code == 409, bought.text
    with unit_of_work(session_factory) as session:
        assert close_listings_if_untradeable(session, market["loan"]) == 1
    with session_factory() as session:
        closed = session.get_one(MarketListing, uuid.UUID(listing))
        assert closed.status == "closed" and "list it again" in (closed.close_reason or "")


def _settle(session_factory, m, listing_id: str, principal: str, max_buyer_pays: str | None = None):
    """The trade as the loan's workflow settles it (its activity's body), today."""
    from investing.market import settle_trade
    from models.loan_workflow import SettleTradeInput

    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        return settle_trade(
            session,
            SettleTradeInput(
                trade_id=uuid.uuid4(),
                listing_id=uuid.UUID(listing_id),
                buyer_id=uuid.UUID(m["buyer"].id),
                principal=D(principal),
                loan_id=m["loan"],
                on=now.date(),
                traded_at=now,
                time_zone="UTC",
                max_buyer_pays=None if max_buyer_pays is None else D(max_buyer_pays),
            ),
        )


def test_a_purchase_past_the_share_one_investor_may_hold_is_409(client, market, session_factory):
    """The product's cap on one investor's share of a loan (50% of 14,000) holds on the market
    as in primary funding: refused before the loan is asked, and again at settlement."""
    from core.errors import Conflict

    listing = _list(client, market, principal="14000.00").json()["id"]
    give_money(session_factory, uuid.UUID(market["buyer"].id), "20000")
    url = f"/v1/market/listings/{listing}/purchase"
    whole = client.post(url, json={}, headers=market["buyer"].headers)
    assert whole.status_code == 409, whole.text
    assert "at most 50% of this loan (7000.00); you hold 0.00, so at most 7000.00 more" in whole.json()["detail"]
    with pytest.raises(Conflict, match="at most 50% of this loan"):
        _settle(session_factory, market, listing, "14000.00")
    settled = _settle(session_factory, market, listing, "7000.00")  # exactly the cap: taken
    assert settled.principal == D("7000.00")
    with pytest.raises(Conflict, match="you hold 7000.00, so at most 0.00 more"):
        _settle(session_factory, market, listing, "7000.00")
    with session_factory() as session:
        assert session.get_one(MarketListing, uuid.UUID(listing)).remaining_principal == D("7000.00")


def test_a_purchase_costing_more_than_the_buyer_accepts_is_409_and_moves_nothing(client, market, session_factory):
    listing = _list(client, market).json()["id"]
    give_money(session_factory, uuid.UUID(market["buyer"].id), "10000")
    (seen,) = client.get("/v1/market/listings", headers=market["buyer"].headers).json()
    cost = D(seen["buyer_pays"])
    url = f"/v1/market/listings/{listing}/purchase"
    dear = client.post(url, json={"max_buyer_pays": f"{cost - D('0.01'):.2f}"}, headers=market["buyer"].headers)
    assert dear.status_code == 409, dear.text
    assert f"it costs {cost:.2f} today" in dear.json()["detail"]
    from core.errors import Conflict

    with pytest.raises(Conflict, match="more than the"):
        _settle(session_factory, market, listing, "5000.00", max_buyer_pays=f"{cost - D('0.01'):.2f}")
    assert _settle(session_factory, market, listing, "5000.00", max_buyer_pays=f"{cost:.2f}").buyer_pays == cost
    wallet = client.get("/v1/wallets/me", headers=market["buyer"].headers).json()
    assert D(wallet["available"]) == D("10000") - cost  # paid once, for the one trade


def test_each_investor_sees_their_own_listings_in_any_status_and_their_trades(client, market, session_factory):
    first = _list(client, market).json()["id"]
    assert client.delete(f"/v1/market/listings/{first}", headers=market["seller"].headers).status_code == 200
    second = _list(client, market, principal="6000.00", price="101.00").json()["id"]
    give_money(session_factory, uuid.UUID(market["buyer"].id), "10000")
    settled = _settle(session_factory, market, second, "2000.00")

    mine = client.get("/v1/market/listings/mine", headers=market["seller"].headers).json()
    assert [(m["id"], m["status"]) for m in mine] == [(second, "open"), (first, "cancelled")]  # newest first
    assert mine[1]["close_reason"] == "cancelled by the seller" and mine[1]["closed_at"] is not None
    assert mine[0]["remaining_principal"] == "4000.00" and mine[0]["investment_id"] == str(market["holding"])
    assert (mine[0]["for_sale_today"], mine[1]["for_sale_today"]) == (True, False)
    (seen,) = client.get("/v1/market/listings", headers=market["buyer"].headers).json()
    assert (mine[0]["price"], mine[0]["buyer_pays"]) == (seen["price"], seen["buyer_pays"])  # as buyers see it
    assert mine[1]["price"] is None
    only_open = client.get("/v1/market/listings/mine?status=open", headers=market["seller"].headers).json()
    assert [m["id"] for m in only_open] == [second]
    closed = client.get(
        "/v1/market/listings/mine?status=sold&status=cancelled&status=closed", headers=market["seller"].headers
    ).json()
    assert [m["id"] for m in closed] == [first]
    assert client.get("/v1/market/listings/mine", headers=market["buyer"].headers).json() == []
    assert client.get("/v1/market/listings/mine?status=gone", headers=market["seller"].headers).status_code == 422

    (sold,) = client.get("/v1/market/trades", headers=market["seller"].headers).json()
    (bought,) = client.get("/v1/market/trades", headers=market["buyer"].headers).json()
    assert sold["id"] == bought["id"] == str(settled.trade_id)
    assert (sold["side"], sold["investment_id"]) == ("sold", str(market["holding"]))
    assert (bought["side"], bought["investment_id"]) == ("bought", str(settled.buyer_investment_id))
    assert D(sold["seller_gets"]) == settled.seller_gets and D(bought["buyer_pays"]) == settled.buyer_pays
    assert D(sold["seller_gets"]) + D(sold["fee"]) == D(sold["buyer_pays"])
    stranger = sign_up(client, "investor")
    assert client.get("/v1/market/trades", headers=stranger.headers).json() == []
    assert client.get("/v1/market/trades", headers=market["borrower"].headers).status_code == 403
