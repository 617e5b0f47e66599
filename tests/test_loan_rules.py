"""The loan workflow's rules, pure (domain/): the lifecycle table, the investment checks,
the collection waterfall, the early-repayment quote, the default's split. Properties over
generated inputs, and examples whose figures are worked out by hand."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import Holding
from domain.collection import collection_waterfall, total_of
from domain.default_cover import reserve_cover, split_default
from domain.early_repayment import quote_early_repayment
from domain.investment_rules import check_investment
from domain.refusals import REFUSALS, InvalidInvestment, LoanRefusal, OverFunding
from models.loan_status import ALLOWED_TRANSITIONS, FINAL_STATUSES, IllegalTransition, LoanStatus, check_transition
from models.loan_workflow import AmountsDue, InstallmentAmounts, InstallmentState

D = Decimal
kopecks = st.integers(min_value=0, max_value=10_000_000).map(lambda n: D(n) / 100)


# -- the lifecycle -----------------------------------------------------------------------------------
def test_the_lifecycle_table_is_the_diagram():
    reachable, frontier = {LoanStatus.pending}, [LoanStatus.pending]
    while frontier:
        for nxt in ALLOWED_TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(LoanStatus)  # every status is reachable from a request
    assert set(FINAL_STATUSES) == {LoanStatus.repaid, LoanStatus.defaulted, LoanStatus.rejected}
    # money moves only forward: nothing returns to funding once funded, nor leaves an end
    assert LoanStatus.funding not in ALLOWED_TRANSITIONS[LoanStatus.funded]
    assert all(LoanStatus.active not in ALLOWED_TRANSITIONS[s] for s in LoanStatus if s != LoanStatus.funded)
    check_transition(LoanStatus.funding, LoanStatus.funded)
    with pytest.raises(IllegalTransition, match="from repaid to active"):
        check_transition(LoanStatus.repaid, LoanStatus.active)
    with pytest.raises(IllegalTransition):
        check_transition(LoanStatus.funding, LoanStatus.active)  # never without the funded step


def test_every_refusal_has_its_problem_in_the_apis_one_table():
    from api.workflow_calls import REFUSAL_PROBLEMS

    assert set(REFUSALS) - {"TryAgain"} <= set(REFUSAL_PROBLEMS)  # TryAgain: the API sends again


def test_refusals_keep_the_types_loan_histories_carry():
    # these names are in the update failures of running loans' histories and in the API's table
    assert set(REFUSALS) == {
        "TryAgain",
        "LoanNotFunding",
        "OverFunding",
        "InvalidInvestment",
        "NotAwaitingReview",
        "LoanNotActive",
        "InsufficientFunds",
        "NotTradeable",  # (the secondary market's trade update)
        "AgreementsPending",  # (the trade update, while the agreements render beside the repayment)
        "AgreementsRefused",  # (the trade update, while the agreements are refused for good)
    }


# -- investing -------------------------------------------------------------------------------------
RULES = {"loan_amount": D("100000.00"), "min_investment": D("1000.00"), "max_investor_share_percent": D("50")}


@pytest.mark.parametrize(
    ("amount", "funded", "already", "refusal", "message"),
    [
        ("0", "0", "0", InvalidInvestment, "positive"),
        ("1000.001", "0", "0", InvalidInvestment, "two decimals"),
        ("999.99", "0", "0", InvalidInvestment, "minimum investment is 1000.00"),
        ("20000.00", "90000.00", "0", OverFunding, "only 10000.00 is left"),
        ("30000.00", "0", "25000.00", InvalidInvestment, "at most 50% of this loan (50000.00); you hold 25000.00"),
    ],
)
def test_investment_refusals(amount, funded, already, refusal, message):
    with pytest.raises(refusal, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_investment(D(amount), funded_amount=D(funded), already_invested=D(already), **RULES)


def test_the_last_kopecks_may_be_under_the_minimum():
    check_investment(D("500.00"), funded_amount=D("99500.00"), already_invested=D(0), **RULES)
    check_investment(D("50000.00"), funded_amount=D(0), already_invested=D(0), **RULES)  # exactly the cap


@given(amount=kopecks, funded=kopecks, already=kopecks)
def test_an_accepted_investment_never_over_funds_nor_breaks_the_cap(amount, funded, already):
    funded = min(funded, RULES["loan_amount"])
    try:
        check_investment(amount, funded_amount=funded, already_invested=already, **RULES)
    except LoanRefusal:
        return
    assert 0 < amount <= RULES["loan_amount"] - funded
    assert already + amount <= D("50000.00")
    assert amount >= RULES["min_investment"] or amount == RULES["loan_amount"] - funded


# -- collection waterfall --------------------------------------------------------------------------
owed_items = st.lists(st.tuples(kopecks, kopecks, kopecks), min_size=1, max_size=6).map(
    lambda rows: [AmountsDue(payment_num=n + 1, fee=f, interest=i, principal=p) for n, (f, i, p) in enumerate(rows)]
)


@given(available=kopecks, owed=owed_items)
def test_the_waterfall_takes_what_is_there_up_to_what_is_owed_oldest_first(available, owed):
    paid = collection_waterfall(available, owed)
    assert total_of(paid) == min(available, total_of(owed))
    for p, o in zip(paid, owed, strict=True):
        assert (0 <= p.fee <= o.fee) and (0 <= p.interest <= o.interest) and (0 <= p.principal <= o.principal)
    # nothing of a later installment, nor of a later kind, before an earlier one is paid in full
    flat_paid = [x for p in paid for x in (p.fee, p.interest, p.principal)]
    flat_owed = [x for o in owed for x in (o.fee, o.interest, o.principal)]
    short = next((k for k, (p, o) in enumerate(zip(flat_paid, flat_owed)) if p < o), None)
    if short is not None:
        assert all(p == 0 for p in flat_paid[short + 1 :])


def test_a_partial_collection_pays_the_fee_then_interest_then_principal():
    owed = [
        AmountsDue(payment_num=1, fee=D("55.30"), interest=D("900.00"), principal=D("7000.00")),
        AmountsDue(payment_num=2, fee=D("0.00"), interest=D("900.00"), principal=D("7000.00")),
    ]
    paid = collection_waterfall(D("1000.00"), owed)
    assert paid == [
        InstallmentAmounts(payment_num=1, fee=D("55.30"), interest=D("900.00"), principal=D("44.70")),
        InstallmentAmounts(payment_num=2, fee=D("0.00"), interest=D("0.00"), principal=D("0.00")),
    ]
    assert not paid[0].settles(owed[0])
    assert collection_waterfall(D("20000.00"), owed)[0].settles(owed[0])


# -- early repayment -------------------------------------------------------------------------------
def _installments(start: date, rows: list[tuple[str, str]]) -> list[InstallmentState]:
    return [
        InstallmentState(
            payment_num=n + 1, due_date=start + timedelta(days=30 * (n + 1)), principal=D(p), interest=D(i)
        )
        for n, (p, i) in enumerate(rows)
    ]


def test_early_repayment_quote_by_hand():
    start = date(2027, 1, 10)
    rows = _installments(start, [("30000.00", "1000.00"), ("33000.00", "700.00"), ("37000.00", "400.00")])
    rows[0].status, rows[0].paid_principal, rows[0].paid_interest = "paid", D("30000.00"), D("1000.00")
    today = rows[0].due_date + timedelta(days=15)
    quote = quote_early_repayment(rows, today, start, D("14.00"))
    # 70,000 outstanding x 14% x 15/365 = 402.739... -> 402.74, capped by the 700.00 of the month
    assert quote == [
        AmountsDue(payment_num=2, fee=D(0), interest=D("402.74"), principal=D("33000.00")),
        AmountsDue(payment_num=3, fee=D(0), interest=D(0), principal=D("37000.00")),
    ]


@given(
    days=st.integers(min_value=0, max_value=120),
    rate=st.integers(min_value=0, max_value=3000).map(lambda n: D(n) / 100),
)
def test_early_repayment_takes_all_the_principal_and_never_more_interest_than_scheduled(days, rate):
    start = date(2027, 1, 31)
    rows = _installments(start, [("30000.00", "1000.00"), ("33000.00", "700.00"), ("37000.00", "400.00")])
    today = start + timedelta(days=days)
    quote = quote_early_repayment(rows, today, start, rate)
    assert sum((q.principal for q in quote), D(0)) == D("100000.00")
    assert [q.payment_num for q in quote] == [1, 2, 3]
    for q, row in zip(quote, rows, strict=True):
        assert 0 <= q.interest <= row.interest


# -- default -------------------------------------------------------------------------------------
holdings_st = st.lists(st.tuples(st.integers(0, 3), st.integers(1, 5_000_000)), min_size=1, max_size=8).map(
    lambda rows: [
        Holding(investment_id=uuid.UUID(int=n + 1), investor_id=uuid.UUID(int=1000 + who), amount=D(cents) / 100)
        for n, (who, cents) in enumerate(rows)
    ]
)


@given(holdings=holdings_st, fund=kopecks)
def test_the_default_split_adds_up_to_the_kopek(holdings, fund):
    # each investment is owed some principal (its amount stands in for it here)
    owed = {h.investment_id: h.amount for h in holdings}
    outstanding = sum(owed.values(), D(0))
    covered = reserve_cover(fund, outstanding)
    assert covered == min(fund, outstanding)
    split = split_default(covered, owed, {h.investment_id: h.investor_id for h in holdings})
    assert sum(split.cover_by_investor.values(), D(0)) == covered
    assert sum((c for c, _ in split.by_investment.values()), D(0)) == covered
    assert split.loss == outstanding - covered
    assert set(split.by_investment) == {h.investment_id for h in holdings}
    # nobody is covered above what they are owed; cover + loss is exactly what each is owed
    assert all(c >= 0 and lost >= 0 for c, lost in split.by_investment.values())
    assert all(c + lost == owed[k] for k, (c, lost) in split.by_investment.items())


def test_the_default_split_by_hand():
    a, b = uuid.UUID(int=1001), uuid.UUID(int=1002)
    owed = {uuid.UUID(int=1): D("45000.00"), uuid.UUID(int=2): D("27000.00"), uuid.UUID(int=3): D("18000.00")}
    investor_of = {uuid.UUID(int=1): a, uuid.UUID(int=2): b, uuid.UUID(int=3): a}
    split = split_default(reserve_cover(D("52000.00"), D("90000.00")), owed, investor_of)
    # 52,000 of the 90,000 owed is covered: 52/90 of each investment's principal still owed,
    # 26,000 / 15,600 / 10,400, and investor a (two investments) gets 36,400
    assert split.cover_by_investor == {a: D("36400.00"), b: D("15600.00")}
    assert split.by_investment == {
        uuid.UUID(int=1): (D("26000.00"), D("19000.00")),
        uuid.UUID(int=2): (D("15600.00"), D("11400.00")),
        uuid.UUID(int=3): (D("10400.00"), D("7600.00")),
    }
