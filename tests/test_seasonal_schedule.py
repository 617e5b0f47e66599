"""The seasonal schedule (domain/seasonal_schedule.py): properties over random amounts, rates,
paying months, grace and start dates, and examples. Pure: no database, no clock."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.money import KOPEK, ZERO
from domain.schedule import ScheduleError, due_date
from domain.seasonal_schedule import (
    _amortize,
    _sound,
    accrued_interest,
    build_seasonal_schedule,
    exact_level_payment,
    last_installment_tolerance,
    paying_dates,
)

D = Decimal


@st.composite
def seasonal_terms(draw: st.DrawFn) -> dict:
    start = draw(st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31)))
    months = draw(st.sets(st.integers(1, 12), min_size=1, max_size=6))
    grace = draw(st.integers(0, 11))
    # any term of up to five years with a paying month after the grace (it need not end on one)
    term = draw(st.integers(grace + 1, 60))
    assume(any(due_date(start, k).month in months for k in range(grace + 1, term + 1)))
    return {
        "amount": D(draw(st.integers(1_000_000, 1_000_000_000))) * KOPEK,
        "rate_annual": D(draw(st.integers(0, 400_000))) / 10_000,
        "term_months": term,
        "start_date": start,
        "paying_months": months,
        "grace_months": grace,
    }


@settings(max_examples=300, deadline=None)
@given(seasonal_terms())
def test_a_seasonal_schedule_is_exact_to_the_kopek(terms: dict) -> None:
    try:
        schedule = build_seasonal_schedule(**terms)
    except ScheduleError as refused:
        # the refusals these terms can meet: a grace the first harvest cannot pay, or a long
        # gap between paying months whose interest no level payment near the exact one
        # covers (README "Financing modalities"): then no kopek payment within a rouble of
        # the exact level payment gives a sound schedule either
        if "grace is too long" in str(refused):
            return
        assert "cannot be scheduled to the kopek" in str(refused)
        dates = paying_dates(terms["start_date"], terms["term_months"], terms["paying_months"], terms["grace_months"])
        exact = exact_level_payment(terms["amount"], terms["rate_annual"], dates).quantize(KOPEK)
        for kopecks in range(-100, 101):
            payment = exact + kopecks * KOPEK
            if payment > 0:
                assert not _sound(_amortize(terms["amount"], terms["rate_annual"], dates, payment), payment)
        return
    items = schedule.installments
    dates = paying_dates(terms["start_date"], terms["term_months"], terms["paying_months"], terms["grace_months"])
    assert [i.due_date for i in items] == [d.due_date for d in dates]
    # payments only in the paying months, after the grace, the last on the last paying
    # anniversary within the term, no drift
    assert all(i.due_date.month in terms["paying_months"] for i in items)
    assert all(d.months_from_start > terms["grace_months"] for d in dates)
    last_k = max(
        k
        for k in range(terms["grace_months"] + 1, terms["term_months"] + 1)
        if due_date(terms["start_date"], k).month in terms["paying_months"]
    )
    assert items[-1].due_date == due_date(terms["start_date"], last_k)
    assert dates[-1].months_from_start == last_k
    # the principal sums to the amount, the balance ends at zero and falls at every payment
    assert sum((i.principal for i in items), ZERO) == terms["amount"]
    assert items[-1].balance_after == ZERO
    balance = terms["amount"]
    for item, d in zip(items, dates, strict=True):
        # the interest accrued exactly over the months since the last payment, on the balance
        assert item.interest == accrued_interest(balance, terms["rate_annual"], d.months_since_last)
        assert item.principal > 0
        balance -= item.principal
        assert item.balance_after == balance
    # annuity-like: the same payment every time, the last within its tolerance above it
    assert all(i.total == schedule.payment for i in items[:-1])
    assert ZERO < items[-1].total <= schedule.payment + last_installment_tolerance(schedule.payment, len(items))
    assert all(i.principal == i.principal.quantize(KOPEK) and i.interest >= 0 for i in items)


@settings(max_examples=200, deadline=None)
@given(seasonal_terms())
def test_the_level_payment_is_the_exact_annuity_over_the_paying_dates_within_kopecks(terms: dict) -> None:
    """The kopek payment found is the exact annuity over the paying periods, moved only by the
    kopecks that rounding each period's interest needs."""
    from domain.seasonal_schedule import exact_level_payment

    try:
        schedule = build_seasonal_schedule(**terms)
    except ScheduleError:
        return
    dates = paying_dates(terms["start_date"], terms["term_months"], terms["paying_months"], terms["grace_months"])
    exact = exact_level_payment(terms["amount"], terms["rate_annual"], dates)
    if abs(schedule.payment - exact) <= KOPEK * len(dates):
        return
    # Otherwise a long gap's interest is above what the exact annuity pays: at the exact
    # payment the schedule is not sound, and the payment found is the smallest that is
    # (a kopek less is not).
    near = exact.quantize(KOPEK)
    assert not _sound(_amortize(terms["amount"], terms["rate_annual"], dates, near), near)
    less = schedule.payment - KOPEK
    assert schedule.payment > near
    assert not _sound(_amortize(terms["amount"], terms["rate_annual"], dates, less), less)


