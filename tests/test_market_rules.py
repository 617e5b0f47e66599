"""The secondary market's rules (domain/market.py): properties over random holdings, prices
and dates, and examples at every rule's boundary. Pure: no database, no clock."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.investment_rules import investor_cap
from domain.investor_shares import ScheduledAmounts, agreed_shares
from domain.market import (
    Refusal,
    Settlement,
    ShareRow,
    accrued_interest,
    listing_refusal,
    market_fee,
    price_of,
    purchase_refusal,
    settlement,
    share_refusal,
    split_holding,
    yield_to_maturity,
)
from domain.money import KOPEK, ZERO
from domain.schedule import build_schedule

D = Decimal


def kopecks(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.integers(low, high).map(lambda k: D(k) * KOPEK)


def percents(low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.integers(int(D(low) * 100), int(D(high) * 100)).map(lambda k: D(k) * KOPEK)


@st.composite
def holdings(draw: st.DrawFn) -> list[ShareRow]:
    """A holding's unpaid parts: some installments with no principal (interest-only months),
    some with no interest, tiny and large ones; at least one kopek of principal."""
    count = draw(st.integers(1, 24))
    rows = [
        ShareRow(
            payment_num=first + n,
            principal=draw(st.one_of(st.just(ZERO), kopecks(1, 99), kopecks(1, 10_000_000))),
            interest=draw(st.one_of(st.just(ZERO), kopecks(1, 99), kopecks(1, 2_000_000))),
        )
        for first in [draw(st.integers(1, 36))]
        for n in range(count)
    ]
    assume(sum((r.principal for r in rows), ZERO) > 0)
    return rows


def total(rows: list[ShareRow], field: str) -> Decimal:
    return sum((getattr(r, field) for r in rows), ZERO)


def half_up(value: Decimal) -> Decimal:
    return value.quantize(KOPEK, rounding=ROUND_HALF_UP)


# --- split_holding -------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(holdings(), st.data())
def test_split_conserves_every_kopek_and_sells_exactly_the_principal(rows: list[ShareRow], data: st.DataObject) -> None:
    owed = total(rows, "principal")
    sold_principal = data.draw(kopecks(0, int(owed * 100)), label="sold_principal")
    kept, sold = split_holding(rows, sold_principal)

    assert [r.payment_num for r in kept] == [r.payment_num for r in sold] == [r.payment_num for r in rows]
    for row, k, s in zip(rows, kept, sold):
        # per installment: not a kopek made or lost, none negative, none above the row
        assert k.principal + s.principal == row.principal
        assert k.interest + s.interest == row.interest
        for part in (k.principal, k.interest, s.principal, s.interest):
            assert part >= 0 and part == part.quantize(KOPEK)
        # each part within a kopek of its exact share (sold / owed of the row)
        assert abs(s.principal - row.principal * sold_principal / owed) < KOPEK
        assert abs(s.interest - row.interest * sold_principal / owed) < KOPEK
    assert total(sold, "principal") == sold_principal
    assert total(kept, "principal") + total(sold, "principal") == total(rows, "principal")
    assert total(kept, "interest") + total(sold, "interest") == total(rows, "interest")
    # the interest sold is the same fraction of the interest, rounded half up once
    assert total(sold, "interest") == half_up(total(rows, "interest") * sold_principal / owed)


@settings(max_examples=300, deadline=None)
@given(holdings(), st.data())
def test_split_is_monotone_in_the_principal_sold(rows: list[ShareRow], data: st.DataObject) -> None:
    owed_kopecks = int(total(rows, "principal") * 100)
    a, b = sorted(data.draw(st.lists(st.integers(0, owed_kopecks), min_size=2, max_size=2), label="two sales"))
    kept_a, sold_a = split_holding(rows, D(a) * KOPEK)
    kept_b, sold_b = split_holding(rows, D(b) * KOPEK)
    assert total(sold_a, "principal") <= total(sold_b, "principal")
    assert total(sold_a, "interest") <= total(sold_b, "interest")
    assert total(kept_a, "principal") >= total(kept_b, "principal")
    assert total(kept_a, "interest") >= total(kept_b, "interest")
    # Per installment, largest remainder is monotone to within a kopek only (the Alabama
    # paradox: see test_split_per_installment_may_step_back_a_kopek).
    for x, y in zip(sold_a, sold_b):
        assert x.principal <= y.principal + KOPEK
        assert x.interest <= y.interest + KOPEK


def test_split_per_installment_may_step_back_a_kopek() -> None:
    """Largest remainder's known limit, pinned so nobody mistakes it for a bug: selling a
    kopek more can move a kopek of one installment's sold principal to others. The totals
    stay monotone and every part stays within a kopek of its exact share."""
    rows = [
        ShareRow(1, D("23.31"), D("7.82")),
        ShareRow(2, D("2.58"), D("2.61")),
        ShareRow(3, D("4.82"), D("5.07")),
        ShareRow(4, D("18.41"), D("4.83")),
    ]
    _, at_9 = split_holding(rows, D("0.09"))
    _, at_10 = split_holding(rows, D("0.10"))
    assert at_9[1].principal == D("0.01")
    assert at_10[1].principal == D("0.00")
    assert total(at_9, "principal") == D("0.09") and total(at_10, "principal") == D("0.10")


@settings(max_examples=200, deadline=None)
@given(holdings())
def test_selling_all_moves_everything_and_keeps_rows_of_zeros(rows: list[ShareRow]) -> None:
    kept, sold = split_holding(rows, total(rows, "principal"))
    assert sold == rows
    assert kept == [ShareRow(r.payment_num, ZERO, ZERO) for r in rows]


@settings(max_examples=100, deadline=None)
@given(holdings())
def test_selling_nothing_keeps_everything(rows: list[ShareRow]) -> None:
    kept, sold = split_holding(rows, ZERO)
    assert kept == rows
    assert sold == [ShareRow(r.payment_num, ZERO, ZERO) for r in rows]


def test_split_example_half_of_a_holding() -> None:
    rows = [ShareRow(4, D("100.00"), D("10.01")), ShareRow(5, D("100.00"), D("9.01")), ShareRow(6, D("100.01"), D("8"))]
    kept, sold = split_holding(rows, D("150.00"))
    # principal: quotas 49.9983, 49.9983, 50.0033 -> floors 49.99, 49.99, 50.00 and the two
    # kopecks left to the two largest remainders (0.0083 each)
    assert [s.principal for s in sold] == [D("50.00"), D("50.00"), D("50.00")]
    # interest: fraction 150/300.01; quotas 5.00483, 4.50485, 3.99987 -> floors 5.00, 4.50, 3.99 and
    # 13.51 in all (27.02 x fraction, half up): the two kopecks to the two largest remainders
    assert [s.interest for s in sold] == [D("5.00"), D("4.51"), D("4.00")]
    assert [k.interest for k in kept] == [D("5.01"), D("4.50"), D("4.00")]


def test_split_of_a_real_holding_sells_its_interest_by_the_same_fraction() -> None:
    schedule = build_schedule(D("300000.00"), D("14.5"), 24, date(2026, 1, 31))
    items = [ScheduledAmounts(i.payment_num, i.principal, i.interest) for i in schedule.installments]
    shares = agreed_shares(items, {"a": D("100000.00"), "b": D("200000.00")})
    rows = [ShareRow(s.payment_num, s.principal, s.interest) for s in shares["a"][5:]]
    kept, sold = split_holding(rows, D("25000.00"))
    assert total(sold, "principal") == D("25000.00")
    fraction = D("25000.00") / total(rows, "principal")
    assert total(sold, "interest") == half_up(total(rows, "interest") * fraction)
    assert all(k.principal > 0 for k in kept)


@pytest.mark.parametrize(
    ("sold", "message"),
    [
        (D("300.01"), "more than the 300.00 principal still owed"),
        (D("-0.01"), "zero or positive, in kopecks"),
        (D("1.001"), "zero or positive, in kopecks"),
    ],
)
def test_split_refuses_what_the_holding_does_not_have(sold: Decimal, message: str) -> None:
    rows = [ShareRow(1, D("150.00"), D("3.00")), ShareRow(2, D("150.00"), D("1.50"))]
    with pytest.raises(ValueError, match=message):
        split_holding(rows, sold)


def test_split_refuses_bad_rows() -> None:
    with pytest.raises(ValueError, match="installment 2"):
        split_holding([ShareRow(1, D("1.00"), D("0")), ShareRow(2, D("-1.00"), D("0"))], D("0"))
    assert split_holding([], ZERO) == ([], [])


# --- accrued_interest ----------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(
    next_interest=kopecks(0, 5_000_000),
    start=st.dates(date(2020, 1, 1), date(2035, 12, 31)),
    length=st.integers(1, 62),
    offsets=st.lists(st.integers(-10, 72), min_size=2, max_size=2),
)
def test_accrued_interest_grows_from_nothing_to_the_installments_interest(
    next_interest: Decimal, start: date, length: int, offsets: list[int]
) -> None:
    end = start + timedelta(days=length)
    first, second = (start + timedelta(days=d) for d in sorted(offsets))
    a = accrued_interest(next_interest, start, end, first)
    b = accrued_interest(next_interest, start, end, second)
    assert ZERO <= a <= b <= next_interest
    assert a == a.quantize(KOPEK) and b == b.quantize(KOPEK)
    assert accrued_interest(next_interest, start, end, start) == ZERO
    assert accrued_interest(next_interest, start, end, start - timedelta(days=1)) == ZERO
    assert accrued_interest(next_interest, start, end, end) == next_interest
    assert accrued_interest(next_interest, start, end, end + timedelta(days=1)) == next_interest


@pytest.mark.parametrize(
    ("interest", "start", "end", "on", "expected"),
    [
        (D("100.00"), date(2026, 4, 30), date(2026, 5, 30), date(2026, 5, 15), D("50.00")),
        (D("10.00"), date(2026, 1, 31), date(2026, 2, 28), date(2026, 2, 1), D("0.36")),  # 10 / 28
        (D("10.00"), date(2026, 3, 31), date(2026, 4, 30), date(2026, 4, 1), D("0.33")),  # 10 / 30
        (D("0.05"), date(2026, 1, 1), date(2026, 1, 3), date(2026, 1, 2), D("0.03")),  # 0.025 half up
        (D("0.01"), date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 30), D("0.01")),
        (D("0.01"), date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 15), D("0.00")),  # 14/30 of a kopek
    ],
)
def test_accrued_interest_examples(interest: Decimal, start: date, end: date, on: date, expected: Decimal) -> None:
    assert accrued_interest(interest, start, end, on) == expected


def test_accrued_interest_refuses_an_empty_period_or_bad_interest() -> None:
    with pytest.raises(ValueError, match="end after it starts"):
        accrued_interest(D("1.00"), date(2026, 1, 1), date(2026, 1, 1), date(2026, 1, 1))
    with pytest.raises(ValueError, match="zero or positive"):
        accrued_interest(D("-1.00"), date(2026, 1, 1), date(2026, 2, 1), date(2026, 1, 10))


# --- price, fee, settlement ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(kopecks(1, 10_000_000_00))
def test_price_at_par_is_the_principal(principal: Decimal) -> None:
    assert price_of(principal, D("100")) == principal
    assert price_of(principal, D("100.00")) == principal


@settings(max_examples=400, deadline=None)
@given(
    principal=kopecks(1, 10_000_000_00),
    price_percent=percents("50", "150"),
    accrued=kopecks(0, 5_000_000),
    fee_percent=percents("0", "10"),
)
def test_settlement_adds_up(principal: Decimal, price_percent: Decimal, accrued: Decimal, fee_percent: Decimal) -> None:
    s = settlement(principal, price_percent, accrued, fee_percent)
    assert s.buyer_pays == s.seller_gets + s.fee
    assert s.buyer_pays == s.price + s.accrued
    assert s.price == price_of(principal, price_percent)
    assert s.fee == market_fee(s.price, fee_percent)
    assert s.accrued == accrued
    assert ZERO <= s.fee <= s.price
    assert s.seller_gets >= accrued
    for amount in (s.price, s.fee, s.buyer_pays, s.seller_gets):
        assert amount == amount.quantize(KOPEK)


def test_settlement_example() -> None:
    assert settlement(D("1000.00"), D("98.50"), D("4.37"), D("1")) == Settlement(
        price=D("985.00"), accrued=D("4.37"), fee=D("9.85"), buyer_pays=D("989.37"), seller_gets=D("979.52")
    )


@pytest.mark.parametrize(
    ("price", "percent", "fee"),
    [(D("1000.00"), D("1.5"), D("15.00")), (D("33.33"), D("1"), D("0.33")), (D("0.50"), D("1"), D("0.01"))],
)
def test_market_fee_rounds_half_up(price: Decimal, percent: Decimal, fee: Decimal) -> None:
    assert market_fee(price, percent) == fee


def test_price_rounds_half_up() -> None:
    assert price_of(D("0.05"), D("50")) == D("0.03")  # 0.025
    assert price_of(D("333.33"), D("99.99")) == D("333.30")  # 333.296667


def test_settlement_refuses_a_negative_accrual_or_an_impossible_fee() -> None:
    with pytest.raises(ValueError, match="accrued"):
        settlement(D("100.00"), D("100"), D("-0.01"), D("1"))
    with pytest.raises(ValueError, match="fee"):
        settlement(D("100.00"), D("100"), ZERO, D("100.01"))


# --- yield_to_maturity ---------------------------------------------------------------------


def effective_percent(rate_annual: Decimal) -> Decimal:
    """The effective annual rate of a nominal annual rate paid monthly, in percent."""
    return ((1 + rate_annual / 1200) ** 12 - 1) * 100


def remaining(rate: Decimal, term: int, paid: int, start: date) -> tuple[Decimal, date, list[tuple[date, Decimal]]]:
    """A whole loan's principal still owed after `paid` installments, that day, and its flows."""
    schedule = build_schedule(D("100000.00"), rate, term, start)
    rest = schedule.installments[paid:]
    on = schedule.start_date if paid == 0 else schedule.installments[paid - 1].due_date
    return sum((i.principal for i in rest), ZERO), on, [(i.due_date, i.total) for i in rest]


