"""Each investor's receipts equal their agreement, to the kopek: properties of
domain/investor_shares.py over random loans, investors and payment histories."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.collection import collection_waterfall
from domain.investor_shares import (
    AgreedShare,
    Entitlement,
    ScheduledAmounts,
    agreed_shares,
    split_by_what_is_owed,
    split_installment_payment,
)
from domain.money import ZERO
from domain.schedule import ScheduleError, build_schedule
from models.loan_workflow import InstallmentAmounts

D = Decimal


@st.composite
def loans_and_investments(draw):
    """A loan's schedule and investments that add up to it (some equal, some tiny)."""
    amount = D(draw(st.integers(1_000_00, 5_000_000_00))) / 100
    rate = D(draw(st.integers(0, 40_0000))) / 10000
    term = draw(st.integers(1, 60))
    method = draw(st.sampled_from(["annuity", "differentiated"]))
    try:
        schedule = build_schedule(amount, rate, term, date(2026, 1, 31), method)
    except ScheduleError:
        schedule = build_schedule(amount, D("10"), term, date(2026, 1, 31), method)
    count = draw(st.integers(1, 12))
    if draw(st.booleans()) and amount * 100 % count == 0:
        parts = [amount / count] * count  # equal investors: the case ties used to favour the first
    else:
        cuts = sorted(draw(st.lists(st.integers(1, int(amount * 100) - 1), max_size=count - 1, unique=True)))
        edges = [0, *cuts, int(amount * 100)]
        parts = [D(b - a) / 100 for a, b in zip(edges, edges[1:])]
    lent = {f"investment-{n}": part for n, part in enumerate(parts)}
    items = [ScheduledAmounts(i.payment_num, i.principal, i.interest) for i in schedule.installments]
    return items, lent


@settings(max_examples=300, deadline=None)
@given(loans_and_investments())
def test_the_agreement_adds_up_every_way(loan):
    items, lent = loan
    shares = agreed_shares(items, lent)
    total_interest = sum((i.interest for i in items), ZERO)
    lent_total = sum(lent.values(), ZERO)
    for n, item in enumerate(items):
        # every installment's parts add up to it, none negative
        assert sum((shares[k][n].principal for k in lent), ZERO) == item.principal
        assert sum((shares[k][n].interest for k in lent), ZERO) == item.interest
        assert all(shares[k][n].principal >= 0 and shares[k][n].interest >= 0 for k in lent)
    for k, amount in lent.items():
        # each investment gets back exactly what it lent, and its interest within a kopek of pro rata
        assert sum((s.principal for s in shares[k]), ZERO) == amount
        exact = total_interest * amount / lent_total
        assert abs(sum((s.interest for s in shares[k]), ZERO) - exact) < D("0.01")
    # equal investments get equal totals, to within the one kopek a total cannot split
    by_amount: dict[Decimal, list[Decimal]] = {}
    for k, amount in lent.items():
        by_amount.setdefault(amount, []).append(sum((s.total for s in shares[k]), ZERO))
    assert all(max(t) - min(t) <= D("0.01") for t in by_amount.values())


@settings(max_examples=300, deadline=None)
@given(loans_and_investments(), st.data())
def test_receipts_equal_the_agreement_whatever_the_payment_history(loan, data):
    """The borrower pays in random pieces (the collection waterfall: late fee, interest,
    principal, oldest first); once everything is paid, every investment has received exactly
    its agreement's figures, and never more than it was owed at any moment."""
    items, lent = loan
    shares = agreed_shares(items, lent)
    received = {k: [[ZERO, ZERO] for _ in items] for k in lent}
    fees_charged = {n: ZERO for n in range(len(items))}
    owed = [
        InstallmentAmounts(payment_num=i.payment_num, fee=ZERO, interest=i.interest, principal=i.principal)
        for i in items
    ]
    fees_received = {k: ZERO for k in lent}
    while any(o.total for o in owed):
        # sometimes a late fee is charged on the oldest unpaid installment
        oldest = next(n for n, o in enumerate(owed) if o.total)
        if data.draw(st.booleans()):
            fee = D(data.draw(st.integers(0, 500_00))) / 100
            fees_charged[oldest] += fee
            owed[oldest] = owed[oldest].model_copy(update={"fee": owed[oldest].fee + fee})
        due = sum((o.total for o in owed), ZERO)
        # a part of what is due (the simplest history: everything at once)
        short = data.draw(st.integers(0, 99))
        pay = max((due * (100 - short) / 100).quantize(D("0.01"), rounding="ROUND_DOWN"), D("0.01"))
        for paid in collection_waterfall(pay, owed):
            n = paid.payment_num - 1
            standing = {k: Entitlement(shares[k][n], received[k][n][0], received[k][n][1]) for k in lent}
            receipts = split_installment_payment(paid.principal, paid.interest, paid.fee, standing)
            assert sum((r.total for r in receipts.values()), ZERO) == paid.total
            for k, receipt in receipts.items():
                received[k][n][0] += receipt.principal
                received[k][n][1] += receipt.interest
                fees_received[k] += receipt.fee
                assert received[k][n][0] <= shares[k][n].principal and received[k][n][1] <= shares[k][n].interest
                assert min(receipt.principal, receipt.interest, receipt.fee) >= 0
            owed[n] = owed[n].model_copy(
                update={
                    "fee": owed[n].fee - paid.fee,
                    "interest": owed[n].interest - paid.interest,
                    "principal": owed[n].principal - paid.principal,
                }
            )
    for k in lent:
        assert [tuple(r) for r in received[k]] == [(s.principal, s.interest) for s in shares[k]]
    assert sum(fees_received.values(), ZERO) == sum(fees_charged.values(), ZERO)


