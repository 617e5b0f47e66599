"""Auto-invest on the secondary market: which listings a rule buys (the funding criteria on
the loan, its remaining installments as the term, a premium cap, never one's own listing),
how a listing wanted by several rules is shared (the same fairness as a funding loan, parts
and what is left at least the minimum investment), budgets and the 259-FZ limit charged what
a purchase costs, and a run on the dev server buying through the loan workflow's `trade`."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from temporalio.testing import ActivityEnvironment

from activities.auto_invest import AutoInvestActivities
from api.main import create_app
from core.db import unit_of_work
from domain.auto_invest import (
    COST_MARGIN,
    AutoInvestRule,
    FundingLoan,
    InvestorPosition,
    ListingOffer,
    affordable,
    allocate,
    allocate_listing,
    asked_on_market,
    cost_bound,
    listing_mismatch,
    plan_market,
    purchase_cost,
)
from domain.market import ShareRow, accrued_interest, price_of, settlement, split_holding
from investing.auto_invest import plan_run, planned_placements, positions, trade_id_of
from investing.market import cancel_listing
from models.auto_invest import AutoInvestAllocation
from models.auto_invest_io import AutoInvestInput, AutoInvestResult, PlaceAutoInvestmentsInput
from models.loan_workflow import TradeRequest
from models.loans import Investment
from models.market import MarketListing, MarketTrade
from models.users import User
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import balance_of, make_borrower, make_investor, running_worker, wait_for_agreements
from tests.test_auto_invest import give_rule
from tests.test_loan_api import bearer, fund_through_the_api, wait_loan_status
from tests.test_market import _holding, _tradeable_at_once
from workflows.auto_invest import AutoInvestWorkflow
from workflows.loan import LoanWorkflow

D = Decimal
SELLER = uuid.UUID(int=99)
OFFER = ListingOffer(
    listing_id=uuid.UUID(int=500),
    loan_id=uuid.UUID(int=1),
    seller_id=SELLER,
    loan_amount=D("100000.00"),
    available=D("20000.00"),
    price_percent=D("101.00"),
    accrued=D("80.00"),
    rate_annual=D("17.00"),
    grade="B",
    remaining_installments=10,
    min_investment=D("1000.00"),
    max_per_investor=D("50000.00"),
)
RULE = AutoInvestRule(
    investor_id=uuid.UUID(int=7),
    max_amount_per_loan=D("20000.00"),
    min_loan_amount=D("50000.00"),
    max_loan_amount=D("1000000.00"),
    allowed_grades=frozenset("ABC"),
    min_rate=D("15.00"),
    max_term_months=12,
    buy_on_market=True,
    max_market_premium_percent=D("2.00"),
)


def rule(**change) -> AutoInvestRule:
    return AutoInvestRule(**{**RULE.__dict__, **change})


def offer(**change) -> ListingOffer:
    return ListingOffer(**{**OFFER.__dict__, **change})


def position(**kw) -> InvestorPosition:
    return InvestorPosition(
        **{"budget": D("1000000.00"), "portfolio_value": D("1000000.00"), "annual_left": None, **kw}
    )


# -- matching a listing --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rule_change, offer_change, why",
    [
        ({"buy_on_market": False}, {}, "the rule does not buy on the market"),
        ({}, {"seller_id": RULE.investor_id}, "the investor's own listing"),
        ({"allowed_grades": frozenset("A")}, {}, "grade B is not among A"),
        ({"min_rate": D("18.00")}, {}, "rate 17.00% is below the rule's minimum 18.00%"),
        ({"max_term_months": 9}, {}, "remaining term 10 months is above the rule's maximum 9"),
        ({"min_loan_amount": D("150000.00")}, {}, "loan amount 100000.00 is below the rule's minimum 150000.00"),
        ({"max_loan_amount": D("90000.00")}, {}, "loan amount 100000.00 is above the rule's maximum 90000.00"),
        ({}, {"price_percent": D("102.01")}, "price 102.01% is above the rule's maximum 102.00%"),
        ({"max_market_premium_percent": D("0")}, {}, "price 101.00% is above the rule's maximum 100.00%"),
    ],
)
def test_a_rule_does_not_buy_a_listing_on_each_criterion(rule_change, offer_change, why):
    assert listing_mismatch(RULE, OFFER) is None
    assert why in (listing_mismatch(rule(**rule_change), offer(**offer_change)) or "")


@pytest.mark.parametrize("price", ["102.00", "100.00", "90.00", "99.99"])
def test_the_premium_cap_is_inclusive_and_a_discount_is_always_accepted(price):
    assert listing_mismatch(RULE, offer(price_percent=D(price))) is None
    if D(price) <= 100:
        assert listing_mismatch(rule(max_market_premium_percent=D("0")), offer(price_percent=D(price))) is None


def test_the_term_is_the_listings_remaining_installments_not_the_loans_term():
    short = rule(max_term_months=3)
    assert listing_mismatch(short, offer(remaining_installments=3)) is None
    assert listing_mismatch(short, offer(remaining_installments=4)) is not None


# -- what a purchase costs, and what money buys --------------------------------------------------------
def test_the_cost_is_the_price_plus_the_accrued_interest_exact_for_all_of_the_listing():
    assert purchase_cost(OFFER, D("20000.00")) == D("20200.00") + D("80.00")
    assert cost_bound(OFFER, D("20000.00")) == D("20280.00")
    assert purchase_cost(OFFER, D("5000.00")) == D("5050.00") + D("20.00")
    assert cost_bound(OFFER, D("5000.00")) == D("5070.00") + COST_MARGIN


@given(st.decimals(min_value=0, max_value=30000, places=2), st.decimals(min_value=50, max_value=150, places=2))
def test_money_buys_the_most_whole_roubles_it_covers(money, price):
    listing = offer(price_percent=price)
    principal = affordable(listing, money)
    assert 0 <= principal <= listing.available
    assert cost_bound(listing, principal) <= money
    if principal < listing.available:
        assert principal == principal.to_integral_value()
        more = min(principal + 1, listing.available)
        assert cost_bound(listing, more) > money


def kopecks(low: int, high: int):
    return st.integers(low, high).map(lambda k: D(k) / 100)


@st.composite
def holdings(draw):
    """A holding's unpaid installments, a listing of part of it, the day of the purchase."""
    rows = [
        ShareRow(n, draw(kopecks(1000, 5_000_000)), draw(kopecks(0, 300_000)))
        for n in range(1, draw(st.integers(2, 12)) + 1)
    ]
    owed = sum(r.principal for r in rows)
    listed = draw(kopecks(200, int(owed * 100)))
    start = date(2026, 3, 1)
    end = start + timedelta(days=draw(st.integers(28, 31)))
    on = start + timedelta(days=draw(st.integers(0, 35)))
    return rows, listed, start, end, on


