"""GET /v1/investors/me/portfolio: every figure of two investors' portfolios, built on the
database by the loan services themselves (disbursement, collections, default: no Temporal),
so the read side they fill is the one production fills, and the ledger they post to is there
to check against.

Investor A: a loan repaid (with a late fee, lent beside investor B), a loan defaulted (one
installment paid late, the next partly paid, then the reserve fund's cover), a loan still
funding, and a released reservation. Everything paid out on one day and back on one day a
year later, so the return is exact: out 15,000, back 15,450, 3.00 %.
Investor B: the same repaid loan and a running loan paid out a year ago today, with an
installment paid and one overdue and partly paid: 12.50 % on both, so 12.50 % together."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from core.db import unit_of_work
from domain.calendar import day_of
from ledger.accounts import wallet_accounts, wallet_of_user
from ledger.cash import request_withdrawal
from ledger.wallets import reserve
from loans.collections import collect_installments
from loans.defaults import default_loan
from loans.disbursement import disburse_loan
from loans.investor_shares import store_agreed_shares
from models.ledger import LedgerPosting, LedgerTransaction
from models.loan_workflow import AmountsDue, CollectInput, DefaultInput, DisburseInput, ScheduledInstallment
from models.loans import Investment, InvestmentInstallment, LoanRequest, RepaymentInstallment
from products.service import current_product
from tests.api_helpers import sign_up
from tests.loan_helpers import deposit_money, make_borrower

D = Decimal
URL = "/v1/investors/me/portfolio"
ZERO = D("0.00")
# Paid out on D0, everything back on D0 + 365 days: one year exactly (actual/365).
D0 = date(2023, 6, 1)
D1 = D0 + timedelta(days=365)


def noon(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(12), tzinfo=ZoneInfo(zone))


def _loan(session, borrower: uuid.UUID, amount: str, *, status: str, grade: str, rate: str) -> LoanRequest:
    loan = LoanRequest(
        borrower_id=borrower,
        product_id=current_product(session, "standard").id,
        amount=D(amount),
        term_months=12,
        purpose="portfolio test",
        status=status,
        risk_grade=grade,
        rate_annual=D(rate),
    )
    session.add(loan)
    session.flush()
    return loan


def _paid_out(
    session, borrower, lenders, schedule, *, grade: str, rate: str, at: datetime, made: datetime, reserve_fund="0"
):
    """A loan funded by `lenders` [(investor, amount)], whose investments were made at `made`
    (a second apart), and paid out at `at` by the platform's disbursement (reservations ->
    borrower, the reserve fund's contribution, the schedule, each investment's agreed parts)."""
    amount = sum((D(part) for _, part in lenders), ZERO)
    loan = _loan(session, borrower, f"{amount}", status="funded", grade=grade, rate=rate)
    for n, (investor, part) in enumerate(lenders):
        investment = Investment(
            investor_id=investor,
            loan_id=loan.id,
            amount=D(part),
            status="pending",
            created_at=made + timedelta(seconds=n),
        )
        session.add(investment)
        session.flush()
        reserve(
            session,
            wallet_of_user(session, investor).id,
            D(part),
            kind="investment_reserve",
            loan_id=loan.id,
            key=f"loan:{loan.id}:investment:{investment.id}:reserve",
        )
    disburse_loan(
        session,
        DisburseInput(
            loan_id=loan.id,
            borrower_id=borrower,
            amount=amount,
            currency="RUB",
            platform_fee=ZERO,
            reserve_contribution=D(reserve_fund),
            rate_annual=D(rate),
            installments=[
                ScheduledInstallment(payment_num=n, due_date=due, principal=D(p), interest=D(i))
                for n, (due, p, i) in enumerate(schedule, start=1)
            ],
            at=at,
        ),
    )
    loan.status = "active"
    return loan


def _wallet_holds(session, user: uuid.UUID, amount: str) -> None:
    """The borrower's available money is exactly `amount` (a deposit, or a withdrawal asked)."""
    available, _ = wallet_accounts(session, wallet_of_user(session, user).id)
    difference = D(amount) - available.balance
    if difference > 0:
        deposit_money(session, user, difference)
    elif difference < 0:
        request_withdrawal(session, user, -difference)


