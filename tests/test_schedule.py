"""Schedules: properties over wide ranges, and published figures computed by our code."""

from __future__ import annotations

import math
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.money import round_money
from domain.schedule import (
    ScheduleError,
    annuity_payment,
    build_schedule,
    check_schedulable_with_margin,
    last_installment_tolerance,
    period_interest,
)

D = Decimal


def exact_interest(balance: Decimal, rate_annual: Decimal) -> Decimal:
    """An independent oracle: exact rational arithmetic, rounded half up to kopecks."""
    kopecks = Fraction(balance) * Fraction(rate_annual) / 1200 * 100
    whole = math.floor(kopecks)
    if kopecks - whole >= Fraction(1, 2):
        whole += 1
    return D(whole) / 100


amounts = st.decimals(min_value=D("1000.00"), max_value=D("100000000.00"), places=2)
rates = st.decimals(min_value=D("0.0000"), max_value=D("100.0000"), places=4)
terms = st.integers(min_value=1, max_value=360)
starts = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 12, 31))
methods = st.sampled_from(["annuity", "differentiated"])


@st.composite
def loans(draw):
    term = draw(terms)
    grace = draw(st.integers(0, min(term - 1, 12)))
    return draw(amounts), draw(rates), term, draw(starts), draw(methods), grace


@settings(max_examples=400, deadline=None)
@given(loans())
def test_schedule_properties(loan):
    amount, rate, term, start, method, grace = loan
    try:
        schedule = build_schedule(amount, rate, term, start, method, grace)
    except ScheduleError:
        # Refused only where no kopek payment near the formula's gives a sound schedule (every
        # month but the last pays it and leaves a balance) ending within the tolerance: tried
        # here one by one, independently of the search.
        assert method == "annuity"
        formula = annuity_payment(amount, rate, term - grace)
        for offset in range(-40, 41):
            payment = formula + offset * D("0.01")
            if payment <= 0:
                continue
            balance, ok = amount, True
            for month in range(1, term):
                interest = exact_interest(balance, rate)
                principal = D(0) if month <= grace else payment - interest
                if principal < 0 or (month > grace and principal <= 0) or balance - principal <= 0:
                    ok = False
                    break
                balance -= principal
            last = balance + exact_interest(balance, rate)
            assert not (ok and last - payment <= last_installment_tolerance(payment, term)), payment
        # ...and the margin rule products are judged by refuses these terms too
        with pytest.raises(ScheduleError):
            check_schedulable_with_margin(amount, rate, term, grace)
        return
    items = schedule.installments
    assert len(items) == term
    # principal sums to the amount to the kopek; the balance ends at zero, never negative
    assert sum(i.principal for i in items) == amount
    assert items[-1].balance_after == 0
    assert all(i.balance_after >= 0 and i.principal >= 0 and i.interest >= 0 for i in items)
    # interest is the rounded balance before the period times the periodic rate
    balance = amount
    for item in items:
        assert item.interest == exact_interest(balance, rate)
        assert item.balance_after == balance - item.principal
        balance = item.balance_after
    # every amount is in kopecks
    assert all(i.principal == round_money(i.principal) and i.interest == round_money(i.interest) for i in items)
    # interest-only months first
    assert all(i.principal == 0 and i.interest_only for i in items[:grace])
    amortizing = items[grace:]
    if method == "annuity":
        # every amortizing installment but the last equals the payment, and the last is no
        # monster: at most the tolerance above it (and never nothing)
        assert all(i.total == schedule.payment for i in amortizing[:-1])
        assert 0 < items[-1].total <= schedule.payment + last_installment_tolerance(schedule.payment, term)
    else:
        # equal principal but the last, which takes the rounding
        assert len({i.principal for i in amortizing[:-1]}) <= 1
    # totals are what the installments add up to
    assert schedule.total_payable == sum(i.total for i in items)
    # due dates: strictly increasing, k calendar months after the start
    assert all(a.due_date < b.due_date for a, b in zip(items, items[1:]))
    assert all(i.due_date.day == start.day or i.due_date.day < start.day for i in items)


@settings(max_examples=200, deadline=None)
@given(amounts, terms, starts)
def test_zero_rate_is_interest_free(amount, term, start):
    schedule = build_schedule(amount, D("0"), term, start)
    assert schedule.total_interest == 0
    assert sum(i.principal for i in schedule.installments) == amount


def test_interest_on_an_exact_half_kopek_rounds_up():
    # 450 x 1.96% / 12 = 0.735 exactly: a truncated periodic rate would give 0.73
    assert period_interest(D("450.00"), D("1.96")) == D("0.74")
    assert exact_interest(D("450.00"), D("1.96")) == D("0.74")


def test_published_pmt_figures():
    # numpy-financial's pmt test: 15,000 at 8% for 60 months -> 304.15 a month
    assert annuity_payment(D("15000.00"), D("8"), 60) == D("304.15")
    # numpy-financial's pmt docstring: 200,000 at 7.5% for 15 years -> 1,854.02 a month
    assert annuity_payment(D("200000.00"), D("7.5"), 180) == D("1854.02")
    schedule = build_schedule(D("200000.00"), D("7.5"), 180, date(2026, 1, 15))
    assert schedule.payment == D("1854.02")
    assert schedule.installments[0].interest == D("1250.00")  # 200,000 x 7.5% / 12
    assert schedule.installments[0].principal == D("604.02")


def test_month_ends_do_not_drift():
    schedule = build_schedule(D("12000.00"), D("12"), 4, date(2024, 1, 31))
    assert [i.due_date for i in schedule.installments] == [
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
    ]


