"""Properties of the pro-rata split and of late fees."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.allocation import split_pro_rata
from domain.fees import accrue_late_fee, chargeable_days, late_fee_exact
from domain.money import round_money

D = Decimal
kopecks = st.integers(min_value=0, max_value=10**11).map(lambda k: D(k) / 100)
weights = st.dictionaries(st.integers(0, 500), st.integers(1, 10**9).map(lambda k: D(k) / 100), min_size=1, max_size=60)


@given(kopecks, weights)
def test_split_sums_exactly_and_each_part_is_within_a_kopek_of_its_exact_share(total, shares):
    parts = split_pro_rata(total, shares)
    assert sum(parts.values()) == total
    assert set(parts) == set(shares)
    weight_sum = sum(shares.values())
    for key, part in parts.items():
        exact = total * shares[key] / weight_sum
        assert part == part.quantize(D("0.01")) and part >= 0
        assert abs(part - exact) < D("0.01")


@given(kopecks, weights)
def test_split_is_monotonic_in_weight(total, shares):
    parts = split_pro_rata(total, shares)
    ordered = sorted(shares, key=lambda k: shares[k])
    for smaller, larger in zip(ordered, ordered[1:]):
        if shares[smaller] < shares[larger]:
            assert parts[smaller] <= parts[larger]


def test_split_examples():
    assert split_pro_rata(D("1000.00"), {"a": D(1), "b": D(1), "c": D(1)}) == {
        "a": D("333.34"),
        "b": D("333.33"),
        "c": D("333.33"),
    }
    assert split_pro_rata(D("0.01"), {"a": D(1), "b": D(3)}) == {"a": D("0.00"), "b": D("0.01")}
    # 5 kopecks 2:3:5 is 1, 1.5 and 2.5: one kopek left, b and c tie on half a kopek; the larger weight takes it
    assert split_pro_rata(D("0.05"), {"a": D(2), "b": D(3), "c": D(5)}) == {
        "a": D("0.01"),
        "b": D("0.01"),
        "c": D("0.03"),
    }
    with pytest.raises(ValueError):
        split_pro_rata(D("1.00"), {"a": D(0)})
    with pytest.raises(ValueError):
        split_pro_rata(D("1.001"), {"a": D(1)})


amounts = st.integers(min_value=1, max_value=10**10).map(lambda k: D(k) / 100)
rates = st.sampled_from([D("0.000"), D("0.050"), D("0.100"), D("0.500"), D("1.000")])


@given(amounts, rates, st.integers(0, 30), st.integers(0, 400), st.integers(0, 400))
def test_late_fee_is_additive_over_stretches_to_within_rounding(amount, rate, grace, a, b):
    start, end = min(a, b), max(a, b)
    middle = (start + end) // 2
    whole = accrue_late_fee(amount, rate, grace, start, end)
    parts = accrue_late_fee(amount, rate, grace, start, middle) + accrue_late_fee(amount, rate, grace, middle, end)
    assert abs(whole - parts) <= D("0.01")
    assert whole == (amount * rate / 100 * chargeable_days(grace, start, end)).quantize(
        D("0.01"), rounding="ROUND_HALF_UP"
    )
    assert whole >= 0


@given(st.integers(0, 30), st.integers(0, 400))
def test_no_fee_within_the_grace_days(grace, days):
    fee = accrue_late_fee(D("1000.00"), D("0.100"), grace, 0, days)
    assert (fee == 0) == (days <= grace)


@given(amounts, rates, st.integers(0, 30), st.lists(st.integers(0, 400), min_size=1, max_size=30))
def test_a_late_fee_does_not_depend_on_how_often_the_loan_woke(amount, rate, grace, wakes):
    """However a span of overdue days is cut into stretches (one per wake-up of the workflow),
    the fee accrued exactly and rounded once is the fee of the whole span."""
    days = sorted(wakes)
    exact, reached = D(0), 0
    for day in days:
        exact += late_fee_exact(amount, rate, grace, reached, day)
        reached = max(reached, day)
    assert round_money(exact) == accrue_late_fee(amount, rate, grace, 0, days[-1])


@given(
    st.lists(st.tuples(amounts, st.integers(1, 60)), min_size=1, max_size=6),
    rates,
    st.integers(0, 10),
)
def test_a_late_fee_over_changing_amounts_is_rounded_once(stretches, rate, grace):
    """A partial payment changes the overdue amount: each stretch accrues on its amount, and
    the sum is rounded once (never more than half a kopek from the exact fee)."""
    exact, day = D(0), 0
    for amount, length in stretches:
        exact += late_fee_exact(amount, rate, grace, day, day + length)
        day += length
    truth = sum(
        (
            a
            * rate
            / 100
            * chargeable_days(grace, sum(n for _, n in stretches[:i]), sum(n for _, n in stretches[: i + 1]))
        )
        for i, (a, _) in enumerate(stretches)
    )
    assert abs(round_money(exact) - truth) <= D("0.005")