def _collect(session, loan: LoanRequest, key: str, due: list[tuple[int, str, str, str]], at: datetime):
    """The platform's collection of what is due [(payment_num, fee, interest, principal)]."""
    return collect_installments(
        session,
        CollectInput(
            loan_id=loan.id,
            borrower_id=loan.borrower_id,
            currency="RUB",
            key=f"loan:{loan.id}:collection:{key}",
            purpose="installment",
            items=[
                AmountsDue(payment_num=n, fee=D(fee), interest=D(interest), principal=D(principal))
                for n, fee, interest, principal in due
            ],
            at=at,
        ),
    )


@pytest.fixture
def world(client, session_factory, settings, seeded):
    zone = settings.PLATFORM_TIME_ZONE
    today = day_of(datetime.now(UTC), zone)
    a, b = sign_up(client, "investor"), sign_up(client, "investor")
    ia, ib = uuid.UUID(a.id), uuid.UUID(b.id)
    borrowers = [make_borrower(session_factory) for _ in range(5)]
    ids: dict[str, uuid.UUID] = {}
    with unit_of_work(session_factory) as session:
        deposit_money(session, ia, D("15000.00"))
        deposit_money(session, ib, D("18000.00"))
        # L1: A and B lend 10,000 each, one installment a year later, paid with a late fee of 100
        # (shared by each one's part of the installment: 50 each). 1,000 goes to the reserve fund.
        l1 = _paid_out(
            session,
            borrowers[0],
            [(ia, "10000.00"), (ib, "10000.00")],
            [(D1 - timedelta(days=3), "20000.00", "2400.00")],
            grade="A",
            rate="12.00",
            at=noon(D0, zone),
            made=noon(D0, zone) - timedelta(days=9),
            reserve_fund="1000.00",
        )
        _wallet_holds(session, l1.borrower_id, "22500.00")
        paid = _collect(session, l1, "1", [(1, "100.00", "2400.00", "20000.00")], noon(D1, zone))
        assert paid.total == D("22500.00")
        for investment in session.scalars(select(Investment).where(Investment.loan_id == l1.id)):
            investment.status = "repaid"
        l1.status, l1.closed_at = "repaid", noon(D1, zone)
        # L2: A lends 5,000; installment 1 is paid late, on D1; installment 2 gets 200 of its
        # interest the same day; then the loan defaults: the fund's 1,000 covers part of the
        # 2,500 of principal outstanding, A loses 1,500.
        l2 = _paid_out(
            session,
            borrowers[1],
            [(ia, "5000.00")],
            [(D0 + timedelta(days=200), "2500.00", "500.00"), (D1, "2500.00", "500.00")],
            grade="C",
            rate="20.00",
            at=noon(D0, zone),
            made=noon(D0, zone) - timedelta(days=5),
        )
        _wallet_holds(session, l2.borrower_id, "3200.00")
        paid = _collect(
            session, l2, "1", [(1, "0", "500.00", "2500.00"), (2, "0", "500.00", "2500.00")], noon(D1, zone)
        )
        assert paid.total == D("3200.00")
        result = default_loan(
            session,
            DefaultInput(
                loan_id=l2.id,
                currency="RUB",
                outstanding_principal=D("2500.00"),
                written_off=[AmountsDue(payment_num=2, fee=ZERO, interest=D("300.00"), principal=D("2500.00"))],
                at=noon(D1, zone),
            ),
        )
        assert (result.covered, result.loss) == (D("1000.00"), D("1500.00"))
        l2.status = "defaulted"
        # L3: A's 3,000 reserved for a loan still funding: lent nothing yet.
        l3 = _loan(session, borrowers[2], "50000.00", status="funding", grade="B", rate="15.50")
        session.add(
            Investment(
                investor_id=ia,
                loan_id=l3.id,
                amount=D("3000.00"),
                status="pending",
                created_at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        # L4: A's 2,000 released when the loan was not funded: no holding at all.
        l4 = _loan(session, borrowers[3], "40000.00", status="rejected", grade="D", rate="25.00")
        session.add(Investment(investor_id=ia, loan_id=l4.id, amount=D("2000.00"), status="released"))
        # L5: B lends 8,000 a year ago today. Installment 1 (2,000 + 800) is paid today,
        # installment 2 (due yesterday: 3,000 + 200) gets 700 today and is overdue,
        # installment 3 (3,000 + 100) is due in 40 days.
        l5 = _paid_out(
            session,
            borrowers[4],
            [(ib, "8000.00")],
            [
                (today - timedelta(days=30), "2000.00", "800.00"),
                (today - timedelta(days=1), "3000.00", "200.00"),
                (today + timedelta(days=40), "3000.00", "100.00"),
            ],
            grade="B",
            rate="17.25",
            at=noon(today - timedelta(days=365), zone),
            made=noon(today - timedelta(days=370), zone),
        )
        _wallet_holds(session, l5.borrower_id, "3500.00")
        paid = _collect(
            session, l5, "1", [(1, "0", "800.00", "2000.00"), (2, "0", "200.00", "3000.00")], noon(today, zone)
        )
        assert paid.total == D("3500.00")
        session.execute(
            update(RepaymentInstallment)
            .where(RepaymentInstallment.loan_id == l5.id, RepaymentInstallment.payment_num == 2)
            .values(status="overdue")
        )
        ids.update(l1=l1.id, l2=l2.id, l3=l3.id, l4=l4.id, l5=l5.id)
        investments = {
            (i.investor_id, i.loan_id): i.id
            for i in session.scalars(select(Investment).where(Investment.investor_id.in_([ia, ib])))
        }
    return {"a": a, "b": b, "today": today, "zone": zone, "loans": ids, "investments": investments, "ia": ia, "ib": ib}


def _get(client, account) -> dict:
    response = client.get(URL, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


def test_investor_a_every_figure(client, world):
    body = _get(client, world["a"])
    loans, ia = world["loans"], world["ia"]
    assert {k: v for k, v in body.items() if k not in ("by_status", "by_grade", "holdings", "expected_cash_flow")} == {
        "currency": "RUB",
        "invested_total": "18000.00",  # 10,000 + 5,000 + 3,000 reserved; the released 2,000 is not
        "outstanding_principal": "0.00",  # repaid, defaulted (cover and loss now), not lent yet
        "received_principal": "12500.00",  # 10,000 + installment 1 of L2
        "received_interest": "1900.00",  # 1,200 + 500 + the 200 paid on installment 2
        "received_fees": "50.00",
        "losses": "1500.00",
        "reserve_cover": "1000.00",
        # out 15,000 on D0 (the funding loan lends nothing yet), back 11,250 + 3,200 + 1,000 on D1
        "xirr_percent": "3.00",
    }
    assert body["by_status"] == [
        {"status": "funding", "count": 1, "invested": "3000.00", "outstanding_principal": "0.00"},
        {"status": "repaid", "count": 1, "invested": "10000.00", "outstanding_principal": "0.00"},
        {"status": "defaulted", "count": 1, "invested": "5000.00", "outstanding_principal": "0.00"},
    ]
    assert body["by_grade"] == [
        {"grade": "A", "count": 1, "invested": "10000.00", "outstanding_principal": "0.00"},
        {"grade": "B", "count": 1, "invested": "3000.00", "outstanding_principal": "0.00"},
        {"grade": "C", "count": 1, "invested": "5000.00", "outstanding_principal": "0.00"},
    ]
    holdings = body["holdings"]
    for holding in holdings:
        assert datetime.fromisoformat(holding.pop("created_at"))
    # newest first; only A's own investments; the released one is not there
    assert holdings == [
        {
            "investment_id": str(world["investments"][(ia, loans["l3"])]),
            "loan_id": str(loans["l3"]),
            "loan_status": "funding",
            "grade": "B",
            "rate_annual": "15.50",
            "amount": "3000.00",
            "outstanding_principal": "0.00",
            "received_principal": "0.00",
            "received_interest": "0.00",
            "received_fees": "0.00",
            "loss_amount": None,
            "reserve_cover_amount": None,
        },
        {
            "investment_id": str(world["investments"][(ia, loans["l2"])]),
            "loan_id": str(loans["l2"]),
            "loan_status": "defaulted",
            "grade": "C",
            "rate_annual": "20.00",
            "amount": "5000.00",
            "outstanding_principal": "0.00",
            "received_principal": "2500.00",
            "received_interest": "700.00",
            "received_fees": "0.00",
            "loss_amount": "1500.00",
            "reserve_cover_amount": "1000.00",
        },
        {
            "investment_id": str(world["investments"][(ia, loans["l1"])]),
            "loan_id": str(loans["l1"]),
            "loan_status": "repaid",
            "grade": "A",
            "rate_annual": "12.00",
            "amount": "10000.00",
            "outstanding_principal": "0.00",
            "received_principal": "10000.00",
            "received_interest": "1200.00",
            "received_fees": "50.00",
            "loss_amount": None,
            "reserve_cover_amount": None,
        },
    ]
    assert body["expected_cash_flow"] == []


def test_investor_b_every_figure_with_a_running_loan(client, world):
    before = world["today"]
    body = _get(client, world["b"])
    if day_of(datetime.now(UTC), world["zone"]) != before:
        pytest.skip("the platform's day changed while the test ran: today's inflow moved")
    loans, ib, today = world["loans"], world["ib"], world["today"]
    assert {k: v for k, v in body.items() if k not in ("by_status", "by_grade", "holdings", "expected_cash_flow")} == {
        "currency": "RUB",
        "invested_total": "18000.00",
        "outstanding_principal": "5500.00",  # 8,000 - 2,000 - 500
        "received_principal": "12500.00",  # 10,000 + 2,000 + 500
        "received_interest": "2200.00",  # 1,200 + 800 + 200
        "received_fees": "50.00",
        "losses": "0.00",
        "reserve_cover": "0.00",
        # L1: 10,000 -> 11,250 in 365 days; L5: 8,000 -> 2,800 + 700 + 5,500 at par, in 365 days
        "xirr_percent": "12.50",
    }
    assert body["by_status"] == [
        {"status": "active", "count": 1, "invested": "8000.00", "outstanding_principal": "5500.00"},
        {"status": "repaid", "count": 1, "invested": "10000.00", "outstanding_principal": "0.00"},
    ]
    assert body["by_grade"] == [
        {"grade": "A", "count": 1, "invested": "10000.00", "outstanding_principal": "0.00"},
        {"grade": "B", "count": 1, "invested": "8000.00", "outstanding_principal": "5500.00"},
    ]
    assert [(h["loan_id"], h["investment_id"]) for h in body["holdings"]] == [
        (str(loans["l5"]), str(world["investments"][(ib, loans["l5"])])),
        (str(loans["l1"]), str(world["investments"][(ib, loans["l1"])])),
    ]
    running = body["holdings"][0]
    assert (running["loan_status"], running["outstanding_principal"], running["received_principal"]) == (
        "active",
        "5500.00",
        "2500.00",
    )
    assert (running["received_interest"], running["rate_annual"], running["loss_amount"]) == ("1000.00", "17.25", None)
    # what is still due: the overdue installment's principal in its own month, the next in its
    overdue, next_due = today - timedelta(days=1), today + timedelta(days=40)
    assert body["expected_cash_flow"] == [
        {"month": f"{overdue:%Y-%m}", "principal": "2500.00", "interest": "0.00", "total": "2500.00"},
        {"month": f"{next_due:%Y-%m}", "principal": "3000.00", "interest": "100.00", "total": "3100.00"},
    ]


def test_receipts_and_cover_agree_with_the_ledger(client, world, session_factory):
    """Everything the portfolio says came back is what the ledger paid into the wallet from
    collections and the reserve fund."""
    for who, investor in (("a", world["ia"]), ("b", world["ib"])):
        body = _get(client, world[who])
        with session_factory() as session:
            available, _ = wallet_accounts(session, wallet_of_user(session, investor).id)
            posted = session.scalar(
                select(func.coalesce(func.sum(LedgerPosting.amount), 0))
                .join(LedgerTransaction, LedgerTransaction.id == LedgerPosting.transaction_id)
                .where(
                    LedgerPosting.account_id == available.id,
                    LedgerTransaction.kind.in_(("installment_collection", "reserve_cover")),
                )
            )
        shown = sum(D(body[k]) for k in ("received_principal", "received_interest", "received_fees", "reserve_cover"))
        assert shown == posted and posted > 0


def test_a_new_investor_has_an_empty_portfolio(client, seeded):
    body = _get(client, sign_up(client, "investor"))
    assert body == {
        "currency": "RUB",
        "invested_total": "0.00",
        "outstanding_principal": "0.00",
        "received_principal": "0.00",
        "received_interest": "0.00",
        "received_fees": "0.00",
        "losses": "0.00",
        "reserve_cover": "0.00",
        "xirr_percent": None,
        "by_status": [],
        "by_grade": [],
        "holdings": [],
        "expected_cash_flow": [],
    }


def test_only_investors(client, seeded, operator, compliance):
    assert client.get(URL).status_code == 401
    for account in (sign_up(client, "borrower"), operator, compliance):
        response = client.get(URL, headers=account.headers)
        assert response.status_code == 403, response.text


def test_a_loan_paid_out_before_parts_were_stored_shows_what_its_next_collection_will_store(
    client, session_factory, settings, seeded
):
    """Loans paid out before migration 0009 have no stored parts until their next collection
    stores (and backfills) them: the portfolio shows, without writing, exactly what that
    collection will store."""
    zone = settings.PLATFORM_TIME_ZONE
    a = sign_up(client, "investor")
    other = sign_up(client, "investor")
    today = day_of(datetime.now(UTC), zone)
    borrower = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        loan = _loan(session, borrower, "14000.00", status="active", grade="C", rate="18.00")
        loan.disbursed_at = noon(today - timedelta(days=90), zone)
        for n, (investor, amount) in enumerate(((a.id, "6000.00"), (other.id, "8000.00"))):
            session.add(
                Investment(
                    investor_id=uuid.UUID(investor),
                    loan_id=loan.id,
                    amount=D(amount),
                    status="active",
                    created_at=loan.disbursed_at + timedelta(seconds=n),
                )
            )
        session.add_all(
            [
                RepaymentInstallment(
                    loan_id=loan.id,
                    payment_num=1,
                    due_date=today - timedelta(days=60),
                    principal=D("7000.00"),
                    interest=D("900.00"),
                    status="paid",
                    paid_at=noon(today - timedelta(days=55), zone),
                    paid_principal=D("7000.00"),
                    paid_interest=D("900.00"),
                    late_fee_accrued=D("33.33"),
                    late_fee_paid=D("33.33"),
                ),
                RepaymentInstallment(
                    loan_id=loan.id,
                    payment_num=2,
                    due_date=today + timedelta(days=20),
                    principal=D("7000.00"),
                    interest=D("555.55"),
                    status="pending",
                ),
            ]
        )
        loan_id = loan.id
    derived = _get(client, a)
    with unit_of_work(session_factory) as session:
        assert not session.scalar(select(func.count()).where(InvestmentInstallment.loan_id == loan_id))
        store_agreed_shares(session, loan_id)  # the next collection's first step
        assert session.scalar(select(func.count()).where(InvestmentInstallment.loan_id == loan_id)) == 4
    assert _get(client, a) == derived
    # about 6/14 of installment 1 (to the kopek as domain/investor_shares.py rounds it)
    assert (derived["received_principal"], derived["outstanding_principal"]) == ("3000.00", "3000.00")
    assert (derived["received_interest"], derived["received_fees"]) == ("385.72", "14.28")
    (month,) = derived["expected_cash_flow"]
    assert D(month["principal"]) == D("3000.00") and month["month"] == f"{today + timedelta(days=20):%Y-%m}"
    assert derived["xirr_percent"] is not None


def test_an_early_repayment_leaves_nothing_due_before_the_loan_is_closed(client, session_factory, settings, seeded):
    """An early repayment forgives the interest of months not begun: its installments are paid
    with less interest than agreed. Until the loan is closed (moments later) it still runs, and
    nothing more is due on it."""
    zone = settings.PLATFORM_TIME_ZONE
    today = day_of(datetime.now(UTC), zone)
    investor = sign_up(client, "investor")
    borrower = make_borrower(session_factory)
    with unit_of_work(session_factory) as session:
        deposit_money(session, uuid.UUID(investor.id), D("10000.00"))
        loan = _paid_out(
            session,
            borrower,
            [(uuid.UUID(investor.id), "10000.00")],
            [(today + timedelta(days=10), "5000.00", "150.00"), (today + timedelta(days=40), "5000.00", "75.00")],
            grade="A",
            rate="18.00",
            at=noon(today - timedelta(days=20), zone),
            made=noon(today - timedelta(days=25), zone),
        )
        _wallet_holds(session, borrower, "10100.00")
        early = collect_installments(
            session,
            CollectInput(
                loan_id=loan.id,
                borrower_id=borrower,
                currency="RUB",
                key=f"loan:{loan.id}:early-repayment",
                purpose="early_repayment",
                items=[
                    AmountsDue(payment_num=1, fee=ZERO, interest=D("100.00"), principal=D("5000.00")),
                    AmountsDue(payment_num=2, fee=ZERO, interest=ZERO, principal=D("5000.00")),
                ],
                require_full=True,
                at=noon(today, zone),
            ),
        )
        assert early.total == D("10100.00")
    body = _get(client, investor)
    assert (body["outstanding_principal"], body["received_principal"], body["received_interest"]) == (
        "0.00",
        "10000.00",
        "100.00",
    )
    assert body["by_status"] == [
        {"status": "active", "count": 1, "invested": "10000.00", "outstanding_principal": "0.00"}
    ]
    assert body["expected_cash_flow"] == []