def actual_cost(rows, principal, price, start, end, on) -> tuple[Decimal, list[ShareRow]]:
    """What settlement charges for `principal` of a holding whose rows are `rows` (what
    investing/market.py's quote does: the sold part's next interest, accrued by days)."""
    kept, sold = split_holding(rows, principal)
    accrued = accrued_interest(sold[0].interest, start, end, on)
    return settlement(principal, price, accrued, D("1.000")).buyer_pays, kept


@settings(max_examples=300)
@given(holdings(), st.data(), st.decimals(min_value=90, max_value=110, places=2))
def test_a_part_never_costs_more_than_the_planned_bound_even_after_an_earlier_part(holding, data, price):
    rows, listed, start, end, on = holding
    whole, _ = actual_cost(rows, listed, price, start, end, on)
    listing = offer(available=listed, price_percent=price, accrued=whole - price_of(listed, price))
    assert purchase_cost(listing, listed) == whole  # the listing's quote, exactly
    first = data.draw(kopecks(1, int(listed * 100)))
    cost, kept = actual_cost(rows, first, price, start, end, on)
    assert cost <= cost_bound(listing, first)
    assert cost >= purchase_cost(listing, first) - COST_MARGIN
    assume(first < listed)
    second = data.draw(kopecks(1, int((listed - first) * 100)))  # the next buyer, from what the seller kept
    cost, _ = actual_cost(kept, second, price, start, end, on)
    assert cost <= cost_bound(listing, second)


# -- what a rule asks for --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "pos, rule_change, expected, limited_by",
    [
        ({}, {"max_amount_per_loan": D("15000.00")}, D("15000.00"), "the rule's maximum per loan"),
        ({"in_loan": {OFFER.loan_id: D("6000.00")}}, {}, D("14000.00"), "the rule's maximum per loan"),
        ({}, {"max_amount_per_loan": D("90000.00")}, D("20000.00"), "what the listing offers"),
        # 10,000.00 buys 9,861 roubles of principal at 101 % with 0.40 % accrued: 9,999.05 (+ the 0.05 margin)
        ({"budget": D("10000.00")}, {}, D("9861.00"), "the money available"),
        ({"annual_left": D("5000.00")}, {}, D("4930.00"), "259-FZ"),
        ({"in_loan": {OFFER.loan_id: D("45000.00")}}, {"max_amount_per_loan": D("90000.00")}, D("5000.00"), "cap"),
        ({"portfolio_value": D("100000.00")}, {"max_portfolio_share_percent": D("10")}, D("10000.00"), "portfolio"),
        ({"budget": D("20280.00")}, {}, D("20000.00"), "the rule's maximum per loan"),  # all of it, exactly
    ],
)
def test_what_a_rule_asks_of_a_listing_is_the_tightest_limit(pos, rule_change, expected, limited_by):
    amount, why = asked_on_market(rule(**rule_change), OFFER, position(**pos))
    assert amount == expected and limited_by in why
    if "budget" in pos:
        assert cost_bound(OFFER, amount) <= pos["budget"]


# -- sharing a listing -------------------------------------------------------------------------------------
investors = st.lists(st.integers(1, 10**6), min_size=1, max_size=20, unique=True)


@given(
    investors,
    st.data(),
    kopecks(100_00, 2_000_000_00),
    st.sampled_from([D("1000.00"), D("5000.00"), D("100.00")]),
    st.integers(0, 10**6),
)
def test_a_listing_is_shared_as_a_funding_loan_is_with_parts_and_leftover_at_least_the_minimum(
    ids, data, available, minimum, rotation
):
    listing = offer(available=available, min_investment=minimum)
    demand = {}
    for i in ids:
        asked = D(data.draw(st.integers(int(minimum), 300_000)))
        demand[uuid.UUID(int=i)] = min(asked, available)  # as asked_on_market caps it
    demand = {i: a for i, a in demand.items() if a >= minimum or a == available}
    assume(demand)
    result = allocate_listing(listing, demand, rotation)
    assert set(result) == set(demand)
    parts = [amount for amount, _ in result.values() if amount > 0]
    for investor, (amount, why) in result.items():
        assert amount <= demand[investor] and why
        assert amount == 0 or amount >= minimum or amount == available
    left = available - sum(parts, D(0))
    assert left in (0, available) or left >= minimum  # (all of it left: nothing bought)
    # The same fairness as a funding loan of what the listing offers, whenever that rule
    # leaves the listing as a purchase may leave it.
    as_loan = allocate(FundingLoan(**_as_loan(listing)), demand, rotation)
    loan_left = available - sum((a for a, _ in as_loan.values()), D(0))
    if loan_left == 0 or loan_left >= minimum:
        assert {i: a for i, (a, _) in result.items()} == {i: a for i, (a, _) in as_loan.items()}


