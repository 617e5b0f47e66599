"""Solving "I can pay X a month" (domain/payment_solver.py) over the platform's schedules:
properties (the answer fits, a kopek more or a term less does not) and examples."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.money import KOPEK
from domain.payment_solver import NothingFits, largest_amount_for, shortest_term_for
from domain.schedule import ScheduleError, build_schedule, due_date
from domain.seasonal_schedule import build_seasonal_schedule

D = Decimal
START = date(2027, 3, 10)


def ordinary(rate: Decimal, method: str):
    def for_amount(term: int):
        return lambda amount: build_schedule(amount, rate, term, START, method).highest_payment  # type: ignore[arg-type]

    def for_term(amount: Decimal):
        return lambda term: build_schedule(amount, rate, term, START, method).highest_payment  # type: ignore[arg-type]

    return for_amount, for_term


rates = st.integers(0, 600_000).map(lambda k: D(k) / 10_000)
payments = st.integers(50_000, 20_000_000).map(lambda k: D(k) * KOPEK)


@settings(max_examples=60, deadline=None)
@given(payment=payments, rate=rates, term=st.integers(1, 60), method=st.sampled_from(["annuity", "differentiated"]))
def test_the_largest_amount_fits_and_a_kopek_more_does_not(payment, rate, term, method) -> None:
    for_amount, _ = ordinary(rate, method)
    highest = for_amount(term)
    try:
        amount = largest_amount_for(payment, highest, D("1000.00"), D("10000000.00"), term)
    except NothingFits:
        assert highest(D("1000.00")) > payment
        return
    assert highest(amount) <= payment
    if amount < D("10000000.00"):
        try:
            assert highest(amount + KOPEK) > payment
        except ScheduleError:
            pass


@settings(max_examples=40, deadline=None)
@given(
    payment=payments,
    rate=rates,
    amount=st.integers(100_000, 500_000_000).map(lambda k: D(k) * KOPEK),
    method=st.sampled_from(["annuity", "differentiated"]),
)
def test_the_shortest_term_fits_and_no_shorter_one_does(payment, rate, amount, method) -> None:
    _, for_term = ordinary(rate, method)
    highest = for_term(amount)
    terms = list(range(3, 61))
    try:
        term = shortest_term_for(payment, highest, terms, at_least=lambda t: amount / t)
    except NothingFits:
        for t in terms:
            try:
                assert highest(t) > payment
            except ScheduleError:
                pass
        return
    assert highest(term) <= payment
    for shorter in range(3, term):
        try:
            assert highest(shorter) > payment
        except ScheduleError:
            pass


@settings(max_examples=40, deadline=None)
@given(payment=payments, rate=rates, months=st.sets(st.integers(1, 12), min_size=1, max_size=4))
def test_a_seasonal_plan_is_solved_the_same_way(payment, rate, months) -> None:
    terms = [k for k in range(1, 61) if due_date(START, k).month in months]

    def highest(term: int) -> Decimal:
        return build_seasonal_schedule(D("300000.00"), rate, term, START, months, 0).highest_payment

    try:
        term = shortest_term_for(payment, highest, terms)
    except NothingFits:
        return
    assert highest(term) <= payment and due_date(START, term).month in months
    for shorter in [t for t in terms if t < term]:
        try:
            assert highest(shorter) > payment
        except ScheduleError:
            pass


def test_examples() -> None:
    for_amount, for_term = ordinary(D("24.0000"), "annuity")
    # 10,000 a month over 12 months at 24%: the annuity factor says 105,753.4...
    amount = largest_amount_for(D("10000.00"), for_amount(12), D("1000.00"), D("10000000.00"), 12)
    assert build_schedule(amount, D("24.0000"), 12, START).highest_payment <= D("10000.00")
    assert D("105700") < amount < D("105800")
    assert shortest_term_for(D("10000.00"), for_term(D("100000.00")), list(range(1, 61))) == 12
    with pytest.raises(NothingFits, match="even the smallest amount"):
        largest_amount_for(D("50.00"), for_amount(12), D("1000.00"), D("10000000.00"), 12)
    with pytest.raises(NothingFits, match="even over 24 months"):
        shortest_term_for(D("100.00"), for_term(D("100000.00")), list(range(1, 25)))
    with pytest.raises(ValueError, match="positive"):
        shortest_term_for(D("0"), for_term(D("100000.00")), [12])