def test_an_example_two_harvests_a_year_with_grace() -> None:
    """1,200,000 at 18% for a tractor, taken on 15 January 2027, paid each March and
    September for two years (after a grace of three months): four payments."""
    schedule = build_seasonal_schedule(
        D("1200000.00"), D("18.0000"), 20, date(2027, 1, 15), paying_months=[3, 9], grace_months=3
    )
    assert [i.due_date for i in schedule.installments] == [
        date(2027, 9, 15),
        date(2028, 3, 15),
        date(2028, 9, 15),
    ]
    first = schedule.installments[0]
    assert first.interest == D("144000.00")  # 8 months of interest at 1.5% a month on 1,200,000
    assert sum((i.principal for i in schedule.installments), ZERO) == D("1200000.00")
    assert schedule.installments[1].interest == accrued_interest(first.balance_after, D("18.0000"), 6)


def test_a_zero_rate_seasonal_plan_splits_the_amount() -> None:
    schedule = build_seasonal_schedule(D("100.00"), D("0.0000"), 11, date(2027, 1, 1), paying_months=[4, 8, 12])
    assert [i.total for i in schedule.installments] == [D("33.33"), D("33.33"), D("33.34")]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"paying_months": []}, "at least one paying month"),
        ({"paying_months": [13]}, "numbered 1"),
        ({"paying_months": [3, 3]}, "named once"),
        ({"term_months": 5}, "no paying month"),
        ({"term_months": 7, "grace_months": 6}, "no paying month"),
        ({"grace_months": 12}, "fewer than the term"),
        ({"amount": D("0.01"), "term_months": 24}, "under a kopek"),
        ({"amount": D("100.001")}, "two decimals"),
        ({"rate_annual": D("-1")}, "zero or positive"),
        ({"grace_months": 11, "rate_annual": D("400.0000"), "term_months": 48}, "grace is too long"),
    ],
)
def test_what_a_seasonal_schedule_refuses(changes: dict, message: str) -> None:
    terms = {
        "amount": D("500000.00"),
        "rate_annual": D("20.0000"),
        "term_months": 12,
        "start_date": date(2027, 1, 10),
        "paying_months": [1, 7],
        "grace_months": 0,
    } | changes
    with pytest.raises(ScheduleError, match=message):
        build_seasonal_schedule(**terms)


def test_a_term_that_does_not_end_in_a_paying_month_ends_on_the_last_one_within_it() -> None:
    # paid out on 10 January, harvests in January and July: a 14-month term (to 10 March of
    # the next year) pays on 10 July and 10 January, and nothing after
    schedule = build_seasonal_schedule(D("500000.00"), D("20.0000"), 14, date(2027, 1, 10), paying_months=[1, 7])
    assert [i.due_date for i in schedule.installments] == [date(2027, 7, 10), date(2028, 1, 10)]
    assert sum((i.principal for i in schedule.installments), ZERO) == D("500000.00")