def _as_loan(listing: ListingOffer) -> dict:
    return {
        "loan_id": listing.loan_id,
        "amount": listing.loan_amount,
        "remaining": listing.available,
        "rate_annual": listing.rate_annual,
        "grade": listing.grade,
        "term_months": listing.remaining_installments,
        "min_investment": listing.min_investment,
        "max_per_investor": listing.max_per_investor,
    }


def test_a_remainder_below_the_minimum_is_not_left_on_the_listing():
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    # 9,500 + 1,000 asked of 10,000: B's pro-rata share is below the minimum; A alone would leave 500.
    result = allocate_listing(offer(available=D("10000.00")), {a: D("9500.00"), b: D("1000.00")}, 0)
    assert result[a][0] == D("9000.00") and result[b][0] == 0
    assert "would have left 500.00, below the minimum investment 1000.00, so 9000.00 was shared" in result[a][1]
    # One asking 1,400 of 1,500: no part of it may leave 100.
    alone = allocate_listing(offer(available=D("1500.00")), {a: D("1400.00")}, 0)
    assert alone[a][0] == 0 and "no part fits the listing" in alone[a][1]
    # All of a small listing is one purchase.
    assert allocate_listing(offer(available=D("700.00")), {a: D("700.00")}, 0)[a][0] == D("700.00")


def test_the_rounding_remainder_of_a_listing_rotates_as_a_loans_does():
    three = {uuid.UUID(int=i): D("10000") for i in (1, 2, 3)}
    extra = []
    for run in range(3):
        result = allocate_listing(OFFER, three, rotation=run)
        assert sorted(a for a, _ in result.values()) == [D("6666.00"), D("6667.00"), D("6667.00")]
        assert {i: a for i, (a, _) in result.items()} == {
            i: a for i, (a, _) in allocate(FundingLoan(**_as_loan(OFFER)), three, rotation=run).items()
        }
        extra.append(next(i for i, (a, _) in result.items() if a == D("6666.00")))
    assert len(set(extra)) == 3  # each the one without the remainder in turn


# -- planning over listings --------------------------------------------------------------------------------
def test_plan_market_shares_fairly_and_charges_budgets_and_the_annual_limit_what_purchases_cost():
    a, b, c, own = (uuid.UUID(int=i) for i in (1, 2, 3, 4))
    rules = [
        rule(investor_id=a, max_amount_per_loan=D("14000.00")),
        rule(investor_id=b, max_amount_per_loan=D("9000.00")),
        rule(investor_id=c, buy_on_market=False),
        rule(investor_id=own),
    ]
    budgets = {a: D("1000000.00"), b: D("50000.00"), c: D("1000000.00"), own: D("1000000.00")}
    held = {i: position(budget=budget) for i, budget in budgets.items()}
    held[a].annual_left = D("600000.00")
    second = offer(listing_id=uuid.UUID(int=501), loan_id=uuid.UUID(int=2), seller_id=own)
    planned = plan_market([offer(seller_id=uuid.UUID(int=98)), second], rules, held, rotation=0)
    first_listing = [p for p in planned if p.listing_id == OFFER.listing_id]
    assert {p.investor_id for p in first_listing} == {a, b, own}  # c does not buy on the market
    amounts = {p.investor_id: p.amount for p in first_listing}
    # 14,000 + 9,000 + 20,000 asked of 20,000: shared as a funding loan of 20,000 would be.
    demand = {a: D("14000.00"), b: D("9000.00"), own: D("20000.00")}
    assert amounts == {i: x for i, (x, _) in allocate(FundingLoan(**_as_loan(OFFER)), demand, 0).items()}
    assert sum(amounts.values()) == D("20000.00")
    # The second listing is own's: a and b buy it (another loan), own never does.
    assert {p.investor_id for p in planned if p.listing_id == second.listing_id} == {a, b}
    for investor in (a, b):
        spent = sum(cost_bound(OFFER, p.amount) for p in planned if p.investor_id == investor)
        assert held[investor].budget == budgets[investor] - spent
        assert held[investor].in_loan[OFFER.loan_id] == amounts[investor]
    assert held[a].annual_left == D("600000.00") - sum(
        cost_bound(OFFER, p.amount) for p in planned if p.investor_id == a
    )
    for p in planned:
        assert p.cost == (purchase_cost(OFFER, p.amount) if p.amount > 0 else 0)
        assert p.reason.startswith("market: asked")


def test_plan_market_never_spends_more_than_the_budget_or_the_annual_limit_across_listings():
    a = uuid.UUID(int=1)
    listings = [offer(listing_id=uuid.UUID(int=600 + n), loan_id=uuid.UUID(int=10 + n)) for n in range(5)]
    held = {a: position(budget=D("30000.00"), annual_left=D("25000.00"))}
    planned = plan_market(listings, [rule(investor_id=a)], held, rotation=0)
    costs = [cost_bound(OFFER, p.amount) for p in planned if p.amount > 0]
    assert [p.amount for p in planned] == [D("20000.00"), D("4654.00")]  # then under the minimum: nothing
    assert sum(costs) <= D("25000.00") and held[a].annual_left == D("25000.00") - sum(costs)
    assert held[a].annual_left < D("1000.00")