def test_yield_at_par_on_a_due_date_is_the_loans_rate() -> None:
    outstanding, on, flows = remaining(D("12"), 36, 12, date(2026, 1, 31))
    par = settlement(outstanding, D("100"), ZERO, D("1"))
    ytm = yield_to_maturity(par.buyer_pays, on, flows)
    assert ytm is not None
    # 1 % a month compounds to 12.68 % a year (XIRR is effective, actual/365); the calendar's
    # months of 28 to 31 days move it by a few basis points
    assert abs(ytm - effective_percent(D("12"))) <= D("0.05")
    assert ytm > D("12.50")  # not the nominal 12 %


@settings(max_examples=60, deadline=None)
@given(
    rate=percents("1", "30"),
    term=st.integers(24, 60),
    start=st.dates(date(2024, 1, 1), date(2030, 12, 31)),
    data=st.data(),
)
def test_yield_at_par_follows_the_rate(rate: Decimal, term: int, start: date, data: st.DataObject) -> None:
    paid = data.draw(st.integers(0, term - 24), label="paid")
    outstanding, on, flows = remaining(rate, term, paid, start)
    ytm = yield_to_maturity(outstanding, on, flows)
    assert ytm is not None
    # two years or more of flows: the calendar moves the yield by well under 1 % of itself
    assert abs(ytm - effective_percent(rate)) <= effective_percent(rate) * D("0.0075") + D("0.01")