def test_differentiated_example():
    schedule = build_schedule(D("100000.00"), D("12"), 3, date(2026, 1, 10), "differentiated")
    assert [(i.principal, i.interest, i.total) for i in schedule.installments] == [
        (D("33333.33"), D("1000.00"), D("34333.33")),
        (D("33333.33"), D("666.67"), D("34000.00")),
        (D("33333.34"), D("333.33"), D("33666.67")),
    ]
    assert schedule.payment == D("34333.33")


def test_interest_only_months():
    schedule = build_schedule(D("120000.00"), D("12"), 6, date(2026, 1, 1), "annuity", interest_only_months=2)
    first, second, *rest = schedule.installments
    assert (first.principal, first.interest, second.interest) == (D("0"), D("1200.00"), D("1200.00"))
    # the 4 amortizing months: 120,000 x 0.01 x 1.01^4 / (1.01^4 - 1) = 30,753.7313... -> 30,753.73
    assert schedule.payment == D("30753.73")
    assert [i.total for i in rest[:-1]] == [D("30753.73")] * 3
    assert sum(i.principal for i in rest) == D("120000.00")


@pytest.mark.parametrize(
    "args, message",
    [
        ((D("-1"), D("10"), 12), "positive"),
        ((D("0"), D("10"), 12), "positive"),
        ((D("100.001"), D("10"), 12), "two decimals"),
        ((D("100"), D("-1"), 12), "zero or positive"),
        ((D("100"), D("10"), 0), "whole number"),
        ((D("100"), D("10"), 12.5), "whole number"),
        ((D("100"), D("NaN"), 12), "zero or positive"),
    ],
)
def test_bad_inputs_are_refused(args, message):
    with pytest.raises(ScheduleError, match=message):
        build_schedule(*args, start_date=date(2026, 1, 1))


def test_a_last_installment_far_above_the_payment_is_refused():
    # One kopek of payment moves this loan's last installment by about 3 million: no kopek
    # payment ends near the others (the rounded one left 3,062,145.63 for the last month).
    with pytest.raises(ScheduleError, match="cannot be scheduled to the kopek"):
        build_schedule(D("4890435.23"), D("73.82"), 282, date(2026, 1, 15))
    # A long loan at an ordinary rate is corrected to end within its tolerance instead.
    schedule = build_schedule(D("1000000.00"), D("30"), 282, date(2026, 1, 15))
    excess = schedule.installments[-1].total - schedule.payment
    assert abs(excess) <= last_installment_tolerance(schedule.payment, 282)


def test_rates_are_priced_to_four_decimals():
    schedule = build_schedule(D("10000.00"), D("9.4822"), 36, date(2026, 1, 15))
    assert schedule.installments[0].interest == exact_interest(D("10000.00"), D("9.4822")) == D("79.02")
    assert sum(i.principal for i in schedule.installments) == D("10000.00")
    with pytest.raises(ScheduleError, match="four decimals"):
        build_schedule(D("10000.00"), D("9.48225"), 36, date(2026, 1, 15))


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(min_value=D("0.01"), max_value=D("1000.00"), places=2),
    st.integers(1, 600),
    st.sampled_from(["annuity", "differentiated"]),
)
def test_tiny_payments_never_leave_empty_months(amount, term, method):
    """A zero rate has no compounding, but a payment rounded up can still run the balance out
    before the end: no month of a schedule is empty; under a kopek a month is refused."""
    try:
        schedule = build_schedule(amount, D("0"), term, date(2026, 1, 15), method)
    except ScheduleError as error:
        assert amount < D("0.01") * term and "under a kopek" in str(error)
        return
    assert all(i.total > 0 for i in schedule.installments)
    assert sum(i.principal for i in schedule.installments) == amount


def test_loans_disbursed_before_the_rule_keep_their_schedule():
    """A loan's workflow rebuilds its schedule when it replays: one disbursed under the old
    rounding gets the old payment back (here a kopek apart), not today's."""
    old = build_schedule(D("176050.48"), D("86.11"), 137, date(2026, 1, 15), legacy_rounding=True)
    new = build_schedule(D("176050.48"), D("86.11"), 137, date(2026, 1, 15))
    assert (old.payment, new.payment) == (D("12634.04"), D("12634.05"))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(amounts, st.decimals(min_value=D("0.01"), max_value=D("50.00"), places=2)),
    rates,
    terms,
    starts,
    st.integers(0, 12),
)
def test_terms_that_pass_the_product_rule_always_schedule(amount, rate, term, start, grace):
    """What product limits admit (the margin rule at their hardest corner), every loan gets:
    tiny amounts too, where one month's interest rounded up can eat a payment of kopecks."""
    grace = min(grace, term - 1)
    try:
        check_schedulable_with_margin(amount, rate, term, grace)
    except ScheduleError:
        return
    build_schedule(amount, rate, term, start, "annuity", grace)


def test_the_product_rule_refuses_payments_of_kopecks():
    # 0.11 at 57.847% over 21 months, 12 interest-only: the 0.02 payment runs out early, 0.01
    # is eaten by the first month's interest rounded up: no payment schedules it
    with pytest.raises(ScheduleError):
        build_schedule(D("0.11"), D("57.847"), 21, date(2026, 1, 15), "annuity", 12)
    with pytest.raises(ScheduleError, match="under 1.00"):
        check_schedulable_with_margin(D("0.11"), D("57.847"), 21, 12)