def test_the_maximum_per_loan_counts_what_the_investor_already_holds_in_that_loan():
    a = uuid.UUID(int=1)
    held = {a: position(in_loan={OFFER.loan_id: D("19500.00")})}
    assert plan_market([OFFER], [rule(investor_id=a)], held, rotation=0) == []  # 500 left: below the minimum
    held = {a: position(in_loan={OFFER.loan_id: D("15000.00")})}
    (planned,) = plan_market([OFFER], [rule(investor_id=a)], held, rotation=0)
    assert planned.amount == D("5000.00") and "the rule's maximum per loan" in planned.reason


# -- the rule in the API ---------------------------------------------------------------------------------------
def test_the_rule_buys_on_the_market_only_when_asked_and_old_clients_keep_working(client, seeded):
    from tests.api_helpers import sign_up

    investor = sign_up(client, "investor")
    old = {
        "is_active": True,
        "max_amount_per_loan": "20000.00",
        "min_loan_amount": "50000.00",
        "max_loan_amount": "1000000.00",
        "allowed_grades": ["A", "B"],
        "min_rate": "15.00",
        "max_term_months": 24,
        "reinvest_returns": False,
    }
    saved = client.put("/v1/auto-invest/rule", json=old, headers=investor.headers)
    assert saved.status_code == 200, saved.text
    assert (saved.json()["buy_on_market"], saved.json()["max_market_premium_percent"]) == (False, "0.00")
    market = {**old, "buy_on_market": True, "max_market_premium_percent": "2.50"}
    saved = client.put("/v1/auto-invest/rule", json=market, headers=investor.headers)
    assert (saved.json()["buy_on_market"], saved.json()["max_market_premium_percent"]) == (True, "2.50")
    assert client.get("/v1/auto-invest/rule", headers=investor.headers).json()["buy_on_market"] is True
    for bad in ("-1", "100.01", "1.005", "nan", "２"):
        answer = client.put(
            "/v1/auto-invest/rule", json={**market, "max_market_premium_percent": bad}, headers=investor.headers
        )
        assert answer.status_code == 422, (bad, answer.text)
    answer = client.put("/v1/auto-invest/rule", json={**market, "buy_on_market": "maybe"}, headers=investor.headers)
    assert answer.status_code == 422


# -- a run's plan in the database: funding loans first, then listings, one budget --------------------------
def _loans_for_a_mixed_run(session_factory) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """A loan open for funding (100,000) and an active loan with 5,000 of a holding listed at
    par; a buyer with 12,000 and a rule buying on the market too, and the seller with a rule
    but no money: (funding loan, active loan, listing, buyer, seller)."""
    from investing.market import create_listing
    from loans.requests import create_loan_request
    from models.loans import LoanRequest, RepaymentInstallment
    from tests.loan_helpers import active_loan_in_db

    _tradeable_at_once(session_factory)
    seller, keeper = make_investor(session_factory, "0"), make_investor(session_factory, "0")
    active_id = active_loan_in_db(session_factory, make_borrower(session_factory), [seller, keeper])
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        active = session.get_one(LoanRequest, active_id)
        active.risk_grade, active.rate_annual, active.disbursed_at = "B", D("17.00"), now - timedelta(days=10)
        for row in session.scalars(select(RepaymentInstallment).where(RepaymentInstallment.loan_id == active_id)):
            row.due_date = (now + timedelta(days=20 + 30 * (row.payment_num - 1))).date()
        holding = session.scalars(select(Investment).where(Investment.investor_id == seller)).one()
        listing, _ = create_listing(
            session, session.get_one(User, seller), holding.id, D("5000.00"), D("100.00"), None, now.date()
        )
        listing_id = listing.id
        funding, _ = create_loan_request(
            session,
            make_borrower(session_factory),
            product_code="standard",
            amount=D("100000.00"),
            term_months=12,
            purpose="test",
            simulation_id=None,
            client_key=None,
        )
        funding.status, funding.risk_grade, funding.rate_annual = "funding", "B", D("17.00")
        funding_id = funding.id
    buyer = make_investor(session_factory, "12000")
    give_rule(session_factory, buyer, max_amount_per_loan=D("10000.00"), buy_on_market=True)
    give_rule(session_factory, seller, buy_on_market=True)  # it has no money; and the listing is its own
    return funding_id, active_id, listing_id, buyer, seller