@settings(max_examples=60, deadline=None)
@given(
    rate=percents("1", "30"),
    term=st.integers(3, 36),
    # half a percent of price or more: a yield to two decimals tells them apart
    discount=percents("80", "99.5"),
    premium=percents("100.5", "120"),
    data=st.data(),
)
def test_a_discount_yields_more_than_par_and_par_more_than_a_premium(
    rate: Decimal, term: int, discount: Decimal, premium: Decimal, data: st.DataObject
) -> None:
    paid = data.draw(st.integers(0, term - 2), label="paid")
    outstanding, on, flows = remaining(rate, term, paid, date(2026, 1, 31))
    below = yield_to_maturity(price_of(outstanding, discount), on, flows)
    par = yield_to_maturity(price_of(outstanding, D("100")), on, flows)
    above = yield_to_maturity(price_of(outstanding, premium), on, flows)
    assert below is not None and par is not None and above is not None
    assert below > par > above


def test_yield_examples_and_when_there_is_none() -> None:
    assert yield_to_maturity(D("1000.00"), date(2025, 1, 1), [(date(2026, 1, 1), D("1100.00"))]) == D("10.00")
    assert yield_to_maturity(D("1000.00"), date(2025, 1, 1), [(date(2026, 1, 1), D("900.00"))]) == D("-10.00")
    assert yield_to_maturity(D("1000.00"), date(2025, 1, 1), []) is None
    assert yield_to_maturity(ZERO, date(2025, 1, 1), [(date(2026, 1, 1), D("10.00"))]) is None
    assert yield_to_maturity(D("1000.00"), date(2025, 1, 1), [(date(2025, 1, 1), D("1100.00"))]) is None
    with pytest.raises(ValueError, match="before the purchase"):
        yield_to_maturity(D("1000.00"), date(2025, 1, 1), [(date(2024, 12, 31), D("1100.00"))])


