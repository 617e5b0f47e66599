"""Properties of the split after trades: once part of a holding is sold (domain/market.py
split_holding), every later installment is split among the holdings by their agreed parts,
every kopek exactly; a partial payment never gives anyone more than they are owed and loses
nothing (domain/investor_shares.py, the same code the collections run)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.investor_shares import AgreedShare, Entitlement, ScheduledAmounts, agreed_shares, split_installment_payment
from domain.market import ShareRow, split_holding
from domain.money import ZERO
from domain.schedule import build_schedule

D = Decimal


@st.composite
def traded_loans(draw):  # type: ignore[no-untyped-def]
    """A loan, its investors' agreed parts, then a sale of part of one holding after some
    installments were paid."""
    amount = D(draw(st.integers(min_value=3_000_000, max_value=300_000_000))) / 100
    term = draw(st.integers(min_value=3, max_value=36))
    rate = D(draw(st.integers(min_value=100, max_value=3000))) / 100
    schedule = build_schedule(amount, rate, term, date(2026, 1, 15), "annuity", 0)
    investors = draw(st.integers(min_value=1, max_value=6))
    weights = [draw(st.integers(min_value=1, max_value=100)) for _ in range(investors)]
    total_weight = sum(weights)
    lent = {n: (amount * w / total_weight).quantize(D("0.01")) for n, w in enumerate(weights)}
    lent[0] += amount - sum(lent.values())
    shares = agreed_shares(
        [ScheduledAmounts(i.payment_num, i.principal, i.interest) for i in schedule.installments], lent
    )
    paid_before = draw(st.integers(min_value=0, max_value=term - 2))
    seller = draw(st.sampled_from(sorted(lent)))
    unpaid = [ShareRow(s.payment_num, s.principal, s.interest) for s in shares[seller] if s.payment_num > paid_before]
    owed = sum((r.principal for r in unpaid), ZERO)
    sold = D(draw(st.integers(min_value=1, max_value=max(int(owed * 100), 1)))) / 100
    return schedule, shares, seller, paid_before, unpaid, min(sold, owed)


@settings(max_examples=200, deadline=None)
@given(traded_loans())
def test_after_a_trade_each_installment_pays_every_holding_its_part_exactly(case) -> None:  # type: ignore[no-untyped-def]
    schedule, shares, seller, paid_before, unpaid, sold = case
    kept, bought = split_holding(unpaid, sold)
    holdings = {k: {s.payment_num: s for s in v} for k, v in shares.items()}
    holdings[seller] = {
        **holdings[seller],
        **{r.payment_num: AgreedShare(r.payment_num, r.principal, r.interest) for r in kept},
    }
    holdings["buyer"] = {r.payment_num: AgreedShare(r.payment_num, r.principal, r.interest) for r in bought}
    assert sum((r.principal for r in bought), ZERO) == sold
    for installment in schedule.installments[paid_before:]:
        standing = {
            k: Entitlement(parts[installment.payment_num], ZERO, ZERO)
            for k, parts in holdings.items()
            if installment.payment_num in parts
        }
        # the parts still add up to the installment
        assert sum((e.agreed.principal for e in standing.values()), ZERO) == installment.principal
        assert sum((e.agreed.interest for e in standing.values()), ZERO) == installment.interest
        receipts = split_installment_payment(installment.principal, installment.interest, ZERO, standing)
        for k, receipt in receipts.items():
            assert (receipt.principal, receipt.interest) == (standing[k].agreed.principal, standing[k].agreed.interest)


@settings(max_examples=200, deadline=None)
@given(traded_loans(), st.integers(min_value=0, max_value=100))
def test_a_partial_payment_after_a_trade_loses_no_kopek_and_overpays_nobody(case, percent) -> None:  # type: ignore[no-untyped-def]
    schedule, shares, seller, paid_before, unpaid, sold = case
    kept, bought = split_holding(unpaid, sold)
    installment = schedule.installments[paid_before]
    parts = {k: next(s for s in v if s.payment_num == installment.payment_num) for k, v in shares.items()}
    parts[seller] = next(
        AgreedShare(r.payment_num, r.principal, r.interest) for r in kept if r.payment_num == installment.payment_num
    )
    parts["buyer"] = next(
        AgreedShare(r.payment_num, r.principal, r.interest) for r in bought if r.payment_num == installment.payment_num
    )
    paying_principal = (installment.principal * percent / 100).quantize(D("0.01"))
    paying_interest = (installment.interest * percent / 100).quantize(D("0.01"))
    standing = {k: Entitlement(p, ZERO, ZERO) for k, p in parts.items()}
    receipts = split_installment_payment(paying_principal, paying_interest, ZERO, standing)
    assert sum((r.principal for r in receipts.values()), ZERO) == paying_principal
    assert sum((r.interest for r in receipts.values()), ZERO) == paying_interest
    for k, receipt in receipts.items():
        assert 0 <= receipt.principal <= parts[k].principal and 0 <= receipt.interest <= parts[k].interest