def test_a_run_plans_funding_loans_then_listings_with_one_budget_and_records_each_kind(session_factory, seeded):
    from investing.auto_invest import Outcome, planned_placements, record_outcomes

    funding_id, active_id, listing_id, buyer, seller = _loans_for_a_mixed_run(session_factory)
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        run = plan_run(session, "mixed", None, now, None)
    by_kind = {p.listing_id is None: p for p in run.planned if p.investor_id == buyer}
    primary, purchase = by_kind[True], by_kind[False]
    assert (primary.loan_id, primary.amount) == (funding_id, D("10000.00"))
    # 2,000 is left for the market: at par, with about 107 of interest accrued on the 5,000 listed
    assert (purchase.loan_id, purchase.listing_id) == (active_id, listing_id)
    assert D("1000.00") <= purchase.amount < D("2000.00") and "the money available" in purchase.reason
    assert purchase.cost is not None and purchase.cost + COST_MARGIN <= D("2000.00")
    assert D("2000.00") - (purchase.cost + COST_MARGIN) < D("1.05")  # (the next whole rouble would not fit)
    assert not [p for p in run.planned if p.investor_id == seller]
    with session_factory() as session:
        rows = {
            r.kind: r
            for r in session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no))
        }
    assert rows["primary"].investment_id == run.investment_ids[(funding_id, buyer)] and rows["primary"].trade_id is None
    assert rows["market"].trade_id == run.trade_ids[(listing_id, buyer)] == trade_id_of(run.run_no, listing_id, buyer)
    assert (rows["market"].listing_id, rows["market"].investment_id) == (listing_id, None)
    assert rows["market"].details["cost"] == f"{purchase.cost:.2f}"
    with unit_of_work(session_factory) as session:
        again = plan_run(session, "mixed", None, now, None)  # a retried plan: the same plan, the same trade ids
        placements = {p.listing_id is None: p for p in planned_placements(session, run.run_no)}
    assert again.trade_ids == run.trade_ids and again.investment_ids == run.investment_ids
    assert {p.amount for p in again.planned} == {p.amount for p in run.planned}
    assert placements[False].trade_id == rows["market"].trade_id and placements[False].investment_id is None
    assert placements[True].investment_id == rows["primary"].investment_id and placements[True].trade_id is None
    bought = uuid.uuid4()
    with unit_of_work(session_factory) as session:
        record_outcomes(
            session,
            [
                Outcome(placements[True].allocation_id, "placed"),
                Outcome(placements[False].allocation_id, "placed", "x", bought),
            ],
        )
    with session_factory() as session:
        outcomes = {
            r.kind: (r.outcome, r.investment_id)
            for r in session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no))
        }
    assert outcomes == {"primary": ("placed", rows["primary"].investment_id), "market": ("placed", bought)}


async def test_a_placement_failing_unexpectedly_leaves_the_others_placed_and_itself_planned(
    session_factory, seeded, monkeypatch
):
    """One placement meets an error nobody mapped (a bug, an outage): the others still finish
    and are recorded (here: the purchase refused by the loan), the failed one stays planned, and
    the attempt fails so that its retry sends just that one again."""
    from temporalio.exceptions import ApplicationError

    import api.workflow_calls
    from core.errors import Conflict

    _loans_for_a_mixed_run(session_factory)
    with unit_of_work(session_factory) as session:
        run = plan_run(session, "mixed", None, datetime.now(UTC), None)
    sent: list[str] = []

    async def loan_answers(client, workflow_id, update, arg, *, update_id, **_):
        sent.append(update_id)
        if update_id.startswith("investment-"):
            raise RuntimeError("the connection broke")
        raise Conflict("the listing is cancelled", reason="Conflict")

    monkeypatch.setattr(api.workflow_calls, "execute_loan_update", loan_answers)
    activities = AutoInvestActivities(session_factory, client=None)  # (the loan is answered above)
    with pytest.raises(ApplicationError, match="1 placement\\(s\\) without an answer yet.*the connection broke"):
        await ActivityEnvironment().run(activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=run.run_no))
    assert sorted(u.split("-")[0] for u in sent) == ["investment", "trade"]
    with session_factory() as session:
        rows = {
            r.kind: (r.outcome, r.outcome_detail)
            for r in session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no))
            if r.allocated > 0
        }
    assert rows == {"primary": ("planned", None), "market": ("refused", "Conflict: the listing is cancelled")}


def test_a_settlement_not_finding_its_listing_is_the_callers_404():
    from temporalio.exceptions import ApplicationError

    from api.workflow_calls import business_error
    from core.errors import NotFound

    mapped = business_error(ApplicationError("no listing x on this loan", type="NotFound", non_retryable=True))
    assert isinstance(mapped, NotFound) and mapped.detail == "no listing x on this loan"


