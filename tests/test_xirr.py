"""domain/xirr.py: known answers, and properties over random flows checked against a present
value computed here, in 50-digit Decimal arithmetic (not the floats the solver uses)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal, localcontext

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from domain.xirr import HIGHEST_RATE, LOWEST_RATE, xirr

D = Decimal
START = date(2024, 1, 1)


def present_value(flows, rate: Decimal) -> tuple[Decimal, Decimal]:
    """(the flows' present value at `rate`, actual/365 from the first day; the sum of the
    discounted flows' sizes, to judge it by)."""
    with localcontext() as ctx:
        ctx.prec = 50
        first = min(day for day, _ in flows)
        value, size = D(0), D(0)
        for day, amount in flows:
            discounted = amount / (1 + rate) ** (D((day - first).days) / 365)
            value += discounted
            size += abs(discounted)
        return value, size


def assert_root(flows, rate: Decimal) -> None:
    value, size = present_value(flows, rate)
    assert abs(value) <= size * D("1e-7"), (rate, value, size)


# -- examples --------------------------------------------------------------------------------


def test_ten_percent_over_365_days_leap_year_or_not():
    assert xirr([(date(2023, 1, 1), D("-1000")), (date(2024, 1, 1), D("1100"))]) == D("0.1")
    # 2024 has 366 days; the convention counts 365 a year, so 365 days are one year.
    assert xirr([(date(2024, 1, 1), D("-1000")), (date(2024, 12, 31), D("1100"))]) == D("0.1")
    assert xirr([(date(2024, 1, 1), D("-1000")), (date(2025, 1, 1), D("1100"))]) < D("0.1")


def test_the_known_spreadsheet_example():
    """Excel's documentation example (XIRR 37.34 %)."""
    flows = [
        (date(2008, 1, 1), D("-10000")),
        (date(2008, 3, 1), D("2750")),
        (date(2008, 10, 30), D("4250")),
        (date(2009, 2, 15), D("3250")),
        (date(2009, 4, 1), D("2750")),
    ]
    rate = xirr(flows)
    assert rate is not None and abs(rate - D("0.373362535")) < D("1e-8")
    assert_root(flows, rate)


def test_losses_and_nothing_gained():
    assert xirr([(START, D("-1000")), (START + timedelta(days=365), D("500"))]) == D("-0.5")
    assert xirr([(START, D("-100")), (START + timedelta(days=40), D("100"))]) == 0
    assert xirr([(START, D("-1000")), (START + timedelta(days=365), D("1"))]) == D("-0.999")


def test_a_two_year_loan_with_a_coupon():
    # 1000 out, 100 after a year, 1100 after two (365 days each): 10 % a year.
    flows = [(date(2022, 1, 1), D("-1000")), (date(2023, 1, 1), D("100")), (date(2024, 1, 1), D("1100"))]
    rate = xirr(flows)
    assert rate is not None and abs(rate - D("0.1")) < D("1e-10")


def test_no_rate_without_both_signs_or_time_between_them():
    assert xirr([]) is None
    assert xirr([(START, D("100")), (START + timedelta(days=30), D("5"))]) is None  # nothing put in
    assert xirr([(START, D("-100")), (START + timedelta(days=30), D("-5"))]) is None  # nothing back
    assert xirr([(START, D("-100")), (START, D("110"))]) is None  # all on one day
    # flows that cancel on their day are no flows
    assert xirr([(START, D("-100")), (START, D("100")), (START + timedelta(days=9), D("5"))]) is None


def test_no_rate_outside_the_range():
    # 0.01 back of 1000 the next day: far below -99.99 % a year
    assert xirr([(START, D("-1000")), (START + timedelta(days=1), D("0.01"))]) is None
    # doubling in a day: far above 100,000 % a year
    assert xirr([(START, D("-1000")), (START + timedelta(days=1), D("2000"))]) is None


def test_flows_on_one_day_count_together_and_order_does_not_matter():
    flows = [
        (date(2025, 6, 1), D("60")),
        (START, D("-600")),
        (date(2025, 6, 1), D("600")),
        (START, D("-400")),
        (date(2024, 7, 1), D("400")),
    ]
    together = [(START, D("-1000")), (date(2024, 7, 1), D("400")), (date(2025, 6, 1), D("660"))]
    assert xirr(flows) == xirr(together) == xirr(list(reversed(flows)))


def test_several_roots_gives_the_one_nearest_zero():
    # -1000, +2300, -1320 a year apart: (1 + r) is 1.1 or 1.2 (r = 10 % or 20 %).
    flows = [(date(2023, 1, 1), D("-1000")), (date(2024, 1, 1), D("2300")), (date(2024, 12, 31), D("-1320"))]
    rate = xirr(flows)
    assert rate is not None and abs(rate - D("0.1")) < D("1e-10")


# -- properties ------------------------------------------------------------------------------

amounts = st.integers(1, 10**11).map(lambda kopecks: D(kopecks) / 100)  # 0.01 .. 1,000,000,000.00
days = st.integers(0, 3650)


@st.composite
def any_flows(draw):
    """Flows of both signs on days over ten years, in any order."""
    flows = draw(st.lists(st.tuples(days, amounts, st.booleans()), min_size=2, max_size=25))
    return [(START + timedelta(days=d), -a if out else a) for d, a, out in flows]


@st.composite
def investment_flows(draw):
    """Money put in first, then got back: every outflow on or before the first inflow."""
    outs = draw(st.lists(st.tuples(st.integers(0, 400), amounts), min_size=1, max_size=8))
    last_out = max(d for d, _ in outs)
    ins = draw(st.lists(st.tuples(st.integers(last_out, 3650), amounts), min_size=1, max_size=12))
    return [(START + timedelta(days=d), -a) for d, a in outs] + [(START + timedelta(days=d), a) for d, a in ins]


@settings(max_examples=400, deadline=None)
@given(any_flows())
def test_the_present_value_at_the_rate_is_zero(flows):
    rate = xirr(flows)
    if rate is not None:
        assert LOWEST_RATE <= rate <= HIGHEST_RATE
        assert_root(flows, rate)


@settings(max_examples=300, deadline=None)
@given(investment_flows())
def test_money_in_then_out_has_a_rate_exactly_when_one_lies_in_the_range(flows):
    """One sign change in time: one root at most, and the present value falls as the rate
    rises, so a root lies in the range exactly when the ends straddle zero."""
    at_lowest, _ = present_value(flows, LOWEST_RATE)
    at_highest, _ = present_value(flows, HIGHEST_RATE)
    assume(at_lowest != 0 and at_highest != 0)
    rate = xirr(flows)
    if at_lowest > 0 > at_highest:
        assert rate is not None
        assert_root(flows, rate)
    else:
        # (a net flow that is all one sign, or a root beyond the range)
        assert rate is None


@settings(max_examples=300, deadline=None)
@given(
    principal=amounts,
    rate=st.integers(-9000, 100_000).map(lambda bp: D(bp) / 10000),  # -90 % .. 1,000 % a year
    term=st.integers(1, 3650),
)
def test_a_loan_paid_back_with_compound_interest_recovers_its_rate(principal, rate, term):
    with localcontext() as ctx:
        ctx.prec = 50
        back = principal * (1 + rate) ** (D(term) / 365)
    found = xirr([(START, -principal), (START + timedelta(days=term), back)])
    assert found is not None
    assert abs(found - rate) <= D("1e-9") * (1 + rate) + D("1e-12"), (found, rate)


@settings(max_examples=200, deadline=None)
@given(principal=st.integers(1000_00, 10**11).map(lambda k: D(k) / 100), term=st.integers(30, 3650))
def test_payback_rounded_to_the_kopek_moves_the_rate_by_less_than_the_kopek_can(principal, term):
    rate = D("0.1437")
    back = (principal * (1 + rate) ** (D(term) / 365)).quantize(D("0.01"))
    found = xirr([(START, -principal), (START + timedelta(days=term), back)])
    assert found is not None
    # half a kopek on `back` moves (1 + r) by at most 0.005 / back * 365 / term of itself
    # (and the solver answers to about 1e-12)
    assert abs(found - rate) <= (1 + rate) * D("0.0051") / back * 365 / term + D("1e-11")


@settings(max_examples=300, deadline=None)
@given(any_flows(), st.integers(1, 10**7).map(lambda k: D(k) / 1000))
def test_scaling_every_flow_keeps_the_rate(flows, factor):
    rate = xirr(flows)
    assert xirr([(d, a * factor) for d, a in flows]) == rate
    assert xirr([(d, -a * factor) for d, a in flows]) == rate  # the other side of the same deal


@settings(max_examples=300, deadline=None)
@given(investment_flows(), amounts, st.integers(0, 3650))
def test_a_later_payment_never_lowers_the_rate(flows, extra, after):
    rate = xirr(flows)
    last = max(day for day, _ in flows)
    more = [*flows, (last + timedelta(days=after), extra)]
    higher = xirr(more)
    if rate is not None:
        if higher is None:  # only by passing the top of the range
            at_highest, _ = present_value(more, HIGHEST_RATE)
            assert at_highest > 0
        else:
            assert higher >= rate - D("1e-12") * (1 + rate), (rate, higher)