# --- listing_refusal and purchase_refusal --------------------------------------------------

LISTABLE: dict[str, Any] = {
    "loan_status": "active",
    "has_overdue": False,
    "unpaid_installments": 5,
    "held_days": 30,
    "min_holding_days": 30,
    "outstanding_principal": D("2000.00"),
    "principal": D("1000.00"),
    "min_investment": D("500.00"),
    "price_percent": D("100.00"),
    "min_price_percent": D("80.00"),
    "max_price_percent": D("120.00"),
}


def listing(**changes: Any) -> Refusal | None:
    return listing_refusal(**{**LISTABLE, **changes})


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"unpaid_installments": 2},  # exactly two unpaid
        {"held_days": 30},  # exactly the minimum holding period
        {"held_days": 31},
        {"principal": D("500.00")},  # exactly the minimum, leaving 1500
        {"principal": D("1500.00")},  # leaving exactly the minimum
        {"principal": D("2000.00")},  # all of it
        {"outstanding_principal": D("300.00"), "principal": D("300.00")},  # all of a holding below the minimum
        {"outstanding_principal": D("1000.00"), "principal": D("500.00")},  # half and half at the minimum
        {"principal": D("0.01"), "outstanding_principal": D("0.01")},
        {"price_percent": D("80.00")},  # the range's ends
        {"price_percent": D("120")},
        {"price_percent": D("99.99")},
        {"min_holding_days": 0, "held_days": 0},
    ],
)
def test_what_may_be_listed(changes: dict[str, Any]) -> None:
    assert listing(**changes) is None