def test_the_listings_a_run_plans_over_move_on_with_each_run(session_factory, seeded, monkeypatch):
    """Past the most listings one run plans over, each Schedule run's window starts just after
    the last one's (kept on the run) and wraps around: listings at the head of the market no
    rule wants never hide the rest, and a listing closing between runs shifts nothing."""
    import investing.auto_invest as auto_invest
    from investing.market import create_listing
    from models.auto_invest import AutoInvestRun
    from models.loans import LoanRequest, RepaymentInstallment
    from tests.loan_helpers import active_loan_in_db

    _tradeable_at_once(session_factory)
    sellers = [make_investor(session_factory, "0") for _ in range(5)]
    loan_id = active_loan_in_db(session_factory, make_borrower(session_factory), sellers)
    now = datetime.now(UTC)
    with unit_of_work(session_factory) as session:
        loan = session.get_one(LoanRequest, loan_id)
        loan.risk_grade, loan.rate_annual, loan.disbursed_at = "B", D("17.00"), now - timedelta(days=10)
        for row in session.scalars(select(RepaymentInstallment).where(RepaymentInstallment.loan_id == loan_id)):
            row.due_date = (now + timedelta(days=20 + 30 * (row.payment_num - 1))).date()
    listed = []
    for seller in sellers:  # one listing per holding, oldest first
        with unit_of_work(session_factory) as session:
            holding = session.scalars(select(Investment).where(Investment.investor_id == seller)).one()
            listing, _ = create_listing(
                session, session.get_one(User, seller), holding.id, holding.amount, D("100.00"), None, now.date()
            )
            listed.append(listing.id)

    with session_factory() as session:
        everything, _, _ = auto_invest.market_offers(session, None, now)
        assert [o.listing_id for o in everything] == listed  # all of them fit in one run: oldest first
        middle = session.get_one(MarketListing, listed[2])
        rotated, _, _ = auto_invest.market_offers(session, None, now, (middle.created_at, middle.id))
        assert [o.listing_id for o in rotated] == listed  # from wherever the last run ended: still oldest first
    monkeypatch.setattr(auto_invest, "MAX_LISTINGS_PER_RUN", 2)
    give_rule(session_factory, make_investor(session_factory, "0"), buy_on_market=True)  # (a run plans the market)

    def schedule_run() -> list[uuid.UUID]:
        """A Schedule run's plan, and the listings its window took (the last one kept on it)."""
        with unit_of_work(session_factory) as session:
            run = plan_run(session, f"schedule-{uuid.uuid4()}", None, now, None)
            kept = session.get_one(AutoInvestRun, run.run_no)
            with_cursor = (kept.market_after_created_at, kept.market_after_id)
            offers, _, cursor = auto_invest.market_offers(session, None, now, previous[-1] if previous else None)
            assert cursor == with_cursor  # the run kept where its window ended
            previous.append(cursor)
            return [o.listing_id for o in offers]

    previous: list = []
    assert schedule_run() == [listed[0], listed[1]]
    assert schedule_run() == [listed[2], listed[3]]
    assert schedule_run() == [listed[0], listed[4]]  # the end reached: on from the oldest (planned oldest first)
    # A run for one loan entering funding plans no listing and moves nothing.
    with unit_of_work(session_factory) as session:
        plan_run(session, f"loan-{uuid.uuid4()}", [], now, ())
    with unit_of_work(session_factory) as session:  # listing 1 closes: the window goes on from listing 0
        cancel_listing(session, session.get_one(User, sellers[1]), listed[1])
    assert schedule_run() == [listed[2], listed[3]]
    assert schedule_run() == [listed[0], listed[4]]


