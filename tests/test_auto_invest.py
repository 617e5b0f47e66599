"""Auto-invest: rules matching, fair pro-rata allocation with a rotation, the 259-FZ annual
limit, reinvest_returns, and every investment placed through the loan workflow's update."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from api.main import create_app
from core.db import unit_of_work
from core.errors import AnnualLimitExceeded
from domain.auto_invest import AutoInvestRule, FundingLoan, InvestorPosition, allocate, asked, mismatch, plan
from investing.annual_limit import LIMIT_TIMEZONE, annual_limit, count_investment, give_back
from investing.auto_invest import positions, put_rule
from ledger.accounts import platform_account, wallet_accounts, wallet_of_user
from ledger.postings import Leg, post_transaction
from models.auto_invest import AutoInvestAllocation, AutoInvestRuleRow
from models.loans import Investment
from models.users import User
from tests.ledger_helpers import assert_books_balance
from tests.loan_helpers import make_borrower, make_investor, running_worker, start_loan, wait_for_status
from tests.test_loan_api import bearer

D = Decimal
LOAN = FundingLoan(
    loan_id=uuid.UUID(int=1),
    amount=D("100000.00"),
    remaining=D("100000.00"),
    rate_annual=D("17.00"),
    grade="B",
    term_months=12,
    min_investment=D("1000.00"),
    max_per_investor=D("50000.00"),
)
# The instant the planner is told it is (its 259-FZ year comes from it): fixed, not the day the suite runs.
AT = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
RULE = AutoInvestRule(
    investor_id=uuid.UUID(int=7),
    max_amount_per_loan=D("20000.00"),
    min_loan_amount=D("50000.00"),
    max_loan_amount=D("1000000.00"),
    allowed_grades=frozenset("ABC"),
    min_rate=D("15.00"),
    max_term_months=24,
)


# -- matching, each criterion ------------------------------------------------------------------
@pytest.mark.parametrize(
    "change, why",
    [
        ({"allowed_grades": frozenset("A")}, "grade B is not among A"),
        ({"min_rate": D("18.00")}, "rate 17.00% is below the rule's minimum 18.00%"),
        ({"max_term_months": 6}, "term 12 months is above the rule's maximum 6"),
        ({"min_loan_amount": D("150000.00")}, "loan amount 100000.00 is below the rule's minimum 150000.00"),
        ({"max_loan_amount": D("90000.00")}, "loan amount 100000.00 is above the rule's maximum 90000.00"),
    ],
)
def test_a_rule_does_not_match_on_each_criterion(change, why):
    assert mismatch(RULE, LOAN) is None
    rule = AutoInvestRule(**{**RULE.__dict__, **change})
    assert mismatch(rule, LOAN) == why


def position(**kw) -> InvestorPosition:
    return InvestorPosition(
        **{"budget": D("1000000.00"), "portfolio_value": D("1000000.00"), "annual_left": None, **kw}
    )


@pytest.mark.parametrize(
    "pos, rule_change, expected, limited_by",
    [
        ({}, {}, D("20000.00"), "the rule's maximum per loan"),
        ({"budget": D("7500.55")}, {}, D("7500.00"), "the money available"),
        ({"annual_left": D("3000.00")}, {}, D("3000.00"), "259-FZ"),
        ({"portfolio_value": D("100000.00")}, {"max_portfolio_share_percent": D("10")}, D("10000.00"), "portfolio"),
        (
            {"in_loan": {LOAN.loan_id: D("45000.00")}},
            {"max_amount_per_loan": D("90000.00")},
            D("5000.00"),
            "the product's cap per investor",
        ),
    ],
)
def test_what_an_investor_asks_for_is_the_tightest_limit(pos, rule_change, expected, limited_by):
    amount, why = asked(AutoInvestRule(**{**RULE.__dict__, **rule_change}), LOAN, position(**pos))
    assert amount == expected and limited_by in why


# -- fair allocation ------------------------------------------------------------------------------
investors = st.lists(st.integers(1, 10**6), min_size=1, max_size=30, unique=True)


@given(investors, st.data(), st.decimals(min_value=1000, max_value=5_000_000, places=2), st.integers(0, 10**6))
def test_allocation_never_exceeds_what_was_asked_and_fills_the_loan_exactly(ids, data, remaining, rotation):
    demand = {uuid.UUID(int=i): D(data.draw(st.integers(1000, 200_000))) for i in ids}
    loan = FundingLoan(**{**LOAN.__dict__, "remaining": remaining, "amount": remaining})
    result = allocate(loan, demand, rotation)
    assert set(result) == set(demand)
    for investor, (amount, why) in result.items():
        assert amount <= demand[investor] and why
        assert amount == 0 or amount >= loan.min_investment
    total = sum(a for a, _ in result.values())
    if sum(demand.values()) <= remaining:
        assert all(amount == demand[i] for i, (amount, _) in result.items())
    else:
        assert total <= remaining
        if all(amount > 0 for amount, _ in result.values()):  # nobody fell under the minimum
            assert total == remaining  # to the kopek


def test_the_rounding_remainder_rotates_from_run_to_run():
    three = {uuid.UUID(int=i): D("50000") for i in (1, 2, 3)}
    extra = []
    for run in range(6):
        result = allocate(LOAN, three, rotation=run)
        assert sum(a for a, _ in result.values()) == D("100000.00")
        extra.append(next(i for i, (a, _) in result.items() if a == D("33334.00")))
    assert len(set(extra[:3])) == 3 and extra[:3] == extra[3:]  # each first in turn, in the same cycle


def test_the_planner_spends_each_budget_once_across_loans():
    second = FundingLoan(**{**LOAN.__dict__, "loan_id": uuid.UUID(int=2)})
    rule = AutoInvestRule(**{**RULE.__dict__, "max_amount_per_loan": D("30000.00")})
    held = {rule.investor_id: position(budget=D("40000.00"))}
    planned = plan([LOAN, second], [rule], held, rotation=0)
    assert [(p.loan_id.int, p.amount) for p in planned] == [(1, D("30000.00")), (2, D("10000.00"))]
    assert held[rule.investor_id].budget == 0


# -- the 259-FZ annual limit -------------------------------------------------------------------------
def test_the_annual_limit_counts_and_gives_back(session_factory, seeded):
    from models.auto_invest import InvestorYearTotal

    investor_id = make_investor(session_factory, "0")

    def years() -> dict[int, Decimal]:
        """What is stored for the investor: invested per year (the years are passed in, fixed)."""
        with session_factory() as session:
            return dict(
                session.execute(
                    select(InvestorYearTotal.year, InvestorYearTotal.invested).where(
                        InvestorYearTotal.investor_id == investor_id
                    )
                ).all()
            )

    def count(amount: str, year: int) -> int | None:
        with unit_of_work(session_factory) as session:
            return count_investment(session, session.get_one(User, investor_id), D(amount), year)

    assert years() == {}
    assert count("500000.00", 2026) == 2026
    assert years() == {2026: D("500000.00")}
    with pytest.raises(AnnualLimitExceeded, match="100,000.00 is left") as refused:
        count("100000.01", 2026)
    assert refused.value.extra == {"year": 2026, "limit": "600000.00", "invested": "500000.00", "left": "100000.00"}
    assert years() == {2026: D("500000.00")}  # the refused attempt changed nothing
    assert count("100000.00", 2026) == 2026  # exactly the limit
    assert years() == {2026: D("600000.00")}
    assert count("600000.00", 2027) == 2027  # a new year, a new limit
    assert years() == {2026: D("600000.00"), 2027: D("600000.00")}
    with unit_of_work(session_factory) as session:
        give_back(session, investor_id, D("500000.00"), 2026)  # a released reservation
    assert years() == {2026: D("100000.00"), 2027: D("600000.00")}
    assert count("400000.00", 2026) == 2026
    assert years() == {2026: D("500000.00"), 2027: D("600000.00")}
    with session_factory() as session:
        left = annual_limit(session, session.get_one(User, investor_id), 2026)
    assert (left.invested, left.left) == (D("500000.00"), D("100000.00"))


# -- reinvest_returns ---------------------------------------------------------------------------------
def _returned(session_factory, investor_id, amount: str) -> None:
    """Money that came back from a loan: what an installment collection credits."""
    with unit_of_work(session_factory) as session:
        available, _ = wallet_accounts(session, wallet_of_user(session, investor_id).id)
        post_transaction(
            session,
            key=f"test:return:{uuid.uuid4()}",
            kind="installment_collection",
            legs=[Leg(platform_account(session, "nominal").id, -D(amount)), Leg(available.id, D(amount))],
        )


def test_reinvest_returns_off_spends_only_deposited_money_never_lent(session_factory, seeded):
    keeps, reinvests = make_investor(session_factory, "10000"), make_investor(session_factory, "10000")
    for investor in (keeps, reinvests):
        _returned(session_factory, investor, "50000")
    with session_factory() as session:
        held = positions(session, [keeps, reinvests], {keeps: False, reinvests: True}, [], AT)
    assert held[keeps].budget == D("10000.00") and held[reinvests].budget == D("60000.00")
    assert held[keeps].portfolio_value == held[reinvests].portfolio_value == D("60000.00")
    assert held[keeps].annual_left == D("600000.00")


# -- on the dev server: runs through the loan workflow's update -----------------------------------------
def give_rule(session_factory, investor_id, **overrides) -> None:
    values = {
        "is_active": True,
        "max_amount_per_loan": D("50000.00"),
        "min_loan_amount": D("10000.00"),
        "max_loan_amount": D("5000000.00"),
        "allowed_grades": ["A", "B", "C", "D", "E"],
        "min_rate": D("0"),
        "max_term_months": 36,
        "reinvest_returns": True,
        "max_portfolio_share_percent": None,
        **overrides,
    }
    with unit_of_work(session_factory) as session:
        put_rule(session, investor_id, values)


async def wait_allocations(session_factory, loan_id, count: int) -> list[AutoInvestAllocation]:
    for _ in range(300):
        with session_factory() as session:
            rows = list(
                session.scalars(
                    select(AutoInvestAllocation)
                    .where(AutoInvestAllocation.loan_id == loan_id)
                    .order_by(AutoInvestAllocation.id)
                )
            )
        if len(rows) >= count and all(r.outcome != "planned" for r in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"allocations of {loan_id}: {[(r.outcome, r.allocated) for r in rows]}")


async def invest_updates(handle) -> int:
    """The `invest` updates the loan workflow accepted, from its history."""
    count = 0
    async for event in handle.fetch_history_events():
        if event.WhichOneof("attributes") == "workflow_execution_update_accepted_event_attributes":
            attributes = event.workflow_execution_update_accepted_event_attributes
            count += attributes.accepted_request.input.name == "invest"
    return count


async def test_a_loan_entering_funding_is_auto_invested_by_matching_rules_only(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    borrower = make_borrower(session_factory)
    matching = make_investor(session_factory, "100000")
    others = {
        name: make_investor(session_factory, "100000")
        for name in ("grade", "rate", "term", "small_loans", "big_loans", "inactive")
    }
    poor = make_investor(session_factory, "900")  # less than the minimum investment
    give_rule(session_factory, matching, max_amount_per_loan=D("20000.00"))
    give_rule(session_factory, poor)
    give_rule(session_factory, others["grade"], allowed_grades=["E"])
    give_rule(session_factory, others["rate"], min_rate=D("30.00"))
    give_rule(session_factory, others["term"], max_term_months=6)
    give_rule(session_factory, others["small_loans"], max_loan_amount=D("50000.00"))
    give_rule(session_factory, others["big_loans"], min_loan_amount=D("500000.00"))
    give_rule(session_factory, others["inactive"], is_active=False)
    async with running_worker(dev_client, live_settings, session_factory, task_queue):
        loan = await start_loan(dev_client, session_factory, task_queue, borrower, "100000.00", 12)
        snapshot = await wait_for_status(loan.handle, "funding")
        assert snapshot.risk_grade == "A"
        rows = await wait_allocations(session_factory, loan.loan_id, 1)
        assert [(r.investor_id, r.allocated, r.outcome) for r in rows] == [(matching, D("20000.00"), "placed")]
        assert "limited by the rule's maximum per loan" in rows[0].reason
        snapshot = await wait_for_status(loan.handle, "funding")
        assert snapshot.funded_amount == D("20000.00")
        assert await invest_updates(loan.handle) == 1  # the investment came through the update
        await loan.handle.terminate("test over")
    with TestClient(create_app(live_settings)) as api:
        seen = api.get("/v1/auto-invest/allocations", headers=bearer(live_settings, matching, "investor")).json()
    assert [(a["loan_id"], a["allocated"], a["outcome"]) for a in seen] == [(str(loan.loan_id), "20000.00", "placed")]
    with session_factory() as session:
        placed = session.scalars(select(Investment).where(Investment.loan_id == loan.loan_id)).all()
        assert [(i.investor_id, i.amount, i.id) for i in placed] == [(matching, D("20000.00"), rows[0].investment_id)]


async def test_oversubscribed_loans_are_shared_pro_rata_with_a_rotating_remainder(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    investors = [make_investor(session_factory, "200000") for _ in range(3)]
    for investor in investors:
        give_rule(session_factory, investor)  # 50,000 each: 150,000 asked of each 100,000 loan
    extra = []
    async with running_worker(dev_client, live_settings, session_factory, task_queue):
        for _ in range(2):
            loan = await start_loan(
                dev_client, session_factory, task_queue, make_borrower(session_factory), "100000.00", 12
            )
            rows = await wait_allocations(session_factory, loan.loan_id, 3)
            assert sum(r.allocated for r in rows) == D("100000.00") and {r.outcome for r in rows} == {"placed"}
            assert sorted(r.allocated for r in rows) == [D("33333.00"), D("33333.00"), D("33334.00")]
            assert all("oversubscribed: 150000.00 asked for 100000.00 left" in r.reason for r in rows)
            lucky = next(r for r in rows if r.allocated == D("33334.00"))
            assert "rounding remainder (rotation" in lucky.reason
            extra.append(lucky.investor_id)
            await wait_for_status(loan.handle, "active")  # funded exactly, disbursed
            assert await invest_updates(loan.handle) == 3
    assert extra[0] != extra[1]  # the next run starts the rotation elsewhere
    with session_factory() as session:
        assert_books_balance(session)


async def clear_of_a_new_year_in_moscow(margin: timedelta = timedelta(minutes=2)) -> None:
    """The 259-FZ year is taken from the clock where money is reserved (the loan workflow's)
    and where the limit is read (the API's), in Moscow time; neither takes a given instant.
    Run in a year's last minutes, a test of one year's limit first waits for the next year."""
    now = datetime.now(LIMIT_TIMEZONE)
    next_year = datetime(now.year + 1, 1, 1, tzinfo=LIMIT_TIMEZONE)
    if next_year - now < margin:
        await asyncio.sleep((next_year - now).total_seconds() + 1)


async def test_the_annual_limit_holds_under_concurrent_investments(
    live_settings, dev_client, session_factory, seeded, task_queue
):
    await clear_of_a_new_year_in_moscow()
    limited = make_investor(session_factory, "1200000")
    qualified = make_investor(session_factory, "1200000")
    with unit_of_work(session_factory) as session:
        session.get_one(User, qualified).is_qualified_investor = True
    app = create_app(live_settings)
    async with (
        running_worker(dev_client, live_settings, session_factory, task_queue),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as api,
    ):
        loans = [
            await start_loan(dev_client, session_factory, task_queue, make_borrower(session_factory), "1000000.00", 36)
            for _ in range(2)
        ]
        for loan in loans:
            await wait_for_status(loan.handle, "funding")
        headers = bearer(live_settings, limited, "investor")
        answers = await asyncio.gather(
            *(
                api.post(f"/v1/loans/{loan.loan_id}/investments", json={"amount": "400000.00"}, headers=headers)
                for loan in loans
            )
        )
        assert sorted(a.status_code for a in answers) == [201, 409]
        refused = next(a for a in answers if a.status_code == 409).json()
        assert refused["type"].endswith("annual-limit-exceeded") and refused["left"] == "200000.00"
        assert "259-FZ" in refused["detail"]
        limit = (await api.get("/v1/investors/me/annual-limit", headers=headers)).json()
        assert (limit["invested"], limit["left"], limit["qualified"]) == ("400000.00", "200000.00", False)
        with session_factory() as session:  # counted in the year the API reports
            counted = session.scalars(select(Investment.counted_year).where(Investment.investor_id == limited)).all()
        assert counted == [limit["year"]]
        rich = bearer(live_settings, qualified, "investor")
        answers = await asyncio.gather(
            *(
                api.post(f"/v1/loans/{loan.loan_id}/investments", json={"amount": "400000.00"}, headers=rich)
                for loan in loans
            )
        )
        assert [a.status_code for a in answers] == [201, 201]
        limit = (await api.get("/v1/investors/me/annual-limit", headers=rich)).json()
        assert (limit["qualified"], limit["left"]) == (True, None)
        for loan in loans:
            await loan.handle.terminate("test over")
    with session_factory() as session:
        reserved = wallet_accounts(session, wallet_of_user(session, limited).id)[1].balance
        assert reserved == D("400000.00")


def test_the_rule_is_validated_and_only_investors_have_one(client, seeded):
    from tests.api_helpers import sign_up

    investor, borrower = sign_up(client, "investor"), sign_up(client, "borrower")
    assert client.get("/v1/auto-invest/rule", headers=investor.headers).status_code == 404
    rule = {
        "is_active": True,
        "max_amount_per_loan": "20000.00",
        "min_loan_amount": "50000.00",
        "max_loan_amount": "1000000.00",
        "allowed_grades": ["B", "A"],
        "min_rate": "15.00",
        "max_term_months": 24,
        "reinvest_returns": False,
    }
    saved = client.put("/v1/auto-invest/rule", json=rule, headers=investor.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["allowed_grades"] == ["A", "B"] and saved.json()["max_amount_per_loan"] == "20000.00"
    assert client.get("/v1/auto-invest/rule", headers=investor.headers).json()["reinvest_returns"] is False
    for bad in (
        {"min_loan_amount": "2000000.00"},
        {"allowed_grades": ["F"]},
        {"allowed_grades": []},
        {"allowed_grades": ["A", "A"]},
        {"max_amount_per_loan": "-5"},
        {"min_rate": "250"},
        {"max_term_months": 0},
        {"max_portfolio_share_percent": "0"},
        {"approve": True},
    ):
        answer = client.put("/v1/auto-invest/rule", json={**rule, **bad}, headers=investor.headers)
        assert answer.status_code == 422, (bad, answer.text)
    assert client.put("/v1/auto-invest/rule", json=rule, headers=borrower.headers).status_code == 403
    assert client.get("/v1/investors/me/annual-limit", headers=investor.headers).json()["left"] == "600000.00"
    assert client.get("/v1/auto-invest/allocations", headers=investor.headers).json() == []


def open_funding_loan(session_factory) -> uuid.UUID:
    """A scored loan of 100,000 (grade B, 17%) open for funding, as the plan reads it."""
    from loans.requests import create_loan_request

    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            make_borrower(session_factory),
            product_code="standard",
            amount=D("100000.00"),
            term_months=12,
            purpose="test",
            simulation_id=None,
            client_key=None,
        )
        loan.status, loan.risk_grade, loan.rate_annual = "funding", "B", D("17.00")
        return loan.id


def test_a_retried_plan_finds_the_plan_already_made(session_factory, seeded):
    from investing.auto_invest import plan_run

    investor = make_investor(session_factory, "30000")
    give_rule(session_factory, investor, max_amount_per_loan=D("25000.00"), reinvest_returns=False)
    loan_id = open_funding_loan(session_factory)
    with unit_of_work(session_factory) as session:
        first = plan_run(session, "run-a", None, AT)
    with unit_of_work(session_factory) as session:
        again = plan_run(session, "run-a", None, AT)
        other = plan_run(session, "run-b", None, AT)
    assert again.run_no == first.run_no and other.run_no > first.run_no
    assert [(p.loan_id, p.investor_id, p.amount) for p in again.planned] == [(loan_id, investor, D("25000.00"))]
    assert again.investment_ids == first.investment_ids
    with session_factory() as session:
        rows = session.scalars(select(AutoInvestAllocation).where(AutoInvestAllocation.run_no == first.run_no)).all()
        assert len(rows) == 1 and "limited by the rule's maximum per loan" in rows[0].reason


def test_a_plan_with_no_active_rule_reads_no_loan(session_factory, seeded, engine):
    """The Schedule's run every 15 minutes: with no active rule there is nothing to plan, and
    the funding loans (10,000 of them in make bench) are not read at all. With a rule, the
    same loans are read and planned."""
    from sqlalchemy import event

    from investing.auto_invest import plan_run

    loan_id = open_funding_loan(session_factory)
    investor = make_investor(session_factory, "30000")
    give_rule(session_factory, investor, max_amount_per_loan=D("25000.00"), reinvest_returns=False)
    with unit_of_work(session_factory) as session:
        session.get_one(AutoInvestRuleRow, investor).is_active = False
    statements: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        with unit_of_work(session_factory) as session:
            idle = plan_run(session, "run-without-rules", None, AT)
        read_without = [s for s in statements if "loan_requests" in s]
        with unit_of_work(session_factory) as session:
            session.get_one(AutoInvestRuleRow, investor).is_active = True
        statements.clear()
        with unit_of_work(session_factory) as session:
            planned = plan_run(session, "run-with-a-rule", None, AT)
        read_with = [s for s in statements if "loan_requests" in s]
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert idle.planned == [] and read_without == []
    assert [(p.loan_id, p.amount) for p in planned.planned] == [(loan_id, D("25000.00"))] and read_with