@pytest.mark.parametrize(
    ("changes", "kind", "message"),
    [
        ({"loan_status": "defaulted"}, "not_eligible", "the loan is not active (it is defaulted)"),
        ({"loan_status": "repaid"}, "not_eligible", "the loan is not active (it is repaid)"),
        ({"loan_status": "funding"}, "not_eligible", "the loan is not active"),
        ({"has_overdue": True}, "not_eligible", "overdue installment"),
        ({"unpaid_installments": 1}, "not_eligible", "1 unpaid installment(s): a holding cannot be sold on the loan's"),
        ({"unpaid_installments": 0}, "not_eligible", "last installment"),
        ({"held_days": 29}, "not_eligible", "once held 30 days; this one has been held 29"),
        ({"principal": D("0")}, "bad_terms", "positive with at most two decimals"),
        ({"principal": D("-1.00")}, "bad_terms", "positive with at most two decimals"),
        ({"principal": D("500.001")}, "bad_terms", "positive with at most two decimals"),
        ({"principal": D("NaN")}, "bad_terms", "positive with at most two decimals"),
        ({"principal": D("2000.01")}, "bad_terms", "2000.01 is more than the 2000.00 still owed to you"),
        ({"principal": D("499.99")}, "bad_terms", "a part of at least 500.00 that leaves at least 500.00"),
        ({"principal": D("1500.01")}, "bad_terms", "(at most 1500.00)"),
        (
            {"outstanding_principal": D("999.99"), "principal": D("500.00")},
            "bad_terms",
            "only all of the 999.99 still owed to you can be taken",
        ),
        ({"price_percent": D("100.001")}, "bad_terms", "at most two decimals"),
        ({"price_percent": D("Infinity")}, "bad_terms", "at most two decimals"),
        ({"price_percent": D("79.99")}, "bad_terms", "between 80.00% and 120.00%"),
        ({"price_percent": D("120.01")}, "bad_terms", "between 80.00% and 120.00%"),
    ],
)
def test_every_listing_rule_refuses_with_its_reason_and_kind(changes: dict[str, Any], kind: str, message: str) -> None:
    refusal = listing(**changes)
    assert refusal is not None
    assert refusal.kind == kind
    assert message in refusal.reason
    assert refusal.http_status == (409 if kind == "not_eligible" else 422)