# -- on the dev server: a run buys a listing through the loan workflow's `trade` update ---------------------
async def test_a_run_buys_a_listing_for_two_rules_fairly_and_never_twice(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    seller, other = make_investor(session_factory, "25000"), make_investor(session_factory, "25000")
    app = create_app(live_settings)
    async with (
        running_worker(dev_client, live_settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        loan_id = await fund_through_the_api(api, live_settings, borrower, [seller, other])
        await wait_loan_status(api, loan_id, bearer(live_settings, borrower, "borrower"), "active")
        await wait_for_agreements(dev_client, loan_id)  # (a trade waits for them)
        # Rules only now: the loan's own funding run must not have invested for them.
        a, b, no_market, low_cap = (make_investor(session_factory, "30000") for _ in range(4))
        market = {"buy_on_market": True}
        give_rule(  # reinvest_returns off: a purchase's cost is money lent
            session_factory,
            a,
            max_amount_per_loan=D("14000.00"),
            max_market_premium_percent=D("2.00"),
            reinvest_returns=False,
            **market,
        )
        give_rule(session_factory, b, max_amount_per_loan=D("9000.00"), max_market_premium_percent=D("1.00"), **market)
        give_rule(session_factory, no_market, max_market_premium_percent=D("5.00"))
        give_rule(session_factory, low_cap, buy_on_market=True, max_market_premium_percent=D("0.50"))

        sold_holding = _holding(session_factory, loan_id, seller)
        listed = await api.post(
            "/v1/market/listings",
            json={"investment_id": str(sold_holding.id), "principal": "20000.00", "price_percent": "101.00"},
            headers=bearer(live_settings, seller, "investor"),
        )
        assert listed.status_code == 201, listed.text
        listing_id = uuid.UUID(listed.json()["id"])

        # The Schedule's run: every funding loan (none) and every open listing.
        result: AutoInvestResult = await dev_client.execute_workflow(
            AutoInvestWorkflow.run,
            AutoInvestInput(reason="schedule"),
            id=f"auto-invest-test-{uuid.uuid4()}",
            task_queue=task_queue,
            result_type=AutoInvestResult,
        )
        assert (result.placed, result.refused, result.not_allocated) == (2, 0, 0)
        with session_factory() as session:
            rows = list(
                session.scalars(
                    select(AutoInvestAllocation)
                    .where(AutoInvestAllocation.run_no == result.run_no)
                    .order_by(AutoInvestAllocation.id)
                )
            )
            trades = {t.buyer_id: t for t in session.scalars(select(MarketTrade))}
            listing = session.get_one(MarketListing, listing_id)
            assert (listing.status, listing.remaining_principal) == ("sold", 0)
        # 14,000 + 9,000 asked of 20,000: shared as a funding loan of 20,000 would be.
        fair = allocate(
            FundingLoan(
                loan_id=uuid.UUID(loan_id),
                amount=D("50000.00"),
                remaining=D("20000.00"),
                rate_annual=D("0"),
                grade="A",
                term_months=6,
                min_investment=D("1000.00"),
                max_per_investor=D("25000.00"),
            ),
            {a: D("14000.00"), b: D("9000.00")},
            result.run_no,
        )
        assert {r.investor_id: r.allocated for r in rows} == {i: x for i, (x, _) in fair.items()}
        assert sorted(r.allocated for r in rows) in ([D("7826.00"), D("12174.00")], [D("7827.00"), D("12173.00")])
        assert all("rounding remainder (rotation" in r.reason for r in rows if r.allocated in (D("12174"), D("7827")))
        for row in rows:
            trade = trades[row.investor_id]
            assert (row.kind, row.listing_id, row.outcome) == ("market", listing_id, "placed")
            assert row.trade_id == trade.id == trade_id_of(result.run_no, listing_id, row.investor_id)
            assert row.investment_id == trade.buyer_investment_id and trade.principal == row.allocated
            assert row.outcome_detail == (
                f"bought for {trade.buyer_pays:.2f}: price {trade.price:.2f} "
                f"+ accrued interest {trade.accrued_interest:.2f}"
            )
            # planned on the UTC date, settled on the loan's: the accrued interest may differ by a day's
            assert abs(D(row.details["cost"]) - trade.buyer_pays) < trade.buyer_pays / 100
        assert set(trades) == {a, b}  # neither the rule off the market nor the low premium cap bought
        with session_factory() as session:
            for investor in (no_market, low_cap):
                assert not session.scalars(select(Investment).where(Investment.investor_id == investor)).all()
            # What it cost is what counts: the wallet, the 259-FZ year, and the money never lent.
            for investor in (a, b):
                assert balance_of(session_factory, investor).balance == D("30000.00") - trades[investor].buyer_pays
                year = datetime.now(UTC).year
                assert session.scalar(
                    select(Investment.counted_year).where(Investment.id == trades[investor].buyer_investment_id)
                ) in (year, year + 1)
            held = positions(session, [a, seller], {a: False, seller: True}, [uuid.UUID(loan_id)], datetime.now(UTC))
            assert held[a].budget == D("30000.00") - trades[a].buyer_pays
            assert held[a].in_loan == {uuid.UUID(loan_id): trades[a].principal}
            # The portfolio: the wallet and the principal still owed (bought, or kept after selling).
            assert held[a].portfolio_value == D("30000.00") - trades[a].buyer_pays + trades[a].principal
            assert held[seller].in_loan == {uuid.UUID(loan_id): D("5000.00")}
            assert held[seller].portfolio_value == balance_of(session_factory, seller).balance + D("5000.00")
            seller_holding = session.get_one(Investment, sold_holding.id)
            assert seller_holding.sold_principal == D("20000.00")

        # The API says which allocations were market purchases, and of which listing.
        seen = (await api.get("/v1/auto-invest/allocations", headers=bearer(live_settings, a, "investor"))).json()
        assert [(s["kind"], s["listing_id"], s["trade_id"], s["outcome"]) for s in seen] == [
            ("market", str(listing_id), str(trades[a].id), "placed")
        ]
        assert seen[0]["investment_id"] == str(trades[a].buyer_investment_id)

        # A retried placing (its first answers lost) never buys twice.
        activities = AutoInvestActivities(session_factory, dev_client)
        with unit_of_work(session_factory) as session:
            session.execute(
                update(AutoInvestAllocation)
                .where(AutoInvestAllocation.run_no == result.run_no)
                .values(outcome="planned", outcome_detail=None)
            )
        again = await ActivityEnvironment().run(
            activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=result.run_no)
        )
        assert (again.placed, again.refused) == (2, 0)
        with session_factory() as session:
            assert len(session.scalars(select(MarketTrade)).all()) == 2
            assert balance_of(session_factory, a).balance == D("30000.00") - trades[a].buyer_pays
        # The same purchase sent to the loan again, past every check before it: under its own
        # update id (Temporal's answer) and under another one (the settlement's, by trade id),
        # the same trade comes back and nothing moves twice.
        (row_a,) = [r for r in rows if r.investor_id == a]
        resent = TradeRequest(
            trade_id=trades[a].id,
            listing_id=listing_id,
            buyer_id=a,
            principal=row_a.allocated,
            loan_id=uuid.UUID(loan_id),
        )
        handle = dev_client.get_workflow_handle(f"loan-{loan_id}")
        for update_id in (f"trade-{trades[a].id}", f"trade-{trades[a].id}-resent"):
            answer = await handle.execute_update(LoanWorkflow.trade, resent, id=update_id)
            assert (answer.trade_id, answer.buyer_investment_id) == (trades[a].id, trades[a].buyer_investment_id)
            assert answer.buyer_pays == trades[a].buyer_pays
        with session_factory() as session:
            assert len(session.scalars(select(MarketTrade)).all()) == 2
            assert balance_of(session_factory, a).balance == D("30000.00") - trades[a].buyer_pays
            assert session.get_one(Investment, sold_holding.id).sold_principal == D("20000.00")
            assert_books_balance(session)

        # A purchase the loan refuses (the listing was cancelled after the plan) is recorded
        # like a refused investment.
        other_holding = _holding(session_factory, loan_id, other)
        relisted = await api.post(
            "/v1/market/listings",
            json={"investment_id": str(other_holding.id), "principal": "10000.00", "price_percent": "99.00"},
            headers=bearer(live_settings, other, "investor"),
        )
        assert relisted.status_code == 201, relisted.text
        second_id = uuid.UUID(relisted.json()["id"])
        with unit_of_work(session_factory) as session:
            run = plan_run(session, f"test-{uuid.uuid4()}", [], datetime.now(UTC), [second_id])
        # At 99 % the low premium cap buys too (a discount is always accepted): 10,000 asked
        # by it, a's 1,826 or 1,827 left of its maximum per loan, b's 1,173 or 1,174: b's
        # pro-rata share falls below the minimum investment.
        allocated = {p.investor_id: p.amount for p in run.planned}
        assert set(allocated) == {a, b, low_cap} and allocated[b] == 0
        assert allocated[a] + allocated[low_cap] == D("10000.00") and min(allocated[a], allocated[low_cap]) >= 1000
        with unit_of_work(session_factory) as session:
            cancel_listing(session, session.get_one(User, other), second_id)
        refused = await ActivityEnvironment().run(
            activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=run.run_no)
        )
        assert (refused.placed, refused.refused) == (0, 2)
        with session_factory() as session:
            rows = session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no)).all()
            assert {r.investor_id: (r.kind, r.outcome, r.investment_id) for r in rows} == {
                a: ("market", "refused", None),
                low_cap: ("market", "refused", None),
                b: ("market", "not_allocated", None),
            }
            assert {r.outcome_detail for r in rows if r.outcome == "refused"} == {"Conflict: the listing is cancelled"}
            assert len(session.scalars(select(MarketTrade)).all()) == 2
            assert_books_balance(session)
        await dev_client.get_workflow_handle(f"loan-{loan_id}").terminate("test over")