def test_three_equal_investors_receive_their_agreements():
    """The issue's case: 90,000 at 17% over 36 months, three investors of 30,000. Split
    collection by collection with ties to the earliest, they received 38,505.17 / 38,504.82 /
    38,504.82 against their agreements; now the agreement decides and the odd kopek of a total
    that does not split in three is the only difference between them."""
    schedule = build_schedule(D("90000.00"), D("17"), 36, date(2026, 1, 15))
    items = [ScheduledAmounts(i.payment_num, i.principal, i.interest) for i in schedule.installments]
    shares = agreed_shares(items, {"a": D("30000.00"), "b": D("30000.00"), "c": D("30000.00")})
    totals = [sum((s.total for s in shares[k]), ZERO) for k in "abc"]
    assert totals == [D("38504.94"), D("38504.94"), D("38504.93")]
    assert sum(totals) == schedule.total_payable


def test_a_split_never_pays_more_than_is_owed():
    assert split_by_what_is_owed(D("0.02"), {"a": D("0.01"), "b": D("5.00")}) == {"a": D("0.00"), "b": D("0.02")}
    with pytest.raises(ValueError, match="more than"):
        split_by_what_is_owed(D("5.02"), {"a": D("0.01"), "b": D("5.00")})
    assert AgreedShare(1, D("1.00"), D("0.50")).total == D("1.50")


def test_shares_of_a_loan_with_hundreds_of_investments_are_stored(session_factory, seeded):
    """400 investments in a 36-month loan: 14,400 parts, more parameters than PostgreSQL
    takes in one statement; stored all the same, adding up to every installment."""
    from sqlalchemy import func, select

    from core.db import unit_of_work
    from loans.investor_shares import store_agreed_shares
    from loans.requests import create_loan_request
    from models.loans import Investment, InvestmentInstallment, RepaymentInstallment
    from tests.loan_helpers import make_borrower, make_investor

    borrower, investor = make_borrower(session_factory), make_investor(session_factory, "0")
    schedule = build_schedule(D("400000.00"), D("17"), 36, date(2026, 1, 15))
    with unit_of_work(session_factory) as session:
        loan, _ = create_loan_request(
            session,
            borrower,
            product_code="standard",
            amount=D("400000.00"),
            term_months=36,
            purpose="x",
            simulation_id=None,
            client_key=None,
        )
        for _ in range(400):
            session.add(Investment(loan_id=loan.id, investor_id=investor, amount=D("1000.00"), status="active"))
        for item in schedule.installments:
            session.add(
                RepaymentInstallment(
                    loan_id=loan.id,
                    payment_num=item.payment_num,
                    due_date=item.due_date,
                    principal=item.principal,
                    interest=item.interest,
                    status="pending",
                )
            )
        session.flush()
        store_agreed_shares(session, loan.id)
        store_agreed_shares(session, loan.id)  # a retry finds them stored
    with session_factory() as session:
        count, principal, interest = session.execute(
            select(
                func.count(), func.sum(InvestmentInstallment.principal), func.sum(InvestmentInstallment.interest)
            ).where(InvestmentInstallment.loan_id == loan.id)
        ).one()
    assert (count, principal, interest) == (400 * 36, D("400000.00"), schedule.total_interest)