def test_listing_rules_are_checked_in_order() -> None:
    everything_wrong = {
        "loan_status": "defaulted",
        "has_overdue": True,
        "unpaid_installments": 1,
        "held_days": 0,
        "principal": D("-1"),
        "price_percent": D("1"),
    }
    reasons = []
    for rule in everything_wrong:
        refusal = listing(**everything_wrong)
        assert refusal is not None
        reasons.append(refusal.reason)
        everything_wrong[rule] = LISTABLE[rule]
    assert ["not active" in reasons[0], "overdue" in reasons[1], "last installment" in reasons[2]] == [True] * 3
    assert "held" in reasons[3] and "positive" in reasons[4] and "between" in reasons[5]
    assert listing(**everything_wrong) is None


@settings(max_examples=400, deadline=None)
@given(available=kopecks(1, 10_000_00), principal=kopecks(-100, 10_100_00), minimum=kopecks(1, 5_000_00))
def test_a_part_is_all_or_leaves_both_sides_the_minimum(
    available: Decimal, principal: Decimal, minimum: Decimal
) -> None:
    refusal = purchase_refusal(listed_principal=available, principal=principal, min_investment=minimum)
    allowed = 0 < principal <= available and (
        principal == available or (principal >= minimum and available - principal >= minimum)
    )
    assert (refusal is None) == allowed
    assert refusal is None or refusal.kind == "bad_terms"
    # listing applies the same rule to the holding's principal
    as_listing = listing(outstanding_principal=available, principal=principal, min_investment=minimum)
    assert (as_listing is None) == allowed


@pytest.mark.parametrize(
    ("principal", "refused_with"),
    [
        (D("1000.00"), None),  # all of it
        (D("500.00"), None),  # exactly the minimum, leaving exactly the minimum
        (D("0.01"), "a part of at least 300.00 that leaves at least 300.00"),
        (D("299.99"), "a part of at least 300.00"),
        (D("700.01"), "(at most 700.00)"),
        (D("700.00"), None),
        (D("300.00"), None),
        (D("1000.01"), "1000.01 is more than the 1000.00 listed"),
        (D("0"), "positive with at most two decimals"),
        (D("10.005"), "positive with at most two decimals"),
    ],
)
def test_purchase_examples(principal: Decimal, refused_with: str | None) -> None:
    refusal = purchase_refusal(listed_principal=D("1000.00"), principal=principal, min_investment=D("300.00"))
    if refused_with is None:
        assert refusal is None
    else:
        assert refusal is not None and refusal.kind == "bad_terms" and refused_with in refusal.reason