async def test_a_purchase_whose_loan_does_not_answer_stays_planned_and_settles_once_later(
    dev_client, live_settings, session_factory, seeded, task_queue, monkeypatch
):
    """The loan's worker is down while a run places its purchase: the update waits, no answer
    comes, and the placement is not recorded as refused (the loan may still take it): it stays
    planned and the activity fails, to be retried. The worker back, the retry gets the one
    trade, however many times the update was sent."""
    from temporalio.exceptions import ApplicationError

    _tradeable_at_once(session_factory)
    borrower = make_borrower(session_factory)
    seller, other = make_investor(session_factory, "25000"), make_investor(session_factory, "25000")
    buyer = make_investor(session_factory, "10000")
    app = create_app(live_settings)
    activities = AutoInvestActivities(session_factory, dev_client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api:

        async def list_5000_at_par() -> uuid.UUID:
            """The seller offers 5,000.00 of its holding at par through the API."""
            listed = await api.post(
                "/v1/market/listings",
                json={
                    "investment_id": str(_holding(session_factory, loan_id, seller).id),
                    "principal": "5000.00",
                    "price_percent": "100.00",
                },
                headers=bearer(live_settings, seller, "investor"),
            )
            assert listed.status_code == 201, listed.text
            return uuid.UUID(listed.json()["id"])

        async with running_worker(dev_client, live_settings, session_factory, task_queue):
            loan_id = await fund_through_the_api(api, live_settings, borrower, [seller, other])
            await wait_loan_status(api, loan_id, bearer(live_settings, borrower, "borrower"), "active")
            await wait_for_agreements(dev_client, loan_id)  # (a trade waits for them)
            listing_id = await list_5000_at_par()
        give_rule(session_factory, buyer, max_amount_per_loan=D("5000.00"), buy_on_market=True)
        with unit_of_work(session_factory) as session:
            run = plan_run(session, f"test-{uuid.uuid4()}", [], datetime.now(UTC), [listing_id])
        assert [(p.investor_id, p.amount) for p in run.planned] == [(buyer, D("5000.00"))]

        # No worker: the loan takes the update but cannot answer it within the wait.
        monkeypatch.setattr("api.workflow_calls.BUSY_RETRY_SECONDS", 3.0)
        with pytest.raises(ApplicationError, match="without an answer yet"):
            await ActivityEnvironment().run(
                activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=run.run_no)
            )
        with session_factory() as session:
            (row,) = session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no))
            assert (row.outcome, row.outcome_detail) == ("planned", None)
            assert not session.scalars(select(MarketTrade)).all()

        monkeypatch.setattr("api.workflow_calls.BUSY_RETRY_SECONDS", 120.0)
        async with running_worker(dev_client, live_settings, session_factory, task_queue):
            placed = await ActivityEnvironment().run(
                activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=run.run_no)
            )
            assert (placed.placed, placed.refused) == (1, 0)
            with session_factory() as session:
                (trade,) = session.scalars(select(MarketTrade))
                (row,) = session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == run.run_no))
                assert (row.outcome, row.investment_id, trade.id) == ("placed", trade.buyer_investment_id, row.trade_id)
                assert trade.buyer_id == buyer and trade.principal == D("5000.00")
                assert balance_of(session_factory, buyer).balance == D("10000.00") - trade.buyer_pays
                assert_books_balance(session)

            # A purchase that costs more at settlement than the plan charged the budget (here:
            # its price rose after the plan) is refused by the loan, not paid.
            late = make_investor(session_factory, "10000")
            give_rule(session_factory, late, max_amount_per_loan=D("5000.00"), buy_on_market=True)
            dearer_id = await list_5000_at_par()
            with unit_of_work(session_factory) as session:
                dearer = plan_run(session, f"test-{uuid.uuid4()}", [], datetime.now(UTC), [dearer_id])
                (planned,) = planned_placements(session, dearer.run_no)
                assert planned.investor_id == late and planned.max_cost is not None
                session.get_one(MarketListing, dearer_id).price_percent = D("101.00")
            counts = await ActivityEnvironment().run(
                activities.place_auto_investments, PlaceAutoInvestmentsInput(run_no=dearer.run_no)
            )
            assert (counts.placed, counts.refused) == (0, 1)
            with session_factory() as session:
                (row,) = session.scalars(
                    select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == dearer.run_no)
                )
                assert row.outcome == "refused"
                assert f"more than the {planned.max_cost:.2f} you accept to pay" in (row.outcome_detail or "")
                assert not session.scalars(select(MarketTrade).where(MarketTrade.buyer_id == late)).all()
            assert balance_of(session_factory, late).balance == D("10000.00")
            await dev_client.get_workflow_handle(f"loan-{loan_id}").terminate("test over")
