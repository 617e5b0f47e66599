"""The programmed purchase's rules (domain/purchase_plan.py), by property: the award credit
pays the seller the price exactly, a cancellation splits the contributions exactly, the award
event is decided again the same from its recorded facts. Pure: no database, no clock."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.money import KOPEK
from domain.purchase_plan import (
    AwardEntry,
    PlanRuleError,
    award_credit_for,
    cancellation_refund,
    contribution_schedule,
    contributions_to_share,
    decide_award,
    event_seed,
    share_reached,
    withholding,
)

D = Decimal
money = st.integers(1, 10_000_000_00).map(lambda k: D(k) * KOPEK)
percent = st.integers(0, 30_000).map(lambda k: D(k) / 1000)


@settings(max_examples=400, deadline=None)
@given(price=money, share=st.integers(0, 99), fee=percent, reserve=percent)
def test_the_award_credit_pays_the_seller_the_price_exactly(price, share, fee, reserve) -> None:
    contributed = (price * share / 100).quantize(KOPEK)
    if contributed >= price:  # (a kopek's price: rounding reached it)
        with pytest.raises(PlanRuleError, match="nothing is left to lend"):
            award_credit_for(price, contributed, fee, reserve)
        return
    try:
        credit = award_credit_for(price, contributed, fee, reserve)
    except PlanRuleError:
        # refused only when even lending the whole price would leave the withholding unpaid
        assert contributed < withholding(price, fee, reserve)
        return
    # the seller: the investors' loan and the down payment, the price to the kopek
    assert credit.loan_amount + credit.down_payment == price
    # the contributions pay the down payment, the withholding, and the change: nothing lost
    assert credit.down_payment + credit.withholding + credit.change == contributed
    assert credit.withholding == withholding(credit.loan_amount, fee, reserve)
    assert credit.down_payment >= 0 and credit.change >= 0
    # the least loan that does it: a kopek less would not cover the price
    smaller = credit.loan_amount - KOPEK
    if smaller > 0:
        assert smaller + contributed - withholding(smaller, fee, reserve) < price
    # and so the change is under the withholding of a kopek's more loan, a few kopecks at most
    assert credit.change <= 3 * KOPEK


def test_contributions_that_cover_the_price_leave_nothing_to_lend() -> None:
    with pytest.raises(PlanRuleError, match="nothing is left to lend"):
        award_credit_for(D("100.00"), D("100.00"), D("1"), D("2"))


@settings(max_examples=300, deadline=None)
@given(contributed=money, refund=st.integers(0, 100_000).map(lambda k: D(k) / 1000))
def test_a_cancellation_splits_the_contributions_exactly(contributed, refund) -> None:
    back, fee = cancellation_refund(contributed, refund)
    assert back + fee == contributed
    assert back == back.quantize(KOPEK) and 0 <= back <= contributed
    assert back <= contributed * refund / 100 < back + KOPEK


@settings(max_examples=200, deadline=None)
@given(price=money, monthly=money, share=st.integers(1, 99).map(D))
def test_the_share_is_reached_by_the_contribution_that_reaches_it(price, monthly, share) -> None:
    n = contributions_to_share(price, monthly, share)
    assert share_reached(monthly * n, price, share)
    assert n == 1 or not share_reached(monthly * (n - 1), price, share)


def test_contributions_fall_on_the_plans_monthly_anniversaries() -> None:
    planned = contribution_schedule(D("15000.00"), 4, date(2027, 1, 31))
    assert [c.due_date for c in planned] == [date(2027, 2, 28), date(2027, 3, 31), date(2027, 4, 30), date(2027, 5, 31)]
    assert {c.amount for c in planned} == {D("15000.00")}


entries = st.lists(
    st.builds(
        AwardEntry,
        plan_id=st.uuids().map(str),
        price=money,
        bid=st.one_of(st.just(D("0.00")), money),
    ),
    min_size=1,
    max_size=20,
    unique_by=lambda e: e.plan_id,
)


@settings(max_examples=300, deadline=None)
@given(entries=entries, rule=st.sampled_from(["draw", "bid"]), period=st.sampled_from(["2027-01", "2027-02"]))
def test_an_award_event_is_decided_again_the_same_from_its_recorded_facts(entries, rule, period) -> None:
    seed = event_seed("vehicle-plan", period, entries)
    winner = decide_award(rule, seed, entries)
    # what the trail keeps: every entry as a record, and the seed
    recorded = [AwardEntry.from_record(e.as_record()) for e in reversed(entries)]
    assert event_seed("vehicle-plan", period, recorded) == seed  # the order entries are read in does not matter
    assert decide_award(rule, seed, recorded) == winner
    if rule == "draw":
        assert winner in entries
    else:
        bidding = [e for e in entries if e.bid > 0]
        if not bidding:
            assert winner is None
        else:
            assert winner is not None and winner.bid / winner.price == max(e.bid / e.price for e in bidding)


def test_a_changed_entry_changes_the_seed() -> None:
    plans = [AwardEntry(str(uuid.UUID(int=n)), D("1000000.00")) for n in range(1, 6)]
    seed = event_seed("vehicle-plan", "2027-03", plans)
    changed = [*plans[:-1], AwardEntry(plans[-1].plan_id, D("1000000.01"))]
    assert event_seed("vehicle-plan", "2027-03", changed) != seed
    assert event_seed("vehicle-plan", "2027-04", plans) != seed


def test_the_draw_picks_among_all_entries() -> None:
    plans = [AwardEntry(str(uuid.UUID(int=n)), D("1000000.00")) for n in range(1, 6)]
    winners = {decide_award("draw", event_seed("p", f"2027-{m:02d}", plans), plans).plan_id for m in range(1, 13)}
    assert len(winners) > 1  # twelve months do not all pick the same plan