def test_a_small_listing_is_bought_whole() -> None:
    refusal = purchase_refusal(listed_principal=D("450.00"), principal=D("300.00"), min_investment=D("300.00"))
    assert refusal == Refusal(
        "bad_terms",
        "only all of the 450.00 listed can be taken: a part must be at least 300.00 and leave at least 300.00",
    )
    assert purchase_refusal(listed_principal=D("450.00"), principal=D("450.00"), min_investment=D("300.00")) is None


# --- a sale, end to end --------------------------------------------------------------------


def test_a_sale_of_part_of_a_holding_end_to_end() -> None:
    schedule = build_schedule(D("120000.00"), D("18"), 12, date(2026, 1, 31))
    items = [ScheduledAmounts(i.payment_num, i.principal, i.interest) for i in schedule.installments]
    shares = agreed_shares(items, {"seller": D("60000.00"), "other": D("60000.00")})
    rows = [ShareRow(s.payment_num, s.principal, s.interest) for s in shares["seller"][4:]]  # 4 paid
    outstanding = total(rows, "principal")
    assert (
        listing_refusal(
            loan_status="active",
            has_overdue=False,
            unpaid_installments=len(rows),
            held_days=130,
            min_holding_days=30,
            outstanding_principal=outstanding,
            principal=D("20000.00"),
            min_investment=D("1000.00"),
            price_percent=D("97.50"),
            min_price_percent=D("80"),
            max_price_percent=D("120"),
        )
        is None
    )
    kept, sold = split_holding(rows, D("20000.00"))
    last_due = schedule.installments[3].due_date  # 2026-05-31
    next_due = schedule.installments[4].due_date  # 2026-06-30
    on = last_due + timedelta(days=10)
    accrued = accrued_interest(sold[0].interest, last_due, next_due, on)
    assert accrued == half_up(sold[0].interest * 10 / 30)
    deal = settlement(D("20000.00"), D("97.50"), accrued, D("1"))
    assert deal.price == D("19500.00") and deal.fee == D("195.00")
    assert deal.buyer_pays == deal.seller_gets + deal.fee
    flows = [(schedule.installments[s.payment_num - 1].due_date, s.principal + s.interest) for s in sold]
    ytm = yield_to_maturity(deal.buyer_pays, on, flows)
    assert ytm is not None and ytm > effective_percent(D("18"))  # bought below par


@given(
    loan_amount=kopecks(100_000, 500_000_000),
    share=percents("0.01", "100"),
    held_kopecks=st.integers(0, 10**11),
    principal=kopecks(1, 10**11),
)
def test_a_buyer_never_holds_more_than_the_products_share(
    loan_amount: Decimal, share: Decimal, held_kopecks: int, principal: Decimal
) -> None:
    """The same cap as primary funding: taken exactly when the total stays within it, and a
    refusal says how much more may be bought."""
    cap = investor_cap(loan_amount, share)
    held = min(D(held_kopecks) * KOPEK, cap + 1)
    refusal = share_refusal(held=held, principal=principal, loan_amount=loan_amount, max_share_percent=share)
    if held + principal <= cap:
        assert refusal is None
    else:
        assert refusal is not None and refusal.kind == "not_eligible" and refusal.http_status == 409
        assert f"({cap:.2f}); you hold {held:.2f}, so at most {max(cap - held, ZERO):.2f} more" in refusal.reason


def test_share_examples() -> None:
    rule = {"loan_amount": D("14000.00"), "max_share_percent": D("50.000")}
    assert share_refusal(held=ZERO, principal=D("7000.00"), **rule) is None
    refused = share_refusal(held=ZERO, principal=D("7000.01"), **rule)
    assert refused is not None and refused.reason.startswith("one investor may hold at most 50% of this loan (7000.00)")
    assert share_refusal(held=D("6000.00"), principal=D("1000.00"), **rule) is None
    assert share_refusal(held=D("6000.00"), principal=D("1000.01"), **rule) is not None
